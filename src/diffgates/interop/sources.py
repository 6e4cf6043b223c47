"""What a torchlogix or difflogic checkpoint says, read into one plain description.

Each library's discrete (eval-mode) gate is worked out from its own arithmetic, for the four input
patterns ``(a, b)`` in the order 00, 01, 10, 11, and named by its truth table (``gates.gate_id``):

- difflogic ``LogicLayer`` and torchlogix ``raw``: 16 logits per gate in the numbering of
  ``gates.py``; the gate is their argmax (the first on a tie, as ``torch.argmax``).
- torchlogix ``warp``: 4 Walsh coefficients; with ``A = 1 - 2a`` and ``B = 1 - 2b`` the output is 1
  where ``w0 + w1 B + w2 A + w3 AB < 0`` (summed in that order in float32, as torchlogix does).
- torchlogix ``light``: 4 logits, one per input pattern; the output is 1 where the logit is > 0.

Both libraries read gate input A from ``indices[0]`` and B from ``indices[1]``, and end in
``GroupSum(k, tau)`` over equal consecutive blocks, as diffgates does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import gates
from ..errors import DiffgatesError
from .pickles import Record

SOURCES = ("torchlogix", "difflogic")
PARAMETRIZATIONS = ("raw", "warp", "light")
_BINARIZATIONS = ("FixedBinarization", "SoftBinarization", "LearnableBinarization", "DummyBinarization")
_PATTERNS = ((0, 0), (0, 1), (1, 0), (1, 1))


@dataclass
class Layer:
    gates: np.ndarray  # (out,) gate ids
    ia: np.ndarray  # (out,) input A of each gate
    ib: np.ndarray


@dataclass
class Network:
    """A discrete dense logic network: the input bits ``x[f] > thresholds[f, j]`` in feature-major
    order (None: the model reads binary inputs, binarised by the importer's threshold), its layers
    and the GroupSum head."""

    thresholds: np.ndarray | None  # (bits,) for every feature, or (features, bits)
    layers: list[Layer]
    n_classes: int
    tau: float


def gate_ids(weight: torch.Tensor, parametrization: str) -> np.ndarray:
    """The discrete gate of every row of ``weight`` under a library's parametrization."""
    w = weight.detach().to(torch.float32)
    columns = 16 if parametrization == "raw" else 4
    if w.dim() != 2 or w.shape[1] != columns:
        raise DiffgatesError(
            f"a {parametrization} gate layer has {columns} weights per gate, got a weight of shape {tuple(w.shape)}."
        )
    if parametrization == "raw":
        return w.argmax(-1).numpy()
    if parametrization == "light":
        truth = w > 0
    else:
        sums = []
        for a, b in _PATTERNS:
            sa, sb = 1.0 - 2 * a, 1.0 - 2 * b
            sums.append(w[:, 0] + w[:, 1] * sb + w[:, 2] * sa + w[:, 3] * (sa * sb))
        truth = torch.stack(sums, -1) < 0
    return gates.gate_id(truth.numpy())


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


def _from_model(source: str, model: Record) -> Network:
    thresholds, layers, head = None, [], None
    for leaf in _leaves(model):
        if head is not None:
            raise DiffgatesError(f"the model has a {leaf.name} after its GroupSum; only a GroupSum can end it.")
        if leaf.name == "Flatten":
            continue
        if leaf.name in _BINARIZATIONS and source == "torchlogix" and not layers:
            thresholds = _binarization(leaf)
        elif leaf.name == "LogicDense" and source == "torchlogix":
            layers.append(_torchlogix_dense(leaf))
        elif leaf.name == "LogicLayer" and source == "difflogic":
            indices = leaf.__dict__.get("indices")
            weight = leaf.tensor("weights")
            if weight is None or not isinstance(indices, (tuple, list)) or len(indices) != 2:
                raise DiffgatesError("a difflogic LogicLayer in the checkpoint lacks its weights or indices.")
            layers.append(_layer(weight, "raw", torch.stack([torch.as_tensor(t) for t in indices])))
        elif leaf.name == "GroupSum":
            head = (int(leaf.__dict__["k"]), float(leaf.__dict__.get("tau", 1.0)))
        else:
            raise DiffgatesError(
                f"the importer does not support {leaf.kind} (it reads {source}'s dense logic layers, "
                f"{'its binarisation, ' if source == 'torchlogix' else ''}Flatten and GroupSum)."
            )
    if head is None:
        raise DiffgatesError("the model does not end in a GroupSum, so its classes are unknown.")
    return Network(thresholds, layers, *head)


def _binarization(leaf: Record) -> np.ndarray | None:
    if leaf.name == "DummyBinarization":
        return None
    if leaf.__dict__.get("feature_dim", -2) != -2:
        raise DiffgatesError(f"a {leaf.name} with feature_dim {leaf.__dict__['feature_dim']} is not supported (-2 is).")
    diffs = leaf.tensor("raw_diffs")  # LearnableBinarization: eval thresholds are their running sum
    t = torch.cumsum(diffs, dim=-1) if diffs is not None else leaf.tensor("thresholds")
    if t is None:
        raise DiffgatesError(f"the {leaf.name} in the checkpoint has no thresholds.")
    return t.to(torch.float32).numpy()


def _torchlogix_dense(leaf: Record) -> Layer:
    param = leaf.__dict__.get("parametrization")
    kind = getattr(param, "name", "")
    names = {"RawLUTParametrization": "raw", "WarpLUTParametrization": "warp", "LightLUTParametrization": "light"}
    if kind not in names:
        raise DiffgatesError(f"a torchlogix LogicDense uses an unknown parametrization {kind or param!r}.")
    rank = leaf.__dict__.get("lut_rank", 2)
    if rank != 2:
        raise DiffgatesError(
            f"a torchlogix LogicDense with lut_rank={rank} has {rank}-input LUTs; diffgates imports two-input gates "
            "(lut_rank=2) only."
        )
    connections = (leaf.__dict__.get("_modules") or {}).get("connections")
    if getattr(connections, "name", "") != "FixedDenseConnections":
        raise DiffgatesError(
            f"a torchlogix LogicDense with {getattr(connections, 'name', 'unknown')} wiring is not supported; "
            "fixed connections are."
        )
    return _layer(leaf.tensor("weight"), names[kind], connections.tensor("indices"))


def _layer(weight: torch.Tensor | None, parametrization: str, indices: torch.Tensor | None) -> Layer:
    if weight is None:
        raise DiffgatesError("a logic layer in the checkpoint has no weight.")
    if indices is None or indices.dim() != 2 or indices.shape[0] != 2 or indices.shape[1] != len(weight):
        shape = None if indices is None else tuple(indices.shape)
        raise DiffgatesError(
            f"a layer of {len(weight)} gates needs wiring indices of shape (2, {len(weight)}), got {shape}."
        )
    idx = indices.to(torch.int64).numpy()
    return Layer(gate_ids(weight, parametrization), idx[0], idx[1])


def _from_state_dict(source, state: dict, classes, tau, parametrization) -> Network:
    """Layers from the keys ``PREFIX.weight`` (torchlogix) or ``PREFIX.weights`` (difflogic) with the
    wiring saved beside them as ``PREFIX.indices`` (2, gates); torchlogix binarisation from
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
            kind = "raw" if w.dim() == 2 and w.shape[1] == 16 else parametrization
            if kind is None:
                raise DiffgatesError(
                    f"layer {p!r} has 4 weights per gate; give --parametrization warp or light (how it was trained)."
                )
            indices = get("indices") if get("indices") is not None else get("connections.indices")
            if indices is None:
                raise DiffgatesError(
                    f"the state dict has no wiring for layer {p!r} ({source} keeps connection indices outside "
                    f"its state_dict): save the whole model with torch.save(model), or add the indices beside "
                    f"the weights as '{p}.indices', a (2, gates) tensor."
                )
            layers.append(_layer(w, kind, indices))
        elif source == "torchlogix" and (get("thresholds") is not None or get("raw_diffs") is not None) and not layers:
            diffs = get("raw_diffs")
            thresholds = (torch.cumsum(diffs, -1) if diffs is not None else get("thresholds")).float().numpy()
    if not layers:
        raise DiffgatesError(f"the state dict holds no {source} logic layers (no '.{weight_key}' keys).")
    return Network(thresholds, layers, classes, 1.0 if tau is None else tau)


def _check_shapes(net: Network) -> None:
    """Every layer reads inside the one before it, and the last splits into the classes."""
    if not net.layers:
        raise DiffgatesError("the model has no logic layers.")
    if net.n_classes < 1 or net.tau <= 0:
        raise DiffgatesError(f"GroupSum needs classes >= 1 and tau > 0, got {net.n_classes} and {net.tau}.")
    for i, (prev, layer) in enumerate(zip(net.layers, net.layers[1:]), 1):
        top = max(int(layer.ia.max()), int(layer.ib.max()))
        if top >= len(prev.gates) or min(int(layer.ia.min()), int(layer.ib.min())) < 0:
            raise DiffgatesError(f"layer {i} reads input {top}, but layer {i - 1} has {len(prev.gates)} gates.")
    if len(net.layers[-1].gates) % net.n_classes:
        raise DiffgatesError(
            f"the last layer's {len(net.layers[-1].gates)} gates do not split into {net.n_classes} classes."
        )
