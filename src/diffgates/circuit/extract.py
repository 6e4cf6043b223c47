"""Model -> Circuit: the only place the discrete world reads the trainable modules."""

from __future__ import annotations

import numpy as np
import torch

from ..nn.model import LogicNet
from .ir import Circuit


@torch.no_grad()
def from_model(model: LogicNet) -> Circuit:
    enc = model.encoder
    n_bits = enc.n_bits
    n_in = enc.out_features
    in_feature = np.repeat(np.arange(enc.n_features), n_bits)
    in_threshold = enc.thresholds_.cpu().numpy().reshape(-1)
    ops, a, b, layer = [], [], [], []
    base, start = 0, n_in  # first signal the layer reads, first signal it writes
    for i, dense in enumerate(model.layers):
        ops.append(dense.gate_ids().cpu().numpy())
        a.append(dense.ia.cpu().numpy() + base)
        b.append(dense.ib.cpu().numpy() + base)
        layer.append(np.full(dense.out_features, i))
        base, start = start, start + dense.out_features
    outputs = np.arange(base, start)
    return Circuit(
        n_features=enc.n_features,
        in_feature=in_feature,
        in_threshold=in_threshold,
        ops=np.concatenate(ops) if ops else np.zeros(0),
        a=np.concatenate(a) if a else np.zeros(0),
        b=np.concatenate(b) if b else np.zeros(0),
        outputs=outputs,
        layer=np.concatenate(layer) if layer else np.zeros(0),
        n_classes=model.head.k,
        tau=model.head.tau,
    ).validate()
