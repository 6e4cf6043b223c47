"""The fast executor: a Circuit prepared into runs of equal ops for the precompiled C kernel.

Preparing is array sorting in numpy (milliseconds for 100K gates); the kernel in ``executor.c``
is compiled once per machine, never per network.
"""

from __future__ import annotations

import ctypes
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .. import gates, native
from ..errors import DiffgatesError
from ..features import NONFINITE, check_features
from .graph import levels, live_signals
from .ir import Circuit

_SOURCE = Path(__file__).with_name("executor.c")
MAX_GROUP = 65535
#: run_op of a three-input function: TERNARY + its truth table (bit 4a + 2b + c: a, b, c the
#: values of slots a, b, c), as AVX-512's ternary-logic instruction takes it.
TERNARY = 256


@dataclass
class Program:
    n_inputs: int
    n_gates: int  # ops run: gates, a fused pair counting once
    n_slots: int  # signal buffer size; the last slot is always zero (group padding)
    run_op: np.ndarray  # uint16 (runs,): a gate (0 .. 15) or TERNARY + a truth table
    run_len: np.ndarray  # int32 (runs,)
    count_after: np.ndarray  # int32 (classes,) class c is counted once its first count_after[c] runs have run
    a: np.ndarray  # int32 (gates,) slots read
    b: np.ndarray
    c: np.ndarray  # the third slot of a three-input function (a copy of a for a gate)
    dst: np.ndarray  # int32 (gates,) slot written
    out_idx: np.ndarray  # int32 (classes, n_pos + n_neg) slots counted: n_pos as they are, then n_neg inverted
    n_pos: int  # multiples of 16, padded with the zero slot
    n_neg: int
    out_offset: np.ndarray  # int32 (classes,) added to each count: TRUE outputs minus inverted padding
    n_classes: int
    n_features: int  # the encoder: input j is feature in_feature[j] > in_threshold[j]
    in_feature: np.ndarray  # int32 (n_inputs,)
    in_threshold: np.ndarray  # float32 (n_inputs,)

    @cached_property
    def operands(self) -> np.ndarray:
        """The kernel's layout of the gates' slots: (gates, 4) rows of a, b, c, dst, 16-bit where
        the buffer has at most 65,536 slots (one 64-bit load a gate), else int32."""
        dtype = np.uint16 if self.n_slots <= 1 << 16 else np.int32
        return np.ascontiguousarray(np.stack([self.a, self.b, self.c, self.dst], 1), dtype=dtype)

    @cached_property
    def levels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """How the kernel encodes float32 features: each feature's distinct thresholds, sorted, so
        that a value becomes its level (how many of them it exceeds, one byte) and input j is
        level >= rank[j] (the rank, from 1, of its threshold among its feature's). (thresholds
        float32 (vectors, 16): for each group of 16 features as many vectors as its features
        have thresholds at most, lane i the next threshold of feature 16 g + i or +inf; at int32
        (groups + 1,): group g's first vector; rank int16 (inputs,)). None where a feature has
        more than 255 thresholds (a byte holds no such level)."""
        nf, f, t = self.n_features, self.in_feature.astype(np.int64), self.in_threshold
        order = np.lexsort((t, f))
        fs, ts = f[order], t[order]
        new = np.r_[True, (fs[1:] != fs[:-1]) | (ts[1:] != ts[:-1])] if len(fs) else np.zeros(0, bool)
        uf, ut = fs[new], ts[new]  # distinct (feature, threshold) pairs, sorted
        per = np.bincount(uf, minlength=nf)
        if len(per) and per.max() > 255:
            return None
        first = np.r_[0, np.cumsum(per)[:-1]]  # each feature's first pair
        pos = np.arange(len(uf)) - first[uf]
        rank = np.empty(len(f), dtype=np.int16)
        rank[order] = (pos + 1)[np.cumsum(new) - 1]
        groups = -(-nf // 16)
        table = np.full((groups * 16, max(int(per.max(initial=0)), 1)), np.inf, dtype=np.float32)
        table[uf, pos] = ut
        m = np.r_[per, np.zeros(groups * 16 - nf, np.int64)].reshape(groups, 16).max(1)
        at = np.r_[0, np.cumsum(m)].astype(np.int32)
        vectors = [table[16 * g : 16 * g + 16, : m[g]].T for g in range(groups)]
        thresholds = np.ascontiguousarray(np.concatenate(vectors) if vectors else np.zeros((0, 16)), np.float32)
        return thresholds, at, rank


def count_plan(circuit: Circuit) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """How the class counts read the circuit: per class the signals counted as they are, the
    signals counted inverted, and a constant.

    A FALSE output adds nothing and a TRUE output adds 1, so neither is read; an output that is a
    NOT gate read by no other gate counts its input inverted (popcount(~x) = n - popcount(x) in
    hardware terms), so the inverter is never evaluated. Random networks are full of both. A
    signal a class counts both as it is and inverted adds 1 whatever its value, so each such
    pair is a constant too (and the gates behind it may be left unevaluated).
    """
    n_in = circuit.n_inputs
    outs = circuit.outputs.astype(np.int64).reshape(circuit.n_classes, -1)
    gate = np.where(outs >= n_in, outs - n_in, circuit.n_gates)  # input bits: a sentinel "gate"
    op = np.r_[circuit.ops.astype(np.int64), -1][gate]
    read = np.zeros(circuit.n_signals, dtype=bool)
    read[circuit.a], read[circuit.b] = True, True
    free_not = ~read[outs] & ((op == gates.NOT_A) | (op == gates.NOT_B))
    neg_src = np.where(op == gates.NOT_A, np.r_[circuit.a, 0][gate], np.r_[circuit.b, 0][gate])
    pos = (op != gates.FALSE) & (op != gates.TRUE) & ~free_not
    plus = [outs[c][pos[c]] for c in range(len(outs))]
    minus = [neg_src[c][free_not[c]].astype(np.int64) for c in range(len(outs))]
    constant = (op == gates.TRUE).sum(1)
    for c in range(len(outs)):
        plus[c], minus[c], pairs = _without_pairs(plus[c], minus[c])
        constant[c] += pairs
    return plus, minus, constant


def _without_pairs(plus: np.ndarray, minus: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Both lists less the pairs of one signal in each (x + ~x = 1), and the number of pairs."""
    pairs = Counter(plus.tolist()) & Counter(minus.tolist())

    def drop(signals):
        left, kept = dict(pairs), []
        for sig in signals.tolist():
            if left.get(sig, 0):
                left[sig] -= 1
            else:
                kept.append(sig)
        return np.array(kept, dtype=np.int64)

    return (drop(plus), drop(minus), sum(pairs.values())) if pairs else (plus, minus, 0)


def allocate_slots(
    n_in: int, reads: tuple[np.ndarray, ...], outputs: np.ndarray, counted_before: np.ndarray
) -> tuple[np.ndarray, int]:
    """Buffer slot of every signal (inputs first, then gates in program order; gate k reads
    signal r[k] for each r in ``reads``), reusing the slot of a signal after its last reader, so
    the buffer holds the live signals only. The counts read signal ``outputs[i]`` before gate
    ``counted_before[i]`` runs (the number of gates: after the last)."""
    n = len(reads[0])
    last = np.full(n_in + n, -1, dtype=np.int64)
    for r in reads:
        np.maximum.at(last, r, np.arange(n))
    np.maximum.at(last, outputs, counted_before)
    dying = [[] for _ in range(n + 1)]
    for sig in np.flatnonzero((last >= 0) & (last < n)).tolist():
        dying[last[sig]].append(sig)
    slot = np.empty(n_in + n, dtype=np.int64)
    slot[:n_in] = np.arange(n_in)
    free = [int(j) for j in np.flatnonzero(last[:n_in] < 0)]
    top = n_in
    for p in range(n):
        free.extend(int(slot[sig]) for sig in dying[p])  # read by gate p for the last time
        if free:
            slot[n_in + p] = free.pop()
        else:
            slot[n_in + p] = top
            top += 1
        if last[n_in + p] < 0:  # dead gate: its slot is free again at once
            free.append(int(slot[n_in + p]))
    return slot, top + 1  # + the zero slot


def fuse_pairs(circuit: Circuit, kept: np.ndarray, depth: np.ndarray, counted: np.ndarray):
    """Three-input functions from pairs of gates: a gate that one other gate reads, once, and the
    counts do not, is computed inside that reader, which becomes one function of the absorbed
    gate's two inputs and its own other input. The pair then costs one instruction with AVX-512,
    and the absorbed gate's store and reload are gone (random networks: about a quarter of the
    gates). Level by level from the inputs; a reader already fused is not absorbed again. Then a
    gate that exactly two gates read, both still two-input gates, and the counts do not, is
    copied into both: two ops instead of three (random networks: 4 % fewer ops).

    ``kept``: the gates evaluated; ``depth``: each gate's level; ``counted``: a mask over signals.
    Returns (op, a, b, c, absorbed) over all gates: op a gate id or TERNARY + truth table (bit
    4a + 2b + c), c the third input (a copy of a for a plain gate), absorbed a mask."""
    n_in = circuit.n_inputs
    a, b = circuit.a.astype(np.int64), circuit.b.astype(np.int64)
    ops = circuit.ops.astype(np.int64)
    reads = np.zeros(circuit.n_signals, dtype=np.int64)
    np.add.at(reads, a[kept], 1)
    np.add.at(reads, b[kept], 1)
    can_go = (reads == 1) & ~counted
    can_go[:n_in] = False
    op, fa, fb, fc = ops.copy(), a.copy(), b.copy(), a.copy()
    absorbed = np.zeros(circuit.n_gates, dtype=bool)
    # truth-table bit i: the inputs' values (where two inputs are one signal, the bits that give
    # them different values are never read)
    i = np.arange(8)[:, None]
    v0, v1, v2 = (i >> 2) & 1, (i >> 1) & 1, i & 1

    def absorb(g, from_b):  # readers g take in their input b (from_b) or a
        inner, other = np.where(from_b, b[g], a[g]) - n_in, np.where(from_b, a[g], b[g])
        w = gates.TRUTH[ops[inner], 2 * v0 + v1]
        out = np.where(from_b, gates.TRUTH[ops[g], 2 * v2 + w], gates.TRUTH[ops[g], 2 * w + v2])
        op[g] = TERNARY + (out << i).sum(0)
        fa[g], fb[g], fc[g] = a[inner], b[inner], other
        absorbed[inner] = True

    for level in np.unique(depth[kept]):
        g = kept[depth[kept] == level]
        from_a = can_go[a[g]]
        from_b = ~from_a & can_go[b[g]]
        g, from_b = g[from_a | from_b], from_b[from_a | from_b]
        absorb(g, from_b)
        can_go[n_in + g] = False  # a three-input function is not absorbed into another
    plain = kept[(op[kept] < TERNARY) & ~absorbed[kept]]  # readers that can still take a gate in
    reader = np.r_[plain, plain]
    from_b = np.r_[np.zeros(len(plain), dtype=bool), np.ones(len(plain), dtype=bool)]
    sig = np.r_[a[plain], b[plain]]
    ok = (reads[sig] == 2) & ~counted[sig] & (sig >= n_in)
    ok[ok] &= op[sig[ok] - n_in] < TERNARY
    reader, from_b, sig = reader[ok], from_b[ok], sig[ok]
    reads_of: dict[int, list[int]] = {}
    for j, s in enumerate(sig.tolist()):
        reads_of.setdefault(s, []).append(j)
    busy: set[int] = set()  # readers that took a gate in here
    chosen: list[int] = []
    for s in sorted(reads_of, key=lambda s: depth[s - n_in]):  # from the inputs, like the pairs
        js = reads_of[s]
        readers = {int(r) for r in reader[js]}
        if len(js) == 2 and len(readers) == 2 and not readers & busy and s - n_in not in busy:
            busy |= readers
            chosen += js
    absorb(reader[chosen], from_b[chosen])
    return op, fa, fb, fc, absorbed


def prepare(circuit: Circuit, ternary: bool = True, classes_in_turn: bool = True) -> Program:
    """Order the gates the counts need by (level, op), renumber signals so each run of equal ops
    is contiguous, give every signal a buffer slot, and lay out the class counts (:func:`count_plan`)
    and when each class is counted (``count_after``).
    ``ternary``: fuse pairs of gates into three-input functions (:func:`fuse_pairs`; the
    executor's), else two-input gates only (the exported C's). ``classes_in_turn``: the gates
    that only one class's count reads come last, class by class, each class counted right after
    its own (the executor's: they are counted while still cached, and the slots of what a class
    counts are free again after its count), else every class is counted after all gates."""
    n_in = circuit.n_inputs
    plus, minus, n_true = count_plan(circuit)
    roots = np.concatenate([*plus, *minus, np.zeros(0, dtype=np.int64)])
    kept = np.flatnonzero(live_signals(circuit, roots)[n_in:])
    depth = levels(circuit)
    if ternary:
        counted = np.zeros(circuit.n_signals, dtype=bool)
        counted[roots] = True
        ops, fa, fb, fc, absorbed = fuse_pairs(circuit, kept, depth, counted)
        kept = kept[~absorbed[kept]]
    else:
        ops, fa, fb = circuit.ops.astype(np.int64), circuit.a, circuit.b
        fc = fa
    per_class = [np.r_[plus[k], minus[k]].astype(np.int64) for k in range(circuit.n_classes)]
    owner = _owners(circuit, kept, (fa, fb, fc), per_class) if classes_in_turn else np.full(len(kept), -1)
    perm = np.lexsort((ops[kept], np.where(owner < 0, depth[kept], 0), owner))
    order, owner = kept[perm], owner[perm]
    n = len(order)
    new_sig = np.full(circuit.n_signals, -1, dtype=np.int64)
    new_sig[:n_in] = np.arange(n_in)
    new_sig[n_in + order] = n_in + np.arange(n)
    a, b, c = new_sig[fa[order]], new_sig[fb[order]], new_sig[fc[order]]
    ops = ops[order]
    new_run = (ops[1:] != ops[:-1]) | (owner[1:] != owner[:-1])
    starts = np.flatnonzero(np.r_[True, new_run]) if n else np.zeros(0, dtype=np.int64)
    run_len = np.diff(np.r_[starts, n])
    # class c is counted once the gates up to its own have run (the shared ones: owner -1)
    gates_before = np.searchsorted(owner, np.arange(circuit.n_classes), side="right")
    when = np.repeat(gates_before, [len(s) for s in per_class])
    slot, n_slots = allocate_slots(n_in, (a, b, c), new_sig[np.concatenate(per_class)], when)
    zero = n_slots - 1
    n_pos = -(-max(map(len, plus)) // 16) * 16
    n_neg = -(-max(map(len, minus)) // 16) * 16
    if n_pos + n_neg > MAX_GROUP:  # the per-sample counters are 16-bit
        raise DiffgatesError(f"the fast executor counts at most {MAX_GROUP} outputs per class.")

    def rows(groups, width):  # each class's slots in buffer order: wide networks count from the L3
        out = np.full((circuit.n_classes, width), zero, dtype=np.int64)
        for k, sig in enumerate(groups):
            out[k, : len(sig)] = np.sort(slot[new_sig[sig]])
        return out

    neg_pad = n_neg - np.array([len(m) for m in minus])  # inverted zero slots each count 1
    i32 = lambda v: np.ascontiguousarray(v, dtype=np.int32)  # noqa: E731
    return Program(
        n_inputs=n_in,
        n_gates=n,
        n_slots=n_slots,
        run_op=np.ascontiguousarray(ops[starts], dtype=np.uint16),
        run_len=i32(run_len),
        count_after=i32(np.searchsorted(starts, gates_before)),
        a=i32(slot[a]),
        b=i32(slot[b]),
        c=i32(slot[c]),
        dst=i32(slot[n_in:]),
        out_idx=i32(np.concatenate([rows(plus, n_pos), rows(minus, n_neg)], axis=1)),
        n_pos=n_pos,
        n_neg=n_neg,
        out_offset=i32(n_true - neg_pad),
        n_classes=circuit.n_classes,
        n_features=circuit.n_features,
        in_feature=i32(circuit.in_feature),
        in_threshold=np.ascontiguousarray(circuit.in_threshold, dtype=np.float32),
    )


def _owners(circuit: Circuit, kept: np.ndarray, reads: tuple[np.ndarray, ...], per_class: list) -> np.ndarray:
    """For each gate in ``kept``: the class whose count alone reads it (no gate in ``kept`` reads
    it through ``reads``, no other class counts it: ``per_class[k]``, the signals class k counts),
    else -1."""
    n_in = circuit.n_inputs
    read = np.zeros(circuit.n_signals, dtype=bool)
    for r in reads:
        read[r[kept]] = True
    owner = np.full(circuit.n_signals, -1, dtype=np.int64)
    many = read.copy()
    for k, counted in enumerate(per_class):
        sig = np.unique(counted)
        many[sig] |= owner[sig] >= 0
        owner[sig] = k
    owner[many] = -1
    return owner[n_in + kept]


def available() -> bool:
    return native.available(_SOURCE)


def _p(array: np.ndarray | None) -> ctypes.c_void_p:
    return ctypes.c_void_p(None if array is None else array.ctypes.data)


def check_threads(threads) -> int:
    """A thread count as given (a positive integer), or the process's setting for None
    (:func:`diffgates.kernels.set_threads`; every core unless set)."""
    if threads is None:
        return native.threads()
    if (
        isinstance(threads, bool)
        or not isinstance(threads, (int, np.integer))
        or not 1 <= threads <= native.MAX_THREADS
    ):
        raise DiffgatesError(
            f"threads must be an integer from 1 to {native.MAX_THREADS} (or None: every core), got {threads!r}."
        )
    return int(threads)


def run(program: Program, bits: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Class counts (batch, n_classes) int32 from input bits (batch, n_inputs), on ``threads``
    threads (None: the process's setting). uint8 and bool bits are read where they lie (a bool is
    one byte, 0 or 1); bits of another type must be 0 or 1, and are copied into bytes."""
    bits = np.asarray(bits)
    if bits.dtype == np.bool_:
        bits = bits.view(np.uint8)
    elif bits.dtype != np.uint8:
        if not np.isin(bits, (0, 1)).all():
            raise DiffgatesError(f"input bits must be 0 or 1; got {bits.dtype} values outside them.")
        bits = bits.astype(np.uint8, order="C")  # contiguous already: not copied twice
    bits = np.ascontiguousarray(bits)
    if bits.ndim != 2 or bits.shape[1] != program.n_inputs:
        raise DiffgatesError(f"expected input bits of shape (batch, {program.n_inputs}), got {bits.shape}.")
    return _run(program, bits, 0, threads)


def run_packed(program: Program, packed: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Class counts (batch, n_classes) int32 from input bits packed eight a byte, least significant
    bit first: ``np.packbits(bits, axis=1, bitorder="little")``, (batch, ceil(n_inputs / 8))
    uint8. An eighth of the bytes of :func:`run`'s input to read, and faster to transpose."""
    packed = np.asarray(packed)
    width = (program.n_inputs + 7) // 8
    if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape[1] != width:
        raise DiffgatesError(
            f"expected packed input bits, uint8 of shape (batch, {width}) "
            f"(np.packbits(bits, axis=1, bitorder='little')), got {packed.dtype} {packed.shape}."
        )
    return _run(program, np.ascontiguousarray(packed), 3, threads)


_FEATURE_KINDS = {np.dtype(np.uint8): 1, np.dtype(np.float32): 2}


def run_features(program: Program, x: np.ndarray, threads: int | None = None, labels: bool = False) -> np.ndarray:
    """Class counts (batch, n_classes) int32 from raw features (batch, n_features), encoded inside
    the kernel while the bits are packed: no bit matrix is made. uint8 and float32 features are
    read as they are; other types are converted to float32 first (the encoder's compare). The
    kernel refuses NaN and infinite values as it reads them. ``labels``: instead of the counts,
    each sample's class of the largest count (batch,) int64, the first of equal ones as
    ``counts.argmax(1)`` gives, found in the kernel."""
    x = np.asarray(x)
    check_features(x, program.n_features, finite=False)
    kind = _FEATURE_KINDS.get(x.dtype, 2)
    x = np.ascontiguousarray(x, dtype=x.dtype if kind == 1 else np.float32)
    return _run(program, x, kind, threads, labels)


def _library(n_rows: int, wide_slots: bool = False, ahead: bool = False):
    """The executor build for a batch of ``n_rows``: every block costs as much as a full one, so a
    small batch takes the narrowest block that holds it (64, 128 or 256 samples per signal; one
    image: a quarter of the time of a 512-sample block); larger ones the build's own width.
    ``wide_slots``: the build for int32 slot numbers (:attr:`Program.operands`); ``ahead``: the
    build whose gates prefetch the next block's input rows (for batches of several blocks)."""
    wide = ("WIDE_SLOTS=1",) if wide_slots else ()
    for words in (1, 2, 4):
        if n_rows <= 64 * words:
            return native.load(_SOURCE, defines=(f"WORDS={words}", *wide))
    return native.load(_SOURCE, defines=(*wide, *(("AHEAD=1",) if ahead else ())))


def prefetches_ahead(program: Program) -> bool:
    """Whether the gates prefetch the next block's input: where the signal buffer (64 bytes a
    slot) takes at most half of a core's L2 cache, so the rows fit beside it; a larger buffer
    already keeps the L2 busy, and the prefetches' instructions cost more than they save."""
    return program.n_slots * 64 <= native.l2_cache_bytes() // 2


def library_for(program: Program, n_rows: int):
    """The executor build that runs ``program`` on a batch of ``n_rows``."""
    return _library(n_rows, program.operands.dtype == np.int32, prefetches_ahead(program))


def _run(program: Program, x: np.ndarray, kind: int, threads: int | None, labels: bool = False) -> np.ndarray:
    threads = check_threads(threads)
    lib = library_for(program, x.shape[0])
    levels = program.levels if kind == 2 else None
    thresholds, level_at, rank = levels if levels is not None else (None, None, None)
    # every count (or label) is written
    counts = None if labels else np.empty((x.shape[0], program.n_classes), dtype=np.int32)
    classes = np.empty(x.shape[0], dtype=np.int64) if labels else None
    i64 = ctypes.c_int64
    rc = lib.run_circuit(
        _p(x),
        ctypes.c_int(kind),
        i64(x.shape[0]),
        i64(program.n_inputs),
        i64(program.n_features),
        _p(program.in_feature),
        _p(program.in_threshold),
        _p(thresholds),
        _p(level_at),
        _p(rank),
        i64(program.n_slots),
        _p(program.run_op),
        _p(program.run_len),
        i64(len(program.run_op)),
        _p(program.count_after),
        _p(program.operands),
        _p(program.out_idx),
        _p(program.out_offset),
        i64(program.n_classes),
        i64(program.n_pos),
        i64(program.n_neg),
        _p(counts),
        _p(classes),
        ctypes.c_int(threads),
    )
    if rc == -2:
        raise DiffgatesError(NONFINITE)
    if rc != 0:
        raise MemoryError("the circuit executor could not allocate its signal buffers")
    return classes if labels else counts


class Executor:
    """A circuit optimised and prepared once, then run many times (the fast inference API).

    >>> ex = Executor(circuit)
    >>> counts = ex.counts(x)      # raw features -> class counts (batch, n_classes)
    >>> labels = ex.predict(x)     # argmax, first maximum wins
    """

    def __init__(self, circuit: Circuit, optimise: bool = True, threads: int | None = None):
        from .passes import optimize

        if not isinstance(circuit, Circuit):
            raise DiffgatesError(f"Executor takes a Circuit, got {type(circuit).__name__}.")
        self.threads = check_threads(threads) if threads is not None else None
        self.circuit = optimize(circuit)[0] if optimise else circuit
        self.program = prepare(self.circuit)

    def counts_from_bits(self, bits: np.ndarray) -> np.ndarray:
        return run(self.program, bits, self.threads)

    def counts_from_packed_bits(self, packed: np.ndarray) -> np.ndarray:
        """Counts from the bits :func:`run_packed` takes (the optimised circuit's inputs)."""
        return run_packed(self.program, packed, self.threads)

    def counts(self, x: np.ndarray) -> np.ndarray:
        return run_features(self.program, x, self.threads)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Each sample's class (batch,) int64: ``counts(x).argmax(1)``, the first of equal counts,
        found in the kernel without storing the counts."""
        return run_features(self.program, x, self.threads, labels=True)
