"""Structural hashing: gates computing the same function of the same two signals merge (inputs
put in canonical order and negations absorbed first), and a gate computing the complement of an
earlier one becomes its inverted wire."""

from __future__ import annotations

import numpy as np

from ... import gates
from ..ir import Circuit
from .rebuild import KEEP, rebuild


def canonical(ops, la, lb):
    """(op, a, b) with input negations absorbed and a <= b, so equal functions get equal keys."""
    ops = np.where(la & 1, gates.NEG_A[ops], ops)
    ops = np.where(lb & 1, gates.NEG_B[ops], ops)
    a, b = la >> 1, lb >> 1
    swap = a > b
    return np.where(swap, gates.SWAP[ops], ops), np.minimum(a, b), np.maximum(a, b)


class _Hasher:
    def __init__(self):
        self.table: dict[tuple[int, int, int], int] = {}

    def __call__(self, ops, la, lb, next_id):
        ops, a, b = canonical(ops, la, lb)
        out = np.full(len(ops), KEEP, dtype=np.int64)
        for i, key in enumerate(zip(ops.tolist(), a.tolist(), b.tolist())):
            hit = self.table.get(key)
            if hit is not None:
                out[i] = hit
                continue
            hit = self.table.get((int(gates.COMPLEMENT[key[0]]), key[1], key[2]))
            if hit is not None:
                out[i] = hit ^ 1
                continue
            self.table[key] = 2 * next_id
            next_id += 1
        return out


def hash_structure(circuit: Circuit) -> Circuit:
    return rebuild(circuit, _Hasher())
