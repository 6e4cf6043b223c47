"""The circuit executor of a git revision and of the working tree, side by side on one machine.

    .venv/bin/python benchmarks/executor_ab.py BASE_REV [--width 8000] [--samples 100000] [--rounds 5]
    .venv/bin/python benchmarks/executor_ab.py BASE_REV --circuit results/fashion-conv-xs/circuit.npz

The package as of BASE_REV (git archive) and as in the working tree each run in their own
subprocess, in alternating rounds, on one thread: a random 784 -> 6 x width network (the same seed
in both), checked against the numpy oracle, then timed from an encoded bit matrix and, where the
version has them, from the same bits packed eight a byte (``program.run_packed``) and from float32
and uint8 raw features (``program.run_features``). With ``--circuit``: that trained circuit
instead, timed from the Fashion-MNIST test images as uint8 pixels and as float32 features scaled
to [0, 1] (tiled to ``--samples``), and one image a call (its images/s: calls per second). Each
round reports the best of three timings (of 300 for single images); the output (JSON) holds the
median over rounds per version and the ratio of the working tree to the base. CPU time of the
worker is reported beside wall time, since on a shared machine it is the steadier of the two.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker(width: int, samples: int, circuit_path: str = "") -> dict:
    import numpy as np

    from diffgates.bench import random_network
    from diffgates.circuit import program
    from diffgates.circuit.execute import run_numpy
    from diffgates.circuit.ir import Circuit, encode_bits
    from diffgates.circuit.passes import optimize

    circuit = Circuit.load(circuit_path) if circuit_path else random_network(784, [width] * 6)
    opt, _ = optimize(circuit)
    prog = program.prepare(opt)
    if circuit_path:
        from diffgates.data import find_idx_dir
        from diffgates.data.idx import read_idx

        images = read_idx(find_idx_dir("fashion-mnist", None) / "t10k-images-idx3-ubyte.gz").reshape(-1, 784)
        pixels = np.ascontiguousarray(np.resize(images, (samples, 784)))
        expected = run_numpy(circuit, encode_bits(circuit, pixels[:2000]))
        scaled = pixels.astype(np.float32) / 255  # the float32 features load_dataset gives
        expected_scaled = run_numpy(circuit, encode_bits(circuit, scaled[:2000]))
        jobs = {"uint8": lambda: program.run_features(prog, pixels, 1)}
        jobs["float32"] = lambda: program.run_features(prog, scaled, 1)
        jobs["uint8, one image a call"] = lambda: program.run_features(prog, pixels[:1], 1)
    else:
        bits = np.random.default_rng(1).integers(0, 2, (samples, 784), dtype=np.uint8)
        kept = np.ascontiguousarray(bits[:, opt.in_feature])
        expected = run_numpy(circuit, bits[:2000])
        jobs = {"bits": lambda: program.run(prog, kept, 1)}
        if hasattr(program, "run_packed"):
            packed = np.packbits(kept, axis=1, bitorder="little")
            jobs["packed bits"] = lambda: program.run_packed(prog, packed, 1)
        if hasattr(program, "run_features"):
            features = bits.astype(np.float32)
            jobs["features"] = lambda: program.run_features(prog, features, 1)
            jobs["uint8"] = lambda: program.run_features(prog, bits, 1)
    out = {}
    for kind, job in jobs.items():
        got = job()
        want = expected_scaled if kind == "float32" else expected
        if not np.array_equal(got[:2000], want[: len(got)]):
            raise SystemExit(f"wrong counts from {kind}")
        calls = 3 if len(got) > 1 else 300  # one image a call: its latency, best of many calls
        wall, cpu = [], []
        for _ in range(calls):
            w, c = time.perf_counter(), time.process_time()
            job()
            wall.append(time.perf_counter() - w)
            cpu.append(time.process_time() - c)
        out[kind] = {"wall": min(wall), "cpu": min(cpu), "images": len(got)}
    return out


def package_at(rev: str) -> Path:
    tar = subprocess.run(["git", "archive", rev, "src/diffgates"], cwd=ROOT, capture_output=True, check=True).stdout
    into = Path(tempfile.mkdtemp())
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(into, filter="data")
    return into / "src"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base", help="git revision to compare with")
    p.add_argument("--width", type=int, default=8000)
    p.add_argument("--samples", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--circuit", default="", help="a trained circuit.npz, timed from Fashion-MNIST pixels")
    args = p.parse_args()
    paths = {args.base: package_at(args.base), "tree": ROOT / "src"}
    times: dict[tuple[str, str], dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for version, path in paths.items():
            env = {**os.environ, "PYTHONPATH": str(path)}
            cmd = [sys.executable, __file__, "--worker", str(args.width), str(args.samples), args.circuit]
            got = json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)
            for kind, t in got.items():
                entry = times.setdefault((version, kind), {"wall": [], "cpu": [], "images": t["images"]})
                entry["wall"].append(t["wall"])
                entry["cpu"].append(t["cpu"])
    rows = [
        {
            "version": version,
            "input": kind,
            "median_img_per_s": t["images"] / statistics.median(t["wall"]),
            "median_img_per_s_cpu_time": t["images"] / statistics.median(t["cpu"]),
        }
        for (version, kind), t in times.items()
    ]
    base = {r["input"]: r for r in rows if r["version"] == args.base}
    for r in rows:
        if r["version"] == "tree" and r["input"] in base:
            for key in ("median_img_per_s", "median_img_per_s_cpu_time"):
                r["ratio_" + key.removeprefix("median_")] = r[key] / base[r["input"]][key]
    model = args.circuit or f"784->6x{args.width}"
    print(json.dumps({"model": model, "samples": args.samples, "rows": rows}, indent=2))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        print(json.dumps(worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])))
    else:
        main()
