"""The circuit executor built for each block width (64-bit words per signal), side by side.

    .venv/bin/python benchmarks/executor_block_width.py [--widths 8000,64000] [--words 8,4,2,1]

Random 784 -> 6 x W networks (`diffgates.bench.random_network`), one thread, from an encoded bit
matrix; each build is checked against the numpy oracle, then timed in interleaved rounds (CPU
time, median of 5 rounds of the best of 2). Prints images/s in millions per width and build.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from diffgates import native
from diffgates.bench import random_network
from diffgates.circuit import program
from diffgates.circuit.execute import run_numpy
from diffgates.circuit.passes import optimize


def cpu_seconds(prog, bits) -> float:
    t = time.process_time()
    program.run(prog, bits, 1)
    return time.process_time() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", default="8000,64000")
    p.add_argument("--words", default="8,4,2,1")
    p.add_argument("--samples", type=int, default=30_000)
    args = p.parse_args()
    words = [int(w) for w in args.words.split(",")]
    load = native.load
    out = {}
    for width in (int(w) for w in args.widths.split(",")):
        circuit = random_network(784, [width] * 6)
        opt, _ = optimize(circuit)
        prog = program.prepare(opt)
        bits = np.random.default_rng(1).integers(0, 2, (args.samples, 784), dtype=np.uint8)
        kept = np.ascontiguousarray(bits[:, opt.in_feature])
        expected = run_numpy(circuit, bits[:1000])
        rates = {w: [] for w in words}
        for rnd in range(5):
            for w in words:
                native.load = lambda source, march="native", defines=(), w=w: load(source, march, (f"WORDS={w}",))
                if rnd == 0 and not np.array_equal(program.run(prog, kept[:1000], 1), expected):
                    raise SystemExit(f"wrong counts with WORDS={w}")
                best = min(cpu_seconds(prog, kept) for _ in range(2))
                rates[w].append(args.samples / best)
        native.load = load
        out[f"784->6x{width}"] = {
            "gates": len(prog.a),
            "slots": prog.n_slots,
            "M_img_per_s": {f"WORDS={w}": round(statistics.median(v) / 1e6, 2) for w, v in rates.items()},
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
