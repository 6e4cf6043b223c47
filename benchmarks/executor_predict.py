"""Classes from the executor: ``Executor.predict`` (each sample's class found in the kernel) against
the class counts followed by numpy's ``argmax(1)``, side by side in one process.

    .venv/bin/python benchmarks/executor_predict.py [--rounds 5] [--samples 100000] [--out FILE.json]

One thread, best of three calls a round, medians over rounds (the two take turns each round), on
the random 784 -> 6 x 8000 network from uint8 features and on the committed Fashion-MNIST circuit
``results/fashion-conv-xs`` from uint8 pixels and float32 features; both ways are checked equal first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from diffgates.bench import random_network
from diffgates.circuit import Circuit
from diffgates.circuit.program import Executor

ROOT = Path(__file__).resolve().parent.parent


def side_by_side(name: str, circuit: Circuit, x: np.ndarray, rounds: int) -> dict:
    ex = Executor(circuit, threads=1)
    ways = {"counts_argmax": lambda: ex.counts(x).argmax(1), "predict": lambda: ex.predict(x)}
    assert np.array_equal(ways["predict"](), ways["counts_argmax"]())
    rates = {way: [] for way in ways}
    for _ in range(rounds):
        for way, run in ways.items():
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - t)
            rates[way].append(len(x) / best)
    row = {"input": name, "samples": len(x), **{f"{w}_img_per_s": statistics.median(r) for w, r in rates.items()}}
    row["ratio"] = row["predict_img_per_s"] / row["counts_argmax_img_per_s"]
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--samples", type=int, default=100_000)
    p.add_argument("--out", help="write the rows as JSON here")
    args = p.parse_args()
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, (args.samples, 784), dtype=np.uint8)
    conv = Circuit.load(ROOT / "results" / "fashion-conv-xs" / "circuit.npz")
    pixels = rng.integers(0, 256, (args.samples // 2, conv.n_features), dtype=np.uint8)
    rows = [
        side_by_side("random 784 -> 6 x 8000, uint8 features", random_network(784, [8000] * 6), bits, args.rounds),
        side_by_side("fashion-conv-xs, uint8 pixels", conv, pixels, args.rounds),
        side_by_side("fashion-conv-xs, float32 features", conv, pixels.astype(np.float32) / 255, args.rounds),
    ]
    for row in rows:
        print(
            f"{row['input']}: counts + argmax {row['counts_argmax_img_per_s'] / 1e6:.2f} M images/s, "
            f"predict {row['predict_img_per_s'] / 1e6:.2f} M ({row['ratio']:.2f}x)"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
