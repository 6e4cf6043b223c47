"""Where the circuit executor's time goes: packing the input, the gates, the class counts, storing them.

    .venv/bin/python benchmarks/executor_phases.py [--width 8000] [--samples 200000] [--rounds 5] [--threads 1]

Runs an instrumented build of ``circuit/executor.c`` (``PHASES``: each block's phases timed with
the wall clock, a few nanoseconds a block) on a random 784 -> 6 x width network, from the
encoded bits a byte each (``program.run``), packed eight a byte (``program.run_packed``) and as
uint8 and float32 features (``program.run_features``), after checking its counts against the
numpy oracle. Each round runs every input three times and
gives nanoseconds an image per phase (summed over the threads' blocks, so with more than one
thread they are thread time); the output (JSON) holds the median over rounds. The build is the
one the package picks for the network (with or without the next block's prefetches).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics

import numpy as np

from diffgates import native
from diffgates.bench import random_network
from diffgates.circuit import program
from diffgates.circuit.execute import run_numpy
from diffgates.circuit.passes import optimize

PHASES = ("packing", "gates", "counts", "storing")
LOAD = native.load


def instrumented(source, march="native", defines=()):
    """``native.load`` with PHASES defined: every executor build this script loads is instrumented."""
    return LOAD(source, march, (*defines, "PHASES=1"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=8000)
    p.add_argument("--samples", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    circuit = random_network(784, [args.width] * 6)
    opt, _ = optimize(circuit)
    prog = program.prepare(opt)
    bits = np.random.default_rng(1).integers(0, 2, (args.samples, 784), dtype=np.uint8)
    kept = np.ascontiguousarray(bits[:, opt.in_feature])
    inputs = {
        "bits": (program.run, kept),
        "packed bits": (program.run_packed, np.packbits(kept, axis=1, bitorder="little")),
        "uint8 features": (program.run_features, bits),
        "float32 features": (program.run_features, bits.astype(np.float32)),
    }
    native.load = instrumented
    try:
        lib = program.library_for(prog, args.samples)
        expected = run_numpy(circuit, bits[:2000])
        ns: dict[str, list[list[float]]] = {kind: [] for kind in inputs}
        seconds, rows = (ctypes.c_double * 4)(), ctypes.c_int64()
        for _ in range(args.rounds):
            for kind, (run, x) in inputs.items():
                if not np.array_equal(run(prog, x[:2000], args.threads), expected):
                    raise SystemExit(f"wrong counts from {kind}")
                lib.executor_phases(seconds, ctypes.byref(rows))  # from zero
                for _ in range(3):
                    run(prog, x, args.threads)
                lib.executor_phases(seconds, ctypes.byref(rows))
                ns[kind].append([1e9 * s / rows.value for s in seconds])
    finally:
        native.load = LOAD
    out = [
        {"input": kind, **{f"{name}_ns": statistics.median(r[i] for r in runs) for i, name in enumerate(PHASES)}}
        for kind, runs in ns.items()
    ]
    for row in out:
        row["total_ns"] = sum(row[f"{name}_ns"] for name in PHASES)
    model = f"784->6x{args.width}"
    print(json.dumps({"model": model, "samples": args.samples, "threads": args.threads, "rows": out}, indent=2))


if __name__ == "__main__":
    main()
