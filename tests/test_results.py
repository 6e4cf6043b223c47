"""The runs committed under results/ still load with today's code and still give the circuits their
figures in BENCHMARKS.md were measured on: a change to the checkpoint format, the wiring, the gate
tables, the extraction or the passes that would make `diffgates eval results/...` disagree fails
here, without the dataset (which `diffgates eval` needs and CI does not install)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_same_circuit
from diffgates.circuit import program
from diffgates.circuit.execute import predict_counts
from diffgates.nn import to_circuit
from diffgates.runs import load_run

RESULTS = Path(__file__).resolve().parent.parent / "results"
RUNS = sorted(p for p in RESULTS.iterdir() if (p / "model.safetensors").exists())


def test_results_are_there():
    assert len(RUNS) >= 4, "results/ lost its committed runs"


@pytest.mark.parametrize("run", RUNS, ids=lambda p: p.name)
def test_committed_run_gives_its_circuit(run):
    _, model, saved = load_run(run)
    summary = json.loads((run / "summary.json").read_text())
    assert model.n_gates == summary["gates"]

    assert_same_circuit(to_circuit(model), saved)

    if program.available():
        assert program.Executor(saved.on_bits(), threads=1).circuit.n_gates == summary["gates_optimised"]

    # images of random grey levels: the discrete model and the saved circuit count alike
    x = np.random.default_rng(0).random((200, saved.n_features), dtype=np.float32)
    with torch.no_grad():
        expected = model.counts(torch.as_tensor(x)).numpy()
    np.testing.assert_array_equal(predict_counts(saved, x), expected)
