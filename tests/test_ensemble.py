"""Ensembles: merged circuits add their members' class counts, in the model, the executor and on
every backend, and an ensemble directory works like a run directory."""

import json

import numpy as np
import pytest
import torch

from conftest import random_circuit, random_model
from diffgates import DiffgatesError, Ensemble, load_model, save_model
from diffgates.circuit.execute import predict_counts, run_numpy
from diffgates.circuit.merge import merge
from diffgates.circuit.passes import optimize
from diffgates.cli import main
from diffgates.hw.tools import find
from diffgates.nn import to_circuit


def test_merged_circuit_counts_are_the_sum_of_the_members_counts(rng):
    members = [random_circuit(seed, n_features=5, n_inputs=10 + seed, n_gates=60 + 7 * seed) for seed in range(3)]
    merged = merge(members)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    expected = sum(predict_counts(c, x, engine="numpy") for c in members)
    np.testing.assert_array_equal(predict_counts(merged, x, engine="numpy"), expected)
    np.testing.assert_array_equal(predict_counts(merged, x), expected)  # the fast executor
    np.testing.assert_array_equal(predict_counts(optimize(merged)[0], x), expected)
    assert merged.n_gates == sum(c.n_gates for c in members)
    assert merged.group_size == sum(c.group_size for c in members)
    # equal (feature, threshold) input bits are read once
    pairs = {(int(f), float(t)) for c in members for f, t in zip(c.in_feature, c.in_threshold)}
    assert merged.n_inputs == len(pairs)


def test_merge_refuses_circuits_of_other_shapes():
    with pytest.raises(DiffgatesError, match="cannot merge"):
        merge([random_circuit(0, n_features=5), random_circuit(1, n_features=6)])
    with pytest.raises(DiffgatesError, match="at least one"):
        merge([])


def test_ensemble_of_models_equals_its_circuit_and_reloads(tmp_path):
    models = [random_model(seed=s, bits=2 + s % 2, widths=(40, 30 if s else 60)) for s in range(3)]
    ensemble = Ensemble(models).eval()
    x = torch.as_tensor(np.random.default_rng(5).normal(size=(400, 12)).astype(np.float32))
    counts = ensemble.counts(x)
    assert torch.equal(counts, sum(m.counts(x) for m in models))
    circuit = to_circuit(ensemble)
    np.testing.assert_array_equal(predict_counts(circuit, x.numpy()), counts.numpy())
    bits = (x.numpy()[:, circuit.in_feature] > circuit.in_threshold).astype(np.uint8)
    np.testing.assert_array_equal(run_numpy(circuit, bits), counts.numpy())
    save_model(ensemble, tmp_path / "e.safetensors")
    again = load_model(tmp_path / "e.safetensors")
    assert isinstance(again, Ensemble) and len(again.members) == 3
    assert torch.equal(again.counts(x), counts)


def test_ensemble_members_must_share_features_and_classes():
    with pytest.raises(DiffgatesError, match="share their features and classes"):
        Ensemble([random_model(n_features=12), random_model(n_features=10)])


def _train(out, seed, extra=()):
    args = ["train", "--dataset", "digits", "--widths", "1000,1000", "--epochs", "6", "--seed", str(seed), *extra]
    assert main([*args, "--out", str(out), "--quiet"]) == 0


def test_merge_command_writes_an_ensemble_that_eval_compile_and_verify_accept(tmp_path, capsys):
    _train(tmp_path / "a", 0)
    _train(tmp_path / "b", 1, ["--encoder-bits", "3"])
    out = tmp_path / "ab"
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["members"] == 2 and summary["circuit_mismatches"] == 0
    assert summary["test_acc_circuit"] == summary["test_acc_discrete"] > 0.5
    assert summary["gates"] == 2 * 2000
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    assert f"{summary['test_acc_discrete']:.4f}" in capsys.readouterr().out
    assert main(["info", str(out)]) == 0
    assert "member 1" in capsys.readouterr().out
    # the golden vectors are the sum of the two runs' own counts
    export = tmp_path / "export"
    assert main(["compile", str(out), "--out", str(export), "--target", "c", "--vectors", "200"]) == 0
    golden = np.loadtxt(export / "golden_counts.txt", dtype=np.int64)
    x = np.loadtxt(export / "golden_features.txt", dtype=np.float32)
    members = [load_model(tmp_path / r / "model.safetensors") for r in ("a", "b")]
    np.testing.assert_array_equal(golden, sum(m.counts(torch.as_tensor(x)).numpy() for m in members))
    if find("gcc", "cc"):
        assert main(["verify", str(export)]) == 0
    # a merged directory merges again, member by member
    assert main(["merge", str(out), str(tmp_path / "a"), "--out", str(tmp_path / "aba")]) == 0
    assert json.loads((tmp_path / "aba" / "summary.json").read_text())["members"] == 3


def test_merge_refuses_runs_of_different_datasets_before_writing(tmp_path, capsys):
    _train(tmp_path / "a", 0)
    np.savez(
        tmp_path / "toy.npz",
        x_train=np.random.default_rng(0).random((60, 64), dtype=np.float32),
        y_train=np.arange(60) % 10,
        x_test=np.random.default_rng(1).random((20, 64), dtype=np.float32),
        y_test=np.arange(20) % 10,
    )
    _train(tmp_path / "b", 0, ["--dataset", str(tmp_path / "toy.npz")])
    out = tmp_path / "ab"
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 2
    assert "different datasets" in capsys.readouterr().err
    assert not out.exists()
    assert main(["merge", str(tmp_path / "a"), "--out", str(out)]) == 2  # one run is no ensemble
    assert "two or more runs" in capsys.readouterr().err
    assert not out.exists()


def test_report_of_an_ensemble_is_a_clear_error(tmp_path, capsys):
    _train(tmp_path / "a", 0)
    out = tmp_path / "aa"
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(out)]) == 0
    assert main(["report", str(out)]) == 2
    assert "ensemble" in capsys.readouterr().err
