"""Dead-gate elimination: drop every gate that no output depends on."""

from __future__ import annotations

import numpy as np

from ..execute import level_groups
from ..ir import Circuit


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


def remove_dead(circuit: Circuit) -> Circuit:
    n_in = circuit.n_inputs
    live = live_signals(circuit)
    keep = live[n_in:]
    new_index = np.full(circuit.n_signals, -1, dtype=np.int64)
    new_index[:n_in] = np.arange(n_in)
    new_index[n_in:][keep] = n_in + np.arange(keep.sum())
    return circuit.replace(
        ops=circuit.ops[keep],
        a=new_index[circuit.a[keep]],
        b=new_index[circuit.b[keep]],
        layer=circuit.layer[keep],
        outputs=new_index[circuit.outputs],
    )
