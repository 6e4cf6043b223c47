"""Graph facts of a Circuit: logic depth, independent levels, which signals the outputs need."""

from __future__ import annotations

import numpy as np

from .ir import Circuit


def levels(circuit: Circuit) -> np.ndarray:
    """Logic depth of each gate (inputs are depth 0), by relaxation sweeps over the gate arrays."""
    n_in = circuit.n_inputs
    depth = np.zeros(circuit.n_signals, dtype=np.int64)
    a, b = circuit.a.astype(np.int64), circuit.b.astype(np.int64)
    while True:
        new = 1 + np.maximum(depth[a], depth[b])
        if np.array_equal(new, depth[n_in:]):
            return new
        depth[n_in:] = new


def level_groups(circuit: Circuit) -> list[np.ndarray]:
    """Gate indices level by level, shallowest first (gates of one level are independent)."""
    depth = levels(circuit)
    order = np.argsort(depth, kind="stable")
    bounds = np.searchsorted(depth[order], np.arange(1, depth.max(initial=0) + 2))
    return [order[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


def input_centroids(circuit: Circuit) -> np.ndarray:
    """Where in the input each signal looks: an input's feature index, a gate's the mean of its two
    inputs' (for images, about the raster index of the gate's receptive field centre)."""
    n_in = circuit.n_inputs
    where = np.zeros(circuit.n_signals)
    where[:n_in] = circuit.in_feature
    for idx in level_groups(circuit):
        where[n_in + idx] = (where[circuit.a[idx]] + where[circuit.b[idx]]) / 2
    return where


def live_signals(circuit: Circuit, roots: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask over signals: True where some output (or one of ``roots``) depends on it."""
    n_in = circuit.n_inputs
    live = np.zeros(circuit.n_signals, dtype=bool)
    live[circuit.outputs if roots is None else roots] = True
    for idx in reversed(level_groups(circuit)):  # deepest first: a gate's readers come before it
        idx = idx[live[n_in + idx]]
        live[circuit.a[idx]] = True
        live[circuit.b[idx]] = True
    return live
