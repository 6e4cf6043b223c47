"""The fast executor: a Circuit prepared into runs of equal ops for the precompiled C kernel.

Preparing is array sorting in numpy (milliseconds for 100K gates); the kernel in ``executor.c``
is compiled once per machine, never per network.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import native
from ..errors import DiffgatesError
from .execute import levels
from .ir import Circuit

_SOURCE = Path(__file__).with_name("executor.c")
MAX_GROUP = 65535


@dataclass
class Program:
    n_inputs: int
    n_gates: int
    run_op: np.ndarray  # uint8 (runs,)
    run_len: np.ndarray  # int32 (runs,)
    a: np.ndarray  # int32 (gates,) signal indices in program numbering
    b: np.ndarray
    out_idx: np.ndarray  # int32 (classes, group_len), padded with the zero signal
    n_classes: int


def prepare(circuit: Circuit) -> Program:
    """Order gates by (level, op) and renumber signals so each run of equal ops is contiguous."""
    if circuit.group_size > MAX_GROUP:
        raise DiffgatesError(f"the fast executor counts at most {MAX_GROUP} outputs per class.")
    n_in, n = circuit.n_inputs, circuit.n_gates
    order = np.lexsort((circuit.ops, levels(circuit)))
    new_sig = np.empty(n_in + n + 1, dtype=np.int64)
    new_sig[:n_in] = np.arange(n_in)
    new_sig[n_in + order] = n_in + np.arange(n)
    new_sig[n_in + n] = n_in + n  # the zero signal used for padding
    ops = circuit.ops[order]
    starts = np.flatnonzero(np.r_[True, ops[1:] != ops[:-1]]) if n else np.zeros(0, dtype=np.int64)
    run_len = np.diff(np.r_[starts, n])
    group = circuit.outputs.reshape(circuit.n_classes, -1)
    pad = -group.shape[1] % 16
    group = np.pad(new_sig[group], ((0, 0), (0, pad)), constant_values=n_in + n)
    return Program(
        n_inputs=n_in,
        n_gates=n,
        run_op=np.ascontiguousarray(ops[starts], dtype=np.uint8),
        run_len=run_len.astype(np.int32),
        a=new_sig[circuit.a[order]].astype(np.int32),
        b=new_sig[circuit.b[order]].astype(np.int32),
        out_idx=np.ascontiguousarray(group, dtype=np.int32),
        n_classes=circuit.n_classes,
    )


def available() -> bool:
    try:
        native.load(_SOURCE)
        return True
    except native.NativeUnavailable:
        return False


def _p(array: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(array.ctypes.data)


def run(program: Program, bits: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Class counts (batch, n_classes) int32 from input bits (batch, n_inputs) uint8 (0/1)."""
    bits = np.ascontiguousarray(bits, dtype=np.uint8)
    if bits.ndim != 2 or bits.shape[1] != program.n_inputs:
        raise DiffgatesError(f"expected input bits of shape (batch, {program.n_inputs}), got {bits.shape}.")
    lib = native.load(_SOURCE)
    counts = np.zeros((bits.shape[0], program.n_classes), dtype=np.int32)
    i64 = ctypes.c_int64
    rc = lib.run_circuit(
        _p(bits), i64(bits.shape[0]), i64(program.n_inputs), i64(program.n_gates), _p(program.run_op),
        _p(program.run_len), i64(len(program.run_op)), _p(program.a), _p(program.b), _p(program.out_idx),
        i64(program.n_classes), i64(program.out_idx.shape[1]), _p(counts), ctypes.c_int(threads or os.cpu_count() or 1),
    )
    if rc != 0:
        raise MemoryError("the circuit executor could not allocate its signal buffers")
    return counts
