"""What a torchlogix or difflogic checkpoint says, read into one plain description.

Each library's discrete (eval-mode) LUT is worked out from its own arithmetic as a truth table
over the input patterns, pattern ``p`` giving input ``i`` (read from ``indices[i]``) the value of
bit ``rank - 1 - i`` of ``p`` (for two inputs ``(a, b)``: 00, 01, 10, 11); a two-input LUT is
named by its gate (``gates.gate_id``):

- difflogic ``LogicLayer`` and torchlogix ``raw``: 16 logits per gate in the numbering of
  ``gates.py``; the gate is their argmax (the first on a tie, as ``torch.argmax``).
- torchlogix ``warp``: ``2**rank`` Walsh coefficients; coefficient ``j`` multiplies the product of
  ``1 - 2x`` over the inputs whose bit is set in ``j``, and the output is 1 where the sum (in
  order of ``j``, in float32, as torchlogix adds them) is < 0.
- torchlogix ``light``: one logit per input pattern; the output is 1 where the logit is > 0.

A LUT of more than two inputs (torchlogix's ``lut_rank`` 4 or 6) becomes a few layers of two-input
gates (:func:`lut_layers`). Both libraries end in ``GroupSum(k, tau)`` over equal consecutive
blocks, as diffgates does.
"""

from __future__ import annotations

import math
import operator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .. import gates
from ..errors import DiffgatesError
from .pickles import Record

SOURCES = ("torchlogix", "difflogic")
PARAMETRIZATIONS = ("raw", "warp", "light")
_BINARIZATIONS = ("FixedBinarization", "SoftBinarization", "LearnableBinarization", "DummyBinarization")


@dataclass
class Layer:
    gates: np.ndarray  # (out,) gate ids
    ia: np.ndarray  # (out,) input A of each gate
    ib: np.ndarray

    def reads(self) -> tuple[int, int]:
        """(lowest, highest) input index the layer's gates read."""
        return min(int(self.ia.min()), int(self.ib.min())), max(int(self.ia.max()), int(self.ib.max()))


@dataclass
class ConvBlock:
    """A torchlogix LogicConv2d (and the OrPooling2d after it): ``kernels`` complete binary trees
    of ``2**depth - 1`` gates over ``2**depth`` leaves at (channel, dy, dx) of a ``size`` x ``size``
    field, in diffgates' tree order (gate g reads nodes 2g and 2g + 1; leaves first)."""

    size: int
    stride: int
    padding: int
    depth: int
    channel: np.ndarray  # (kernels, leaves)
    dy: np.ndarray
    dx: np.ndarray
    gates: np.ndarray  # (kernels, leaves - 1)
    pool: int = 1
    pool_padding: int = 0

    @property
    def spec(self) -> str:
        """The block as diffgates' ``K:SIZE:PAD:POOL:POOL_PAD:STRIDE:DEPTH``."""
        return (
            f"{len(self.gates)}:{self.size}:{self.padding}:{self.pool}:{self.pool_padding}:{self.stride}:{self.depth}"
        )


@dataclass
class Network:
    """A discrete logic network: the input bits ``x[f] > thresholds[f, j]`` in feature-major order
    (None: the model reads binary inputs, binarised by the importer's threshold), optional
    convolution blocks over ``image`` (channels, height, width), dense layers and the GroupSum head."""

    thresholds: np.ndarray | None  # (bits,) for every feature, or (features or channels, bits)
    layers: list[Layer]
    n_classes: int
    tau: float
    convs: list[ConvBlock] = field(default_factory=list)
    image: tuple[int, int, int] | None = None  # of the raw input, before binarisation


def lut_tables(weight: torch.Tensor, parametrization: str, rank: int = 2) -> np.ndarray:
    """The truth table of every row of ``weight`` under a library's parametrization: (LUTs,
    2**rank) bools in the pattern order of the module docstring (raw: rank 2 only)."""
    w = weight.detach().to(torch.float32)
    entries = 1 << rank
    columns = 16 if parametrization == "raw" else entries
    if w.dim() != 2 or w.shape[1] != columns:
        what = "gate" if rank == 2 else f"{rank}-input LUT"
        raise DiffgatesError(
            f"a {parametrization} layer has {columns} weights per {what}, got a weight of shape {tuple(w.shape)}."
        )
    if parametrization == "raw":
        return gates.TRUTH[w.argmax(-1).numpy()].astype(bool)
    if parametrization == "light":
        return (w > 0).numpy()
    p = torch.arange(entries)
    odd = torch.tensor([bin(v).count("1") & 1 for v in range(entries)])[p[:, None] & p[None, :]]
    signs = 1.0 - 2.0 * odd.to(torch.float32)  # signs[j, p]: basis j at pattern p
    total = w[:, :1] * signs[0]
    for j in range(1, entries):
        total = total + w[:, j : j + 1] * signs[j]
    return (total < 0).numpy()


def gate_ids(weight: torch.Tensor, parametrization: str) -> np.ndarray:
    """The discrete gate of every row of ``weight`` under a library's parametrization."""
    if parametrization == "raw" and weight.dim() == 2 and weight.shape[1] == 16:
        return weight.detach().to(torch.float32).argmax(-1).numpy()
    return gates.gate_id(lut_tables(weight, parametrization))


def lut_layers(tables: np.ndarray, indices: np.ndarray) -> list[Layer]:
    """Layers of two-input gates computing LUTs of ``rank`` inputs (``tables`` (n, 2**rank),
    ``indices`` (rank, n)); LUT j ends as gate j of the last layer.

    Shannon expansion: the first layer holds, for each value of inputs 0 .. rank - 3, the LUT as
    one gate of its last two inputs, and passes inputs 0 .. rank - 3 on (gate A); then each of
    those inputs, the last first, selects between pairs in two layers (``x AND f1``, ``NOT x AND
    f0``; then OR), the inputs still to select with passed on beside. A LUT of four inputs is five
    layers (6, 5, 3, 2, 1 gates); constant and passed-on gates go when the circuit is optimised."""
    n, rank = len(tables), len(indices)
    if rank == 1:  # a gate reading its input twice: patterns 01 and 10 never occur
        return [Layer(gates.gate_id(tables[:, [0, 0, 1, 1]]), indices[0], indices[0])]
    if rank == 2:
        return [Layer(gates.gate_id(tables), indices[0], indices[1])]
    at = lambda item: item * n + np.arange(n)  # noqa: E731  (item-major: gate j of item t)

    def layer(items):
        ops, ia, ib = zip(*[(np.broadcast_to(op, (n,)), a, b) for op, a, b in items])
        return Layer(np.concatenate(ops), np.concatenate(ia), np.concatenate(ib))

    chosen = rank - 2
    quarters = tables.reshape(n, 1 << chosen, 4)
    items = [(gates.gate_id(quarters[:, c]), indices[-2], indices[-1]) for c in range(1 << chosen)]
    layers = [layer(items + [(gates.A, indices[i], indices[i]) for i in range(chosen)])]
    funcs = 1 << chosen  # items 0 .. funcs - 1 are functions, then the inputs still to select with
    for x in reversed(range(chosen)):
        passed = [(gates.A, at(funcs + i), at(funcs + i)) for i in range(x)]
        pairs = [
            ((gates.AND, at(funcs + x), at(2 * m + 1)), (gates.NOT_A_AND_B, at(funcs + x), at(2 * m)))
            for m in range(funcs // 2)
        ]
        layers.append(layer([item for pair in pairs for item in pair] + passed))
        layers.append(layer([(gates.OR, at(2 * m), at(2 * m + 1)) for m in range(funcs // 2)] + passed))
        funcs //= 2
    return layers


def read_network(source: str, obj, classes: int | None = None, tau: float | None = None, parametrization=None):
    """The :class:`Network` in a checkpoint object: a whole model (Records) or a state dict.

    A state dict carries no GroupSum, so it needs ``classes`` (and ``tau``, default 1); one of
    torchlogix's 4-weight layers needs ``parametrization`` (warp or light) to be read."""
    if source not in SOURCES:
        raise DiffgatesError(f"--from must be one of {', '.join(SOURCES)}, got {source!r}.")
    if isinstance(obj, Record):
        net = _from_model(source, obj)
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        net = _from_state_dict(source, obj, classes, tau, parametrization)
    else:
        raise DiffgatesError(
            f"the checkpoint holds a {type(obj).__name__}, not a {source} model or state dict "
            "(save one with torch.save(model) or torch.save(state_dict))."
        )
    _check_shapes(net)
    return net


def _leaves(record: Record) -> list[Record]:
    """The layers of a model in order: containers (Sequential and the libraries' model classes) opened,
    the libraries' layers (``torchlogix.layers``, ``difflogic.difflogic``) and childless modules kept."""
    layer = record.kind.startswith(("torchlogix.layers.", "difflogic.difflogic."))
    if layer or record.name == "Flatten" or not record.children():
        return [record]
    return [leaf for child in record.children() for leaf in _leaves(child)]


@contextmanager
def _reading(leaf: Record):
    """Turns what a layer of another layout (a damaged file, another version of the library) makes
    the reading code raise into one sentence naming the layer."""
    try:
        yield
    except (AttributeError, KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
        raise DiffgatesError(
            f"the checkpoint's {leaf.kind} is not laid out as the importer reads it ({type(e).__name__}: {e}); "
            "it reads the layers of torchlogix 0.1 and difflogic 0.1."
        ) from e


def _from_model(source: str, model: Record) -> Network:
    thresholds, layers, head, convs, image, bits, feature_dim = None, [], None, [], None, 1, None
    for leaf in _leaves(model):
        if head is not None:
            raise DiffgatesError(f"the model has a {leaf.name} after its GroupSum; only a GroupSum can end it.")
        with _reading(leaf):
            if leaf.name == "Flatten":
                continue
            if leaf.name in _BINARIZATIONS and source == "torchlogix" and not layers and not convs:
                thresholds = _binarization(leaf)
                bits = 1 if thresholds is None else thresholds.shape[-1]
                feature_dim = operator.index(leaf.__dict__.get("feature_dim", -2)) if thresholds is not None else None
            elif leaf.name == "LogicConv2d" and source == "torchlogix" and not layers:
                block, in_shape = _torchlogix_conv(leaf)
                if not convs:
                    image = (in_shape[0] // bits, *in_shape[1:])
                    if in_shape[0] % bits:
                        raise DiffgatesError(
                            f"the first convolution reads {in_shape[0]} channels, not a multiple of {bits} bits."
                        )
                convs.append(block)
            elif leaf.name == "OrPooling2d" and convs and convs[-1].pool == 1 and not layers:
                convs[-1] = _pooled(convs[-1], leaf)
            elif leaf.name == "LogicDense" and source == "torchlogix":
                layers += _torchlogix_dense(leaf)
            elif leaf.name == "LogicLayer" and source == "difflogic":
                indices = leaf.__dict__.get("indices")
                weight = leaf.tensor("weights")
                if weight is None or not isinstance(indices, (tuple, list)) or len(indices) != 2:
                    raise DiffgatesError("a difflogic LogicLayer in the checkpoint lacks its weights or indices.")
                layers += _layers(weight, "raw", torch.stack([torch.as_tensor(t) for t in indices]))
            elif leaf.name == "GroupSum":
                head = (operator.index(leaf.__dict__["k"]), float(leaf.__dict__.get("tau", 1.0)))
            else:
                torchlogix = source == "torchlogix"
                layers_read = "binarisation, LogicConv2d, OrPooling2d, LogicDense" if torchlogix else "LogicLayer"
                raise DiffgatesError(
                    f"the importer does not support {leaf.kind} here (it reads {source}'s {layers_read}, Flatten "
                    "and GroupSum, in that order)."
                )
    if head is None:
        raise DiffgatesError("the model does not end in a GroupSum, so its classes are unknown.")
    # the bits of a feature (dense: (batch, features, bits)) or of a channel (conv: (batch, C, H, W,
    # bits)) must sit next to each other, channel-major, as diffgates' encoder writes them
    if feature_dim is not None and feature_dim not in ((1, -4) if convs else (1, -2)):
        raise DiffgatesError(
            f"a binarisation with feature_dim {feature_dim} before {'a convolution' if convs else 'dense layers'} "
            f"is not supported ({'1' if convs else '-2'} is)."
        )
    return Network(thresholds, layers, *head, convs=convs, image=image)


def _parametrization(leaf: Record, luts: bool = False) -> str:
    """raw, warp or light: a torchlogix layer's parametrization, whose LUTs must have two inputs
    unless ``luts`` (dense layers take any number)."""
    param = leaf.__dict__.get("parametrization")
    kind = getattr(param, "name", "")
    names = {"RawLUTParametrization": "raw", "WarpLUTParametrization": "warp", "LightLUTParametrization": "light"}
    if kind not in names:
        raise DiffgatesError(f"a torchlogix {leaf.name} uses an unknown parametrization {kind or param!r}.")
    rank = leaf.__dict__.get("lut_rank", 2)
    if rank != 2 and not luts:
        raise DiffgatesError(
            f"a torchlogix {leaf.name} with lut_rank={rank} has {rank}-input LUTs; diffgates imports those in "
            "LogicDense layers only (convolutions: lut_rank=2)."
        )
    return names[kind]


def _connections(leaf: Record, *expected: str) -> Record:
    connections = (leaf.__dict__.get("_modules") or {}).get("connections")
    if getattr(connections, "name", "") not in expected:
        raise DiffgatesError(
            f"a torchlogix {leaf.name} with {getattr(connections, 'name', 'unknown')} wiring is not supported; "
            f"{' and '.join(expected)} are."
        )
    return connections


def _torchlogix_conv(leaf: Record) -> tuple[ConvBlock, tuple[int, int, int]]:
    """A LogicConv2d as a ConvBlock, and the (channels, height, width) map it reads.

    torchlogix's level 0 reads leaf pairs ``indices[0][0 or 1, kernel, position, pair]`` =
    (h, w, channel) offsets inside the padded field (position 0 is the field's own offsets), and
    level l's gate j reads gates 2j and 2j + 1 of level l - 1, with weights
    ``tree_weights[l][j, kernel]``: the same trees as diffgates', leaf 2j + side."""
    d = leaf.__dict__
    param = _parametrization(leaf)
    field_size, (h, w) = tuple(d["receptive_field_size"]), tuple(d["in_dim"])
    if d.get("conv_dimension", 2) != 2 or field_size[0] != field_size[1]:
        raise DiffgatesError(
            f"a torchlogix LogicConv2d with a {field_size} field is not supported (square 2-D fields are)."
        )
    depth, kernels = int(d["tree_depth"]), int(d["num_kernels"])
    first = _connections(leaf, "FixedConvConnections").__dict__["indices"][0]
    coords = torch.as_tensor(first)[:, :, 0]  # (side, kernel, pair, (h, w, channel))
    leaves = coords.permute(1, 2, 0, 3).reshape(kernels, 2**depth, 3).to(torch.int64).numpy()
    weights = [
        p
        for _, p in sorted(
            (leaf.__dict__["_modules"]["tree_weights"].__dict__["_parameters"]).items(), key=lambda kv: int(kv[0])
        )
    ]
    if len(weights) != depth:
        raise DiffgatesError(f"a torchlogix LogicConv2d of depth {depth} has {len(weights)} levels of weights.")
    levels = []
    for wl in weights:
        nodes = wl.shape[0]
        levels.append(gate_ids(wl.detach().reshape(nodes * kernels, -1), param).reshape(nodes, kernels).T)
    block = ConvBlock(
        size=field_size[0],
        stride=int(d["stride"]),
        padding=int(d["padding"]),
        depth=depth,
        channel=leaves[..., 2],
        dy=leaves[..., 0],
        dx=leaves[..., 1],
        gates=np.concatenate(levels, axis=1),
    )
    return block, (int(d["channels"]), h, w)


def _pooled(block: ConvBlock, pool: Record) -> ConvBlock:
    size, stride, padding = (pool.__dict__.get(k) for k in ("kernel_size", "stride", "padding"))
    if not all(isinstance(v, int) for v in (size, stride, padding)) or stride != size:
        raise DiffgatesError(
            f"an OrPooling2d with kernel_size={size}, stride={stride} is not supported (square windows with "
            "stride = kernel_size are)."
        )
    return replace(block, pool=size, pool_padding=padding)


def _binarization(leaf: Record) -> np.ndarray | None:
    if leaf.name == "DummyBinarization":
        return None
    t = _eval_thresholds(leaf.tensor("raw_diffs"), leaf.tensor("thresholds"))
    if t is None:
        raise DiffgatesError(f"the {leaf.name} in the checkpoint has no thresholds.")
    return t


def _eval_thresholds(raw_diffs: torch.Tensor | None, thresholds: torch.Tensor | None) -> np.ndarray | None:
    """A torchlogix binarisation's eval-mode thresholds: LearnableBinarization's are the running
    sum of its ``raw_diffs``, the others' are stored."""
    t = torch.cumsum(raw_diffs, dim=-1) if raw_diffs is not None else thresholds
    return None if t is None else t.to(torch.float32).numpy()


def _torchlogix_dense(leaf: Record) -> list[Layer]:
    param = _parametrization(leaf, luts=True)
    connections = _connections(leaf, "FixedDenseConnections", "LearnableDenseConnections")
    if connections.name == "FixedDenseConnections":
        indices = connections.tensor("indices")
    else:
        indices = chosen_inputs(connections.tensor("weights"), connections.tensor("indices"))
    return _layers(leaf.tensor("weight"), param, indices)


def chosen_inputs(weights: torch.Tensor | None, candidates: torch.Tensor | None) -> torch.Tensor:
    """The (inputs, gates) inputs a torchlogix layer with learnable connections reads in its
    discrete network: for each gate input the candidate of the largest weight (the first on a tie,
    as ``torch.argmax``), without the Gumbel noise that ``gumbel=True`` adds during training.

    ``weights`` and ``candidates`` are (candidates, inputs, gates): candidate c of input i of gate g
    is input ``candidates[c, i, g]`` of the layer before (inputs: 2, or the LUTs' rank)."""
    if weights is None or candidates is None or weights.dim() != 3:
        shape = None if weights is None else tuple(weights.shape)
        raise DiffgatesError(
            "learnable connections need weights and candidate indices of shape (candidates, inputs, gates), "
            f"got {shape}."
        )
    if tuple(candidates.shape) != tuple(weights.shape):
        raise DiffgatesError(
            f"learnable connections' candidate indices {tuple(candidates.shape)} do not match their weights "
            f"{tuple(weights.shape)}."
        )
    best = weights.to(torch.float32).argmax(0, keepdim=True)
    return candidates.to(torch.int64).gather(0, best)[0]


def _layers(weight: torch.Tensor | None, parametrization: str, indices: torch.Tensor | None) -> list[Layer]:
    """A layer of LUTs as layers of two-input gates: one layer for gates, :func:`lut_layers` for
    LUTs of more inputs (as many as ``indices`` has rows)."""
    if weight is None or weight.dim() != 2:
        shape = None if weight is None else tuple(weight.shape)
        raise DiffgatesError(
            f"a logic layer's weight must be (gates, weights per gate), got {shape} in the checkpoint."
        )
    if indices is None or indices.dim() != 2 or not 1 <= len(indices) <= 8 or indices.shape[1] != len(weight):
        shape = None if indices is None else tuple(indices.shape)
        raise DiffgatesError(
            f"a layer of {len(weight)} gates needs wiring indices of shape (2, {len(weight)}) (or (inputs, "
            f"{len(weight)}) for LUTs of 1 to 8 inputs), got {shape}."
        )
    rank = len(indices)
    if parametrization == "raw" and rank != 2:
        raise DiffgatesError(f"a raw layer has two-input gates, but its wiring has {rank} inputs per gate.")
    return lut_layers(lut_tables(weight, parametrization, rank), indices.to(torch.int64).numpy())


def _from_state_dict(source, state: dict, classes, tau, parametrization) -> Network:
    """Layers from the keys ``PREFIX.weight`` (torchlogix) or ``PREFIX.weights`` (difflogic) with the
    wiring saved beside them as ``PREFIX.indices`` (2, gates; torchlogix LUTs: (rank, LUTs)), or for
    torchlogix's learnable connections (``PREFIX.connections.weights``) their candidates as
    ``PREFIX.connections.indices`` (candidates, 2 or rank, gates); torchlogix binarisation from
    ``PREFIX.thresholds`` (or ``PREFIX.raw_diffs``)."""
    if classes is None:
        raise DiffgatesError("a state dict does not record GroupSum's classes; give --classes.")
    weight_key = "weight" if source == "torchlogix" else "weights"
    prefixes = list(dict.fromkeys(k.rsplit(".", 1)[0] if "." in k else "" for k in state))
    thresholds, layers = None, []
    for p in prefixes:
        get = lambda name, p=p: state.get(f"{p}.{name}" if p else name)  # noqa: E731
        if get(weight_key) is not None:
            w = get(weight_key)
            if w.dim() != 2:
                raise DiffgatesError(f"layer {p!r}'s weight must be (gates, weights per gate), got {tuple(w.shape)}.")
            indices = get("indices") if get("indices") is not None else get("connections.indices")
            learnable = get("connections.weights")
            if indices is None:
                wiring = (
                    f"'{p}.connections.indices', the (candidates, 2, gates) candidates of its learnable connections"
                    if learnable is not None
                    else f"'{p}.indices', a (2, gates) tensor"
                )
                raise DiffgatesError(
                    f"the state dict has no wiring for layer {p!r} ({source} keeps connection indices outside "
                    f"its state_dict): save the whole model with torch.save(model), or add the indices beside "
                    f"the weights as {wiring}."
                )
            if learnable is not None:
                indices = chosen_inputs(learnable, indices)
            gates_of_two = indices.dim() == 2 and len(indices) == 2
            kind = "raw" if w.dim() == 2 and w.shape[1] == 16 and gates_of_two else parametrization
            if kind is None:
                raise DiffgatesError(
                    f"layer {p!r} has {w.shape[-1]} weights per {'gate' if gates_of_two else 'LUT'}; give "
                    "--parametrization warp or light (how it was trained)."
                )
            layers += _layers(w, kind, indices)
        elif source == "torchlogix" and not layers:  # a binarisation before the first layer
            found = _eval_thresholds(get("raw_diffs"), get("thresholds"))
            thresholds = thresholds if found is None else found
    if not layers:
        raise DiffgatesError(f"the state dict holds no {source} logic layers (no '.{weight_key}' keys).")
    return Network(thresholds, layers, classes, 1.0 if tau is None else tau)


def _check_shapes(net: Network) -> None:
    """Every layer reads inside the one before it, and the last splits into the classes."""
    if not net.layers:
        raise DiffgatesError("the model has no logic layers.")
    if net.n_classes < 1 or not math.isfinite(net.tau) or net.tau <= 0:
        raise DiffgatesError(f"GroupSum needs classes >= 1 and tau > 0, got {net.n_classes} and {net.tau}.")
    for i, (prev, layer) in enumerate(zip(net.layers, net.layers[1:]), 1):
        low, top = layer.reads()
        if top >= len(prev.gates) or low < 0:
            raise DiffgatesError(f"layer {i} reads input {top}, but layer {i - 1} has {len(prev.gates)} gates.")
    if len(net.layers[-1].gates) % net.n_classes:
        raise DiffgatesError(
            f"the last layer's {len(net.layers[-1].gates)} gates do not split into {net.n_classes} classes."
        )
