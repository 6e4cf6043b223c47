"""The plain, obviously-correct logic layer: the oracle the fast kernels are tested against.

It follows the original paper literally: all 16 relaxed gates are materialised and mixed with the
softmax weights (softmax16), or the 4 input-pattern probabilities are materialised and mixed with
the sigmoid truth-table entries (truth4). Slow and memory-hungry on purpose; never optimise it.
"""

from __future__ import annotations

import torch


def all_relaxed_gates(a: torch.Tensor, b: torch.Tensor) -> list[torch.Tensor]:
    """The 16 relaxed gates written out one by one, in the standard numbering."""
    ab = a * b
    return [
        torch.zeros_like(a),  # 0 FALSE
        ab,  # 1 AND
        a - ab,  # 2 A AND NOT B
        a,  # 3 A
        b - ab,  # 4 NOT A AND B
        b,  # 5 B
        a + b - 2 * ab,  # 6 XOR
        a + b - ab,  # 7 OR
        1 - (a + b - ab),  # 8 NOR
        1 - (a + b - 2 * ab),  # 9 XNOR
        1 - b,  # 10 NOT B
        1 - b + ab,  # 11 A OR NOT B
        1 - a,  # 12 NOT A
        1 - a + ab,  # 13 NOT A OR B
        1 - ab,  # 14 NAND
        torch.ones_like(a),  # 15 TRUE
    ]


def dense_reference(
    x: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor, weight: torch.Tensor, parametrization: str
) -> torch.Tensor:
    """Relaxed dense logic layer. ``x``: (in, batch) feature-major; returns (out, batch)."""
    a, b = x[ia], x[ib]
    if parametrization == "softmax16":
        p = torch.softmax(weight, dim=-1)
        ops = all_relaxed_gates(a, b)
        return sum(p[:, g : g + 1] * ops[g] for g in range(16))
    w = torch.sigmoid(weight)
    patterns = [(1 - a) * (1 - b), (1 - a) * b, a * (1 - b), a * b]
    return sum(w[:, p : p + 1] * patterns[p] for p in range(4))


def dense_hard_reference(x: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Discrete dense layer on 0/1 inputs: each gate picks its one relaxed op (exact on bits)."""
    a, b = x[ia], x[ib]
    ops = torch.stack(all_relaxed_gates(a, b))  # (16, out, batch)
    return ops.gather(0, ids.view(1, -1, 1).expand(1, *a.shape))[0]


def tree_reference(x: torch.Tensor, idx: torch.Tensor, weight: torch.Tensor, parametrization: str) -> torch.Tensor:
    """Relaxed logic-tree convolution, unpooled: one 16-term (or 4-pattern) gate at a time.

    ``x``: (in, batch) feature-major; ``idx``: (kernels, positions, leaves) input rows, -1 reads 0;
    ``weight``: (kernels * gates, n_weights), gate ``g`` of a tree reading nodes ``2g, 2g+1``
    (nodes ``0 .. leaves-1`` are the leaves). Returns (kernels * positions, batch).
    """
    k, n_pos, n_leaves = idx.shape
    padded = torch.cat([x, x.new_zeros(1, x.shape[1])])
    rows = torch.where(idx < 0, x.shape[0], idx)
    nodes = [padded[rows[:, :, leaf]] for leaf in range(n_leaves)]  # each (k, positions, batch)
    w = weight.view(k, n_leaves - 1, -1)
    for g in range(n_leaves - 1):
        a, b = nodes[2 * g], nodes[2 * g + 1]
        wg = w[:, g].view(k, 1, 1, -1)
        if parametrization == "softmax16":
            p = torch.softmax(wg, dim=-1)
            ops = all_relaxed_gates(a, b)
            nodes.append(sum(p[..., i] * ops[i] for i in range(16)))
        else:
            t = torch.sigmoid(wg)
            patterns = [(1 - a) * (1 - b), (1 - a) * b, a * (1 - b), a * b]
            nodes.append(sum(t[..., i] * patterns[i] for i in range(4)))
    return nodes[-1].reshape(k * n_pos, -1)
