"""Bit-parallel execution of a Circuit: 64 samples per machine word.

:func:`run_numpy` is the plain executor (numpy, level by level) and the oracle for the fast one.
"""

from __future__ import annotations

import numpy as np

from .. import gates
from ..errors import DiffgatesError
from .graph import level_groups
from .ir import Circuit, encode_bits


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """(batch, n) 0/1 -> (n, ceil(batch/64)) uint64; sample s is bit s%64 of word s//64."""
    batch, n = bits.shape
    words = -(-batch // 64)
    padded = np.zeros((n, words * 64), dtype=np.uint8)
    padded[:, :batch] = bits.T
    return np.packbits(padded, axis=1, bitorder="little").view("<u8")


def unpack_bits(words: np.ndarray, batch: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: (n, words) uint64 -> (batch, n) uint8."""
    return np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")[:, :batch].T


def group_counts(out_bits: np.ndarray, n_classes: int) -> np.ndarray:
    """(batch, n_outputs) bits -> (batch, n_classes) int64 counts."""
    batch, n_outputs = out_bits.shape
    return out_bits.reshape(batch, n_classes, n_outputs // n_classes).sum(-1, dtype=np.int64)


def run_numpy(circuit: Circuit, bits: np.ndarray) -> np.ndarray:
    """Evaluate on input bits (batch, n_inputs); returns class counts (batch, n_classes)."""
    batch = bits.shape[0]
    n_in = circuit.n_inputs
    packed = pack_bits(bits)
    signals = np.zeros((circuit.n_signals, packed.shape[1]), dtype=np.uint64)
    signals[:n_in] = packed
    for idx in level_groups(circuit):
        ops = circuit.ops[idx][:, None]
        signals[n_in + idx] = gates.eval_bits(ops, signals[circuit.a[idx]], signals[circuit.b[idx]])
    out_bits = unpack_bits(signals[circuit.outputs], batch)
    return group_counts(out_bits, circuit.n_classes)


def predict_counts(circuit: Circuit, x: np.ndarray, engine: str = "auto") -> np.ndarray:
    """Raw features -> class counts (batch, n_classes) int64.

    ``engine``: ``"native"`` (the compiled bit-sliced executor), ``"numpy"`` (the plain oracle), or
    ``"auto"`` (native where a C compiler is available).
    """
    from . import program

    if engine not in ("auto", "native", "numpy"):
        raise DiffgatesError(f"engine must be auto, native or numpy, got {engine!r}.")
    if engine == "numpy" or (engine == "auto" and not program.available()):
        return run_numpy(circuit, encode_bits(circuit, x))
    return program.run_features(program.prepare(circuit), x).astype(np.int64)
