"""Wire and negation folding: pass-through gates (A, B) become wires, NOT A / NOT B become
inverted wires absorbed by their readers (so double negations vanish), and gates reading the
same signal twice (or a signal and its negation) reduce to one-input functions."""

from __future__ import annotations

import numpy as np

from ... import gates
from .rebuild import KEEP, rebuild, reduce_one_input


def _decide(ops, la, lb, next_id):
    out = np.full(len(ops), KEEP, dtype=np.int64)
    out = np.where(ops == gates.A, la, out)
    out = np.where(ops == gates.B, lb, out)
    out = np.where(ops == gates.NOT_A, la ^ 1, out)
    out = np.where(ops == gates.NOT_B, lb ^ 1, out)
    t = gates.TRUTH[ops]
    same = (la == lb) & (out == KEEP)  # f(x, x): patterns 00 and 11
    out[same] = reduce_one_input((t[same, 0], t[same, 3]), la[same])
    opposite = (la == (lb ^ 1)) & (out == KEEP)  # f(x, NOT x): patterns 01 and 10
    out[opposite] = reduce_one_input((t[opposite, 1], t[opposite, 2]), la[opposite])
    return out


def fold_wires(circuit):
    return rebuild(circuit, _decide)
