"""Model -> Circuit: lowering a trained model to the discrete world (the only place that reads both).

Convolutions are unrolled: every kernel at every position becomes its own tree of gates, and OR
pooling becomes 2-input OR gates. Zero padding reads one FALSE gate, which constant propagation
removes later.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import gates
from ..circuit.ir import Circuit
from ..circuit.merge import merge
from ..errors import DiffgatesError
from ..kernels.torch_ops import pool_windows
from .ensemble import Ensemble
from .model import LogicNet


class _Builder:
    """Appends gates in topological order; signal ids follow the Circuit numbering."""

    def __init__(self, n_inputs: int):
        self.next = n_inputs
        self.ops, self.a, self.b, self.layer = [], [], [], []

    def add(self, ops, a, b, layer: int) -> np.ndarray:
        a = np.asarray(a).reshape(-1)
        n = len(a)
        self.ops.append(np.broadcast_to(np.asarray(ops), (n,)).astype(np.int64))
        self.a.append(a)
        self.b.append(np.asarray(b).reshape(-1))
        self.layer.append(np.full(n, layer))
        out = np.arange(self.next, self.next + n)
        self.next += n
        return out

    def cat(self, arrays: list) -> np.ndarray:
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)


def _unroll_conv(conv, signals: np.ndarray, zero: int, build: _Builder, layer: int) -> np.ndarray:
    """Signals of a LogicConv2d's pooled output map, in its (kernel, y, x) feature order."""
    rows = conv.leaf_rows().cpu().numpy()  # (kernels, positions, leaves)
    ops = conv.gate_ids().cpu().numpy()  # (kernels, gates)
    k, n_pos, n_leaves = rows.shape
    nodes = [np.where(rows[:, :, leaf] < 0, zero, signals[np.maximum(rows[:, :, leaf], 0)]) for leaf in range(n_leaves)]
    for g in range(n_leaves - 1):
        op = np.repeat(ops[:, g], n_pos)
        nodes.append(build.add(op, nodes[2 * g], nodes[2 * g + 1], layer).reshape(k, n_pos))
    root = nodes[-1]
    size, pad = conv.spec.pool, conv.spec.pool_padding
    if size == 1:
        return root.reshape(-1)
    # windows reaching outside the map read 0, the identity of OR
    windows = pool_windows(torch.as_tensor(root).view(conv.conv_shape), size, pad, zero)
    slots = windows.reshape(-1, size * size).numpy()
    acc = slots[:, 0]
    for w in range(1, size * size):
        acc = build.add(gates.OR, acc, slots[:, w], layer)
    return acc


@torch.no_grad()
def to_circuit(model: LogicNet | Ensemble) -> Circuit:
    """The discrete network of a trained model (an ensemble: one circuit adding the members' counts)."""
    if isinstance(model, Ensemble):
        return merge([to_circuit(m) for m in model.members])
    enc = model.encoder
    if not enc.fitted:  # the circuit's encoder is the fitted thresholds
        raise DiffgatesError("the model's encoder is not fitted; call model.encoder.fit(x_train) first.")
    n_in = enc.out_features
    build = _Builder(n_in)
    signals = model.input_order().numpy()  # row i of the first layer's input reads this input bit
    layer = 0
    if len(model.convs):
        zero = int(build.add(gates.FALSE, [0], [0], 0)[0])
        bits, outputs = signals, []
        for conv in model.convs:
            signals = _unroll_conv(conv, signals, zero, build, layer)
            outputs.append(signals)
            layer += 1
        signals = np.concatenate(model.head_sources(bits, outputs))  # what the dense layers read
    skip = model.skip_bits().numpy()  # input bits the output layer reads beside the previous layer
    for i, dense in enumerate(model.layers):
        if i == len(model.layers) - 1 and len(skip):
            signals = np.concatenate([signals, skip])
        ia, ib = (w.cpu().numpy() for w in dense.wiring())
        signals = build.add(dense.gate_ids().cpu().numpy(), signals[ia], signals[ib], layer)
        layer += 1
    return Circuit(
        n_features=enc.n_features,
        in_feature=np.repeat(np.arange(enc.n_features), enc.n_bits),
        in_threshold=enc.thresholds_.cpu().numpy().reshape(-1),
        ops=build.cat(build.ops),
        a=build.cat(build.a),
        b=build.cat(build.b),
        outputs=signals,
        layer=build.cat(build.layer),
        n_classes=model.head.k,
        tau=model.head.tau,
        argmax=model.config.argmax,
    )
