"""Fashion-MNIST uint8 pixels through a trained circuit, the executor of a git revision against the
working tree's, alternating, one thread (CPU time; median of 5 rounds, each the best of 3):

    .venv/bin/python benchmarks/executor_pixels_ab.py BASE_REV results/fashion-conv-xs/circuit.npz
"""

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from diffgates.circuit import program
from diffgates.circuit.ir import Circuit
from diffgates.circuit.passes import optimize
from diffgates.data import find_idx_dir
from diffgates.data.idx import read_idx

base_rev, path = sys.argv[1], sys.argv[2]
circ, _ = optimize(Circuit.load(path))
prog = program.prepare(circ)
pixels = read_idx(find_idx_dir("fashion-mnist", None) / "t10k-images-idx3-ubyte.gz").reshape(-1, 784)
x = np.ascontiguousarray(np.tile(pixels, (5, 1)))  # 50,000 images
print("inputs", prog.n_inputs, "features", prog.n_features, "gates", len(prog.a))
base = Path(tempfile.mkdtemp())
for name in ("executor.c", "bitslice.h"):
    text = subprocess.run(["git", "show", f"{base_rev}:src/diffgates/circuit/{name}"], capture_output=True, check=True)
    (base / name).write_bytes(text.stdout)
srcs = {base_rev: base / "executor.c", "tree": program._SOURCE}
ref = None
rates = {k: [] for k in srcs}


def cpu_seconds(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


for _ in range(5):
    for k, src in srcs.items():
        program._SOURCE = src
        out = program.run_features(prog, x, 1)
        ref = out if ref is None else ref
        assert np.array_equal(out, ref)
        best = min(cpu_seconds(lambda: program.run_features(prog, x, 1)) for _ in range(3))
        rates[k].append(len(x) / best)
for k, v in rates.items():
    print(k, "uint8 images/s", round(statistics.median(v) / 1e6, 3), "M")
print("ratio", statistics.median(rates["tree"]) / statistics.median(rates[base_rev]))
