"""What a network will cost as a circuit, estimated from its gate choices (``--gate-cost``).

The compiler folds constants, wires and inverters into their neighbours and drops every gate no
output depends on, so a network's circuit is about its *live* two-input gates plus the live ORs
of its pooling. :func:`expected_gates` computes that number from the gates' probabilities,
walking from the class outputs back to the input: a signal is live when some live gate reads it
through an input the gate depends on (readers are taken as independent), a tree gate when the
path to its root is, and a pooled output's ORs when the pooled output is live. With the discrete
gates (probabilities 0 and 1) it is the exact count of live two-input gates and pooling ORs;
structural hashing and constants from padding make the optimised circuit a little smaller still.
"""

from __future__ import annotations

import torch

from ..kernels.torch_ops import pool_windows
from . import parametrization as P

_SURE = 1 - 1e-6  # keeps log(1 - p) finite, so its gradient is too


def _roles_of(layer, discrete: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """P(reads A), P(reads B), P(reads both) of each gate of ``layer`` (weight rows)."""
    if discrete:
        r = P.ROLES.to(layer.weight.device)[layer.gate_ids().reshape(-1)]
    else:
        r = P.role_probabilities(layer.weight, layer.options.parametrization)
    return r.unbind(-1)


def _live_inputs(n_inputs: int, rows: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
    """P(some reader reads each input) given reader rows (-1: none) and their read probabilities."""
    sure = read if not read.requires_grad else read.clamp(max=_SURE)
    log_unread = sure.new_zeros(n_inputs + 1).index_add(0, torch.where(rows < 0, n_inputs, rows), torch.log1p(-sure))
    return 1 - torch.exp(log_unread[:n_inputs])


def _dense(layer, live: torch.Tensor, discrete: bool, first: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    reads_a, reads_b, both = _roles_of(layer, discrete)
    if first:  # its inputs are the encoder's bits: nothing to count
        return (live * both).sum(), None
    ia, ib = layer.wiring()
    rows = torch.cat([ia, ib])
    return (live * both).sum(), _live_inputs(layer.in_features, rows, torch.cat([live * reads_a, live * reads_b]))


def _tree_use(layer, reads_a: torch.Tensor, reads_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(kernels, gates) P(each tree gate is on a live path to its root), (kernels, leaves) the same
    for the leaves, from the gates' (kernels, gates) read probabilities: gate g reads nodes 2g and
    2g+1, nodes 0..leaves-1 being the leaves."""
    n_leaves = layer.n_leaves
    use = [None] * (2 * n_leaves - 1)
    use[-1] = reads_a.new_ones(layer.kernels)
    for g in range(n_leaves - 2, -1, -1):
        use[2 * g] = use[n_leaves + g] * reads_a[:, g]
        use[2 * g + 1] = use[n_leaves + g] * reads_b[:, g]
    return torch.stack(use[n_leaves:], 1), torch.stack(use[:n_leaves], 1)


def _pool_owner(layer) -> tuple[torch.Tensor, torch.Tensor]:
    """(conv positions,) the pooled output each position feeds (the number of windows: none), and
    (windows,) the valid slots of each window."""
    _, ho, wo = layer.conv_shape
    dev = layer.leaf_channel.device
    windows = pool_windows(
        torch.arange(ho * wo, device=dev).view(1, ho, wo), layer.spec.pool, layer.spec.pool_padding, -1
    )[0]
    n_windows = len(windows)
    owner = torch.full((ho * wo + 1,), n_windows, device=dev)
    owner[torch.where(windows < 0, ho * wo, windows)] = torch.arange(n_windows, device=dev).unsqueeze(1)
    return owner[: ho * wo], (windows >= 0).sum(1)


def _conv(layer, live: torch.Tensor, discrete: bool, first: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    k = layer.kernels
    live = live.view(k, -1)
    owner, slots = layer._derived("pool_owner", _pool_owner)  # fixed by the shapes: computed once
    position_live = torch.cat([live, live.new_zeros(k, 1)], 1)[:, owner]
    reads_a, reads_b, both = (r.view(k, -1) for r in _roles_of(layer, discrete))
    gate_use, leaf_use = _tree_use(layer, reads_a, reads_b)
    per_tree = (gate_use * both).sum(1)  # live two-input gates of a tree with a live root
    ors = (live * (slots - 1).clamp(min=0)).sum()
    cost = (per_tree.unsqueeze(1) * position_live).sum() + ors
    if first:
        return cost, None
    read = position_live.unsqueeze(-1) * leaf_use.unsqueeze(1)  # (kernels, positions, leaves)
    return cost, _live_inputs(layer.in_features, layer.leaf_rows().reshape(-1), read.reshape(-1))


def expected_gates(model, discrete: bool = False) -> torch.Tensor:
    """Expected live two-input gates and pooling ORs of ``model``'s circuit (differentiable in the
    gate weights unless ``discrete``, which counts those of the discrete network exactly)."""
    convs, dense = list(model.convs), list(model.layers)
    live = dense[-1].weight.new_ones(dense[-1].out_features)  # GroupSum reads every output
    total = live.new_zeros(())
    for i in range(len(dense) - 1, -1, -1):
        cost, live = _dense(dense[i], live, discrete, first=i == 0 and not convs)
        total = total + cost
    if not convs:
        return total
    # which blocks' outputs the head reads, one after the other (None: the input bits, which cost nothing)
    read_by_head = [None] * len(convs)
    sources = model.head_sources(None, list(range(len(convs))))
    sizes = [model.config.n_features * model.encoder.n_bits if j is None else convs[j].out_features for j in sources]
    for j, part in zip(sources, live.split(sizes)):
        if j is not None:
            read_by_head[j] = part
    live = None  # read by the next block
    for j in range(len(convs) - 1, -1, -1):
        parts = [p for p in (live, read_by_head[j]) if p is not None]
        out_live = parts[0] if len(parts) == 1 else 1 - (1 - parts[0]) * (1 - parts[1])
        cost, live = _conv(convs[j], out_live, discrete, first=j == 0)
        total = total + cost
    return total
