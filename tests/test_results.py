"""The runs committed under results/ still load with today's code and still give the circuits their
figures in BENCHMARKS.md were measured on: a change to the checkpoint format, the wiring, the gate
tables, the extraction or the passes that would make `diffgates eval results/...` disagree fails
here, without the dataset (which `diffgates eval` needs and CI does not install). Runs trained on
the bundled photographs are scored again on their test photographs."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import assert_same_circuit
from diffgates.circuit import program
from diffgates.circuit.execute import predict_counts
from diffgates.image import data as image_data
from diffgates.image.train import evaluate_image
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


def _dataset(run: Path) -> str | None:
    """The dataset a committed run was trained on (a merged run's: its ensemble.json)."""
    if (run / "ensemble.json").exists():
        return json.loads((run / "ensemble.json").read_text()).get("dataset")
    if (run / "config.yaml").exists():
        return (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("dataset")
    return None


PHOTO_RUNS = [p for p in RUNS if _dataset(p) == "photos"]


def test_the_photograph_runs_are_there():
    assert {"photos-sr2", "photos-sr2-ensemble"} <= {p.name for p in PHOTO_RUNS}


@pytest.mark.parametrize("run", PHOTO_RUNS, ids=lambda p: p.name)
def test_committed_photograph_run_scores_its_summary(run):
    """The image figures README.md and BENCHMARKS.md cite: the photographs are bundled with
    scikit-image and scikit-learn, so the held-out test photographs are scored again here (what
    `diffgates eval RUN` prints), logic network and classical upscalers alike."""
    cfg, model, circuit = load_run(run)
    summary = json.loads((run / "summary.json").read_text())
    pairs = image_data.test_inputs(cfg.task, cfg.scale, cfg.noise, cfg.seed, cfg.dataset, cfg.data_dir)
    result = evaluate_image(cfg, model.eval(), circuit, pairs)
    assert result["circuit_mismatches"] == 0 and len(pairs) == summary["test_images"]
    for name, scores in {"logic": summary["logic"], **summary["baselines"]}.items():
        got = result["logic"] if name == "logic" else result["baselines"][name]
        assert got == pytest.approx(scores, abs=1e-4), name
    if run.name == "photos-sr2-ensemble":  # README: the merged pair edges past bicubic
        assert result["logic"]["psnr"] > result["baselines"]["bicubic"]["psnr"]


def test_a_committed_fashion_run_predicts_named_classes(tmp_path, capsys):
    """Runs written before summaries recorded class names get their bundled dataset's names."""
    from diffgates.cli import main
    from diffgates.data import CLASS_NAMES

    run = RESULTS / "fashion-conv-xs"
    assert "class_names" not in json.loads((run / "summary.json").read_text())
    x = np.random.default_rng(0).random((20, 784), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", str(run), str(tmp_path / "x.npy")]) == 0
    printed = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    labels = predict_counts(load_run(run)[2], x).argmax(1)
    assert printed == [[str(y), CLASS_NAMES["fashion-mnist"][y]] for y in labels]
