"""Knowledge distillation: --teacher RUNS makes the student fit the teachers' circuit scores."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from diffgates.circuit import Circuit
from diffgates.circuit.execute import predict_counts
from diffgates.cli import main
from diffgates.data import load_dataset
from diffgates.train import teacher_scores

SMALL = ["--widths", "200,200", "--epochs", "3", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    runs = []
    for seed in (1, 2):
        out = root / f"t{seed}"
        assert (
            main(["train", "--dataset", "digits", *SMALL, "--seed", str(seed), "--tau", str(seed), "--out", str(out)])
            == 0
        )
        runs.append(str(out))
    return runs


def digits_npz(path, shuffle_labels: bool):
    ds = load_dataset("digits")
    y = np.random.default_rng(0).permutation(ds.y_train) if shuffle_labels else ds.y_train
    np.savez(path, x_train=ds.x_train, y_train=y, x_test=ds.x_test, y_test=ds.y_test)
    return str(path)


def weights(run):
    return load_file(str(run / "model.safetensors"))


def test_teacher_scores_average_the_circuits_counts_over_tau(teachers):
    ds = load_dataset("digits")
    circuits = [Circuit.load(f"{t}/circuit.npz") for t in teachers]
    expected = sum(predict_counts(c, ds.x_train) / c.tau for c in circuits) / 2
    got = teacher_scores(teachers, ds)
    assert got.shape == (len(ds.y_train), 10)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


def test_full_distillation_ignores_the_labels_and_zero_weight_ignores_the_teacher(teachers, tmp_path):
    true, shuffled = digits_npz(tmp_path / "true.npz", False), digits_npz(tmp_path / "shuffled.npz", True)
    teach = ["--teacher", ",".join(teachers)]
    runs = {}
    for name, data, extra in [
        ("w1_true", true, [*teach, "--distill-weight", "1"]),
        ("w1_shuffled", shuffled, [*teach, "--distill-weight", "1"]),
        ("w0", true, [*teach, "--distill-weight", "0"]),
        ("plain", true, []),
        ("half", true, teach),
    ]:
        runs[name] = tmp_path / name
        assert main(["train", "--dataset", data, *SMALL, *extra, "--out", str(runs[name])]) == 0
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    w = {name: weights(run) for name, run in runs.items()}
    assert same(w["w1_true"], w["w1_shuffled"])  # only the teacher's targets are fitted
    assert same(w["w0"], w["plain"])  # weight 0 is plain training
    assert not same(w["half"], w["plain"])  # the teacher changes training


def test_bad_teacher_options_are_clear_errors(teachers, tmp_path, capsys):
    out = str(tmp_path / "s")
    assert main(["train", *SMALL, "--teacher", str(tmp_path / "none"), "--out", out]) == 2
    assert "no circuit.npz" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # refused before anything was written
    assert main(["train", *SMALL, "--teacher", teachers[0], "--distill-weight", "1.5", "--out", out]) == 2
    assert "distill_weight" in capsys.readouterr().err
    args = ["--dataset", "fashion-mnist", "--conv", "4:3:1:2", "--flip", "0.5"]
    assert main(["train", *SMALL, *args, "--teacher", teachers[0], "--out", out]) == 2
    assert "--random-crop or --flip" in capsys.readouterr().err
