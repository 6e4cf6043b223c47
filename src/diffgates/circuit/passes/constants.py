"""Constant propagation: FALSE/TRUE gates become constants, and gates fed by a constant reduce to
a constant, a wire or an inverted wire (done for every pass by :func:`rebuild`)."""

from __future__ import annotations

import numpy as np

from ... import gates
from ..ir import Circuit
from .rebuild import FALSE, KEEP, TRUE, rebuild


def _decide(ops, la, lb, next_id):
    return np.where(ops == gates.FALSE, FALSE, np.where(ops == gates.TRUE, TRUE, KEEP))


def propagate_constants(circuit: Circuit) -> Circuit:
    return rebuild(circuit, _decide)
