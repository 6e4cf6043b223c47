"""``diffgates compile``: optimise a run's circuit and export it with its golden vectors.

An export directory holds ``circuit.npz`` (optimised), the target sources, ``golden_features.txt``
and ``golden_counts.txt`` (counts from the software model on test samples), and ``compile.json``
(the pass log, the input format, gate counts). ``diffgates verify`` replays the vectors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .backends.blif import to_blif
from .backends.c import to_c
from .backends.verilog import InputFormat, latency, testbench, to_verilog
from .circuit.execute import predict_counts
from .circuit.ir import Circuit
from .circuit.passes import optimize
from .errors import DiffgatesError

TARGETS = ("c", "verilog", "blif")
#: Input codes of the bundled datasets: (bits, divisor) with feature = float32(code) / divisor.
#: 8-bit pixels scaled to [0, 1] (the image datasets, uint8 .npz features, image networks' windows)
PIXELS = InputFormat(8, 255.0)
INPUT_FORMATS = {"digits": InputFormat(5, 1.0), "fashion-mnist": PIXELS, "mnist": PIXELS, "cifar10": PIXELS}


def golden_vectors(model, x: np.ndarray) -> np.ndarray:
    """Class counts of the discrete software model: what every backend must reproduce."""
    return model.counts(torch.as_tensor(x)).numpy()


def write_export(
    out: Path,
    circuit: Circuit,
    targets: list[str],
    x: np.ndarray,
    counts: np.ndarray,
    fmt: InputFormat | None,
    stage_levels: int = 0,
    run_passes: bool = True,
    class_names: list[str] | None = None,
) -> dict:
    """Optimise ``circuit``, check it against ``counts`` on ``x``, write targets and vectors
    (``class_names``: the C library's ``dg_class_name``, and the Verilog's header comment)."""
    for t in targets:
        if t not in TARGETS:
            raise DiffgatesError(f"unknown target {t!r}; choose from {', '.join(TARGETS)}.")
    optimised, log = optimize(circuit) if run_passes else (circuit, [])
    got = predict_counts(optimised, x)
    if not np.array_equal(got, counts):
        bad = int((got != counts).any(1).sum())
        raise DiffgatesError(f"the optimised circuit disagrees with the model on {bad} of {len(x)} vectors.")
    out.mkdir(parents=True, exist_ok=True)
    optimised.save(out / "circuit.npz")
    np.savetxt(out / "golden_counts.txt", counts, fmt="%d")
    np.savetxt(out / "golden_features.txt", x.astype(np.float32), fmt="%.9g")
    files = []
    if "c" in targets:
        for name, text in to_c(optimised, class_names=class_names).items():
            (out / name).write_text(text)
            files.append(name)
    if "verilog" in targets:
        if fmt is None:
            raise DiffgatesError("the Verilog target needs an input format; pass --input-bits and --input-divisor.")
        codes = fmt.codes(x)
        (out / "model.v").write_text(to_verilog(optimised, fmt, stage_levels, class_names=class_names))
        files.append("model.v")
        for name, text in testbench(optimised, fmt, codes, counts, stage_levels).items():
            (out / name).write_text(text)
            files.append(name)
    if "blif" in targets:
        (out / "model.blif").write_text(to_blif(optimised))
        files.append("model.blif")
    report = {
        "gates_before": circuit.n_gates,
        "gates_after": optimised.n_gates,
        "inputs_before": circuit.n_inputs,
        "inputs_after": optimised.n_inputs,
        "passes": [{"pass": p.name, "gates": p.gates, "inputs": p.inputs, "per_layer": p.per_layer} for p in log],
        "vectors": len(x),
        "input_format": None if fmt is None else {"bits": fmt.bits, "divisor": fmt.divisor},
        "stage_levels": stage_levels,
        "latency_cycles": latency(optimised, stage_levels) if "verilog" in targets else None,
        "files": files,
    }
    (out / "compile.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
