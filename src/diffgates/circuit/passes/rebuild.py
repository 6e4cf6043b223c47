"""The shared machinery of the rewriting passes: literals and a level-by-level rebuild.

A *literal* is ``2 * signal + negated``, or a constant: ``FALSE = -2`` and ``TRUE = -1``, so that
``lit ^ 1`` negates any literal. A pass decides, for every gate of one logic level at a time
(vectorised), whether the gate becomes an existing literal (a wire, an inverted wire, a constant)
or stays a gate. Negated inputs of kept gates are absorbed into their op (NEG_A / NEG_B), so the
rebuilt circuit again has plain signal inputs; constants reaching a kept gate are propagated.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ... import gates
from ..graph import level_groups
from ..ir import Circuit

FALSE, TRUE = -2, -1
KEEP = np.iinfo(np.int64).min  # decision: emit the gate


def reduce_one_input(truth_pair: tuple[np.ndarray, np.ndarray], lit: np.ndarray) -> np.ndarray:
    """Literal of f(x) given f(0), f(1) as 0/1 arrays: constant, x or NOT x."""
    f0, f1 = truth_pair
    out = np.where(f0 == f1, np.where(f0 == 1, TRUE, FALSE), np.where(f1 == 1, lit, lit ^ 1))
    return out.astype(np.int64)


def propagate_constant_inputs(ops, la, lb) -> np.ndarray:
    """Literal for FALSE and TRUE gates and for gates with a constant input, KEEP elsewhere."""
    out = np.where(ops == gates.FALSE, FALSE, np.where(ops == gates.TRUE, TRUE, KEEP)).astype(np.int64)
    ca, cb = la < 0, lb < 0
    va, vb = la + 2, lb + 2  # constant values where constant
    both = ca & cb & (out == KEEP)
    out[both] = np.where(gates.TRUTH[ops[both], 2 * va[both] + vb[both]] == 1, TRUE, FALSE)
    m = ca & ~cb & (out == KEEP)  # f(b) = T[2 va + b]
    t = gates.TRUTH[ops[m]]
    out[m] = reduce_one_input((t[np.arange(m.sum()), 2 * va[m]], t[np.arange(m.sum()), 2 * va[m] + 1]), lb[m])
    m = cb & ~ca & (out == KEEP)  # f(a) = T[2 a + vb]
    t = gates.TRUTH[ops[m]]
    out[m] = reduce_one_input((t[np.arange(m.sum()), vb[m]], t[np.arange(m.sum()), 2 + vb[m]]), la[m])
    return out


Decide = Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


def rebuild(circuit: Circuit, decide: Decide) -> Circuit:
    """Rewrite ``circuit`` level by level.

    ``decide(ops, la, lb, next_id)`` returns a literal or KEEP per gate; kept gates get signal ids
    ``next_id, next_id + 1, ...`` in batch order (structural hashing needs to know them).
    """
    n_in = circuit.n_inputs
    lit_of = np.empty(circuit.n_signals, dtype=np.int64)
    lit_of[:n_in] = 2 * np.arange(n_in)
    new_ops, new_a, new_b, new_layer = [], [], [], []
    n_new = 0
    for idx in level_groups(circuit):
        ops = circuit.ops[idx].astype(np.int64)
        la, lb = lit_of[circuit.a[idx]], lit_of[circuit.b[idx]]
        result = propagate_constant_inputs(ops, la, lb)
        todo = result == KEEP
        result[todo] = decide(ops[todo], la[todo], lb[todo], n_in + n_new)
        keep = result == KEEP
        k_ops, k_a, k_b = ops[keep], la[keep], lb[keep]
        k_ops = np.where(k_a & 1, gates.NEG_A[k_ops], k_ops)
        k_ops = np.where(k_b & 1, gates.NEG_B[k_ops], k_ops)
        new_ids = n_in + n_new + np.arange(keep.sum())
        result[keep] = 2 * new_ids
        n_new += int(keep.sum())
        new_ops.append(k_ops)
        new_a.append(k_a >> 1)
        new_b.append(k_b >> 1)
        new_layer.append(circuit.layer[idx][keep])
        lit_of[n_in + idx] = result
    out_lits = lit_of[circuit.outputs]
    # outputs that are constants or inverted signals get an explicit gate
    special = (out_lits < 0) | (out_lits & 1 == 1)
    if special.any():
        uniq, inverse = np.unique(out_lits[special], return_inverse=True)
        src = np.where(uniq < 0, 0, uniq >> 1)
        ops = np.where(uniq == TRUE, gates.TRUE, np.where(uniq == FALSE, gates.FALSE, gates.NOT_A))
        new_ops.append(ops)
        new_a.append(src)
        new_b.append(src)
        new_layer.append(np.full(len(uniq), circuit.layer.max(initial=0)))
        out_lits[special] = 2 * (n_in + n_new + inverse)
        n_new += len(uniq)
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)  # noqa: E731
    return circuit.replace(ops=cat(new_ops), a=cat(new_a), b=cat(new_b), layer=cat(new_layer), outputs=out_lits >> 1)
