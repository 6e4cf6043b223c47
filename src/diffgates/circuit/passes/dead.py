"""Dead-gate elimination: drop every gate that no output depends on."""

from __future__ import annotations

import numpy as np

from ..graph import live_signals
from ..ir import Circuit


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
