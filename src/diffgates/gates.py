"""The 16 two-input logic gates: the single source every layer, kernel and backend derives from.

Numbering follows the original difflogic work. Bit ``k`` of a gate id is the gate's output for
the input pattern ``3 - k`` where a pattern is ``2*A + B``; so the truth table of gate ``g`` in
pattern order 00, 01, 10, 11 is ``(g >> 3, g >> 2, g >> 1, g) & 1``.

Every relaxed (probabilistic) gate is an affine combination of the basis ``{1, a, b, ab}``:
``relaxed(g, a, b) = c0 + c1 a + c2 b + c3 ab`` with ``c = BASIS[g]``.
"""

from __future__ import annotations

import numpy as np

N_GATES = 16

NAMES: tuple[str, ...] = (
    "FALSE",
    "AND",
    "A_AND_NOT_B",
    "A",
    "NOT_A_AND_B",
    "B",
    "XOR",
    "OR",
    "NOR",
    "XNOR",
    "NOT_B",
    "A_OR_NOT_B",
    "NOT_A",
    "NOT_A_OR_B",
    "NAND",
    "TRUE",
)

FALSE, AND, A_AND_NOT_B, A, NOT_A_AND_B, B, XOR, OR = range(8)
NOR, XNOR, NOT_B, A_OR_NOT_B, NOT_A, NOT_A_OR_B, NAND, TRUE = range(8, 16)

#: TRUTH[g, p]: output of gate g for input pattern p = 2*A + B (00, 01, 10, 11).
TRUTH = np.array([[(g >> (3 - p)) & 1 for p in range(4)] for g in range(N_GATES)], dtype=np.int64)

#: PATTERN_BASIS[p]: probability of pattern p written in the basis {1, a, b, ab}.
PATTERN_BASIS = np.array(
    [
        [1, -1, -1, 1],  # P(00) = (1-a)(1-b)
        [0, 0, 1, -1],  # P(01) = (1-a) b
        [0, 1, 0, -1],  # P(10) = a (1-b)
        [0, 0, 0, 1],  # P(11) = a b
    ],
    dtype=np.int64,
)

#: BASIS[g]: coefficients (c0, c1, c2, c3) of the relaxed gate g in {1, a, b, ab}.
BASIS = TRUTH @ PATTERN_BASIS


def gate_id(truth: np.ndarray) -> np.ndarray:
    """Gate ids from truth tables of shape (..., 4) in pattern order 00, 01, 10, 11."""
    truth = np.asarray(truth).astype(np.int64)
    return (truth[..., 0] << 3) | (truth[..., 1] << 2) | (truth[..., 2] << 1) | truth[..., 3]


def eval_bits(ops: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Evaluate gates bitwise on integer words (any unsigned dtype); ``ops`` broadcasts."""
    ops = np.asarray(ops)
    a = np.asarray(a)
    b = np.asarray(b)
    zero = np.zeros((), dtype=a.dtype)
    full = ~zero
    out = np.zeros(np.broadcast_shapes(ops.shape, a.shape, b.shape), dtype=a.dtype)
    for p, minterm in enumerate((~a & ~b, ~a & b, a & ~b, a & b)):
        mask = np.where(TRUTH[ops, p] == 1, full, zero)
        out |= mask & minterm
    return out


def relaxed(ops, a, b):
    """The real-valued relaxation of gate(s) ``ops`` on probabilities ``a``, ``b`` (numpy or torch)."""
    c = BASIS[np.asarray(ops)]
    c0, c1, c2, c3 = (int(v) for v in c) if c.ndim == 1 else (c[..., k] for k in range(4))
    return c0 + c1 * a + c2 * b + c3 * a * b


def _derive(transform) -> np.ndarray:
    """Gate id table: for each gate, the gate whose truth table is ``transform(truth)``."""
    return np.array([int(gate_id(transform(TRUTH[g]))) for g in range(N_GATES)], dtype=np.int64)


#: COMPLEMENT[g]: NOT g.  NEG_A[g]: g with input A inverted.  NEG_B[g]: with B inverted.
#: SWAP[g]: g with its inputs exchanged, so g(a, b) == SWAP[g](b, a).
COMPLEMENT = _derive(lambda t: 1 - t)
NEG_A = _derive(lambda t: t[[2, 3, 0, 1]])
NEG_B = _derive(lambda t: t[[1, 0, 3, 2]])
SWAP = _derive(lambda t: t[[0, 2, 1, 3]])

#: READS_A[g] / READS_B[g]: whether gate g's output depends on input A / B (inverting it changes g).
READS_A = NEG_A != np.arange(N_GATES)
READS_B = NEG_B != np.arange(N_GATES)

#: Gates that read both inputs: the rest (constants, wires, inverted wires) cost nothing in a
#: compiled circuit, whose passes fold them into their neighbours.
TWO_INPUT = READS_A & READS_B
