"""Unused and duplicate input bits: input bits no gate or output reads are removed with their
encoder thresholds, and input bits comparing the same feature with the same threshold merge."""

from __future__ import annotations

import numpy as np

from ..ir import Circuit


def remove_unused_inputs(circuit: Circuit) -> Circuit:
    n_in = circuit.n_inputs
    used = np.zeros(n_in, dtype=bool)
    for refs in (circuit.a, circuit.b, circuit.outputs):
        used[refs[refs < n_in]] = True
    if not used.any() and circuit.n_gates:
        used[0] = True  # constant gates still need one signal to name as their input
    keys = np.stack([circuit.in_feature[used].astype(np.float64), circuit.in_threshold[used].astype(np.float64)])
    _, first, inverse = np.unique(keys, axis=1, return_index=True, return_inverse=True)
    kept = np.flatnonzero(used)[np.sort(first)]
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    new_index = np.full(circuit.n_signals, -1, dtype=np.int64)
    new_index[np.flatnonzero(used)] = rank[inverse.reshape(-1)]
    new_n = len(kept)
    new_index[n_in:] = new_n + np.arange(circuit.n_gates)
    return circuit.replace(
        in_feature=circuit.in_feature[kept],
        in_threshold=circuit.in_threshold[kept],
        a=new_index[circuit.a],
        b=new_index[circuit.b],
        outputs=new_index[circuit.outputs],
    )
