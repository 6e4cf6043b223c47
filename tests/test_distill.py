"""Knowledge distillation: --teacher RUNS makes the student fit the teachers' circuit scores."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from diffgates.circuit import Circuit
from diffgates.circuit.execute import predict_counts
from diffgates.cli import main
from diffgates.data import load_dataset
from diffgates.data.augment import augment_bits, n_variants, variants
from diffgates.distill import teacher_scores
from diffgates.nn.model import LogicNet, ModelConfig
from diffgates.teacher import TEACHER_FILE, load_teacher

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
    assert "neither a finished run (no circuit.npz)" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # refused before anything was written
    assert main(["train", *SMALL, "--teacher", teachers[0], "--distill-weight", "1.5", "--out", out]) == 2
    assert "--distill-weight: must be at most 1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def cnn_teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn") / "teacher"
    args = ["teacher", "--dataset", "digits", "--image-shape", "1,8,8", "--channels", "8,16", "--epochs", "12"]
    assert main([*args, "--flip", "0", "--shift", "1", "--threads", "1", "--quiet", "--out", str(out)]) == 0
    return out


def test_cnn_teacher_trains_and_its_logits_are_the_soft_targets(cnn_teacher):
    summary = json.loads((cnn_teacher / "summary.json").read_text())
    assert summary["test_acc"] > 0.9  # a real classifier, not noise
    cnn = load_teacher(cnn_teacher / TEACHER_FILE)
    ds = load_dataset("digits")
    assert float((cnn.logits(ds.x_test).argmax(1).numpy() == ds.y_test).mean()) == summary["test_acc"]
    torch.testing.assert_close(teacher_scores([str(cnn_teacher)], ds), cnn.logits(ds.x_train))


def test_a_cnn_teacher_and_its_temperature_steer_the_student(cnn_teacher, tmp_path):
    teach = ["--teacher", str(cnn_teacher), "--distill-weight", "1", "--epochs", "15"]
    runs = {}
    for name, extra in [("t1", []), ("t1_again", []), ("t4", ["--teacher-temperature", "4"])]:
        runs[name] = tmp_path / name
        assert main(["train", "--dataset", "digits", *SMALL, *teach, *extra, "--out", str(runs[name])]) == 0
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    w = {name: weights(run) for name, run in runs.items()}
    assert same(w["t1"], w["t1_again"])
    assert not same(w["t1"], w["t4"])  # softer targets train another network
    summary = json.loads((runs["t1"] / "summary.json").read_text())
    assert summary["test_acc_relaxed"] > 0.5  # learnt the digits from the teacher's logits alone


def test_augmented_students_learn_the_teachers_scores_of_the_image_they_see(cnn_teacher, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFGATES_CACHE", str(tmp_path / "cache"))
    ds, shape, crop, flip = load_dataset("digits"), (1, 8, 8), 1, 0.5
    cnn = load_teacher(cnn_teacher / TEACHER_FILE)
    table = teacher_scores([str(cnn_teacher)], ds, shape, crop, flip)
    assert table.shape == (len(ds.y_train), n_variants(crop, flip), 10) == (len(ds.y_train), 18, 10)
    # the student's bits of an augmented image are the encoded bits of the variant the teacher scored
    fixed = {"encoder_strategy": "fixed", "encoder_thresholds": [2.0, 6.0, 10.0]}  # shared by all pixels
    model = LogicNet(ModelConfig(n_features=64, n_classes=10, widths=[20], image_shape=list(shape), **fixed))
    model.encoder.fit(ds.x_train)
    raw = torch.as_tensor(ds.x_train[:300], dtype=torch.float32)
    bits, v = augment_bits(model.encoder(raw), shape, model.encoder.n_bits, crop, flip, with_variant=True)
    assert len(set(v.tolist())) == 18
    seen = dict(variants(raw, shape, crop, flip))
    for i in range(300):
        assert torch.equal(bits[i], model.encoder(seen[int(v[i])][i : i + 1])[0])
    for k in (0, 4, 17):  # variant 8 is the image itself, unflipped
        torch.testing.assert_close(table[:300, k], cnn.logits(seen[k].numpy()))
    torch.testing.assert_close(table[:, 8], cnn.logits(ds.x_train))
    assert not torch.equal(table[:, 0], table[:, 8])
    # cached: a second call reads the file back; another augmentation is another table
    (cached,) = (tmp_path / "cache" / "teacher-scores").iterdir()
    save_file({"scores": torch.zeros_like(table)}, str(cached))  # what a cache hit would return
    assert not teacher_scores([str(cnn_teacher)], ds, shape, crop, flip).any()
    assert teacher_scores([str(cnn_teacher)], ds, shape, crop, 0.0).shape[1] == 9
    monkeypatch.setenv("DIFFGATES_CACHE", "off")
    torch.testing.assert_close(teacher_scores([str(cnn_teacher)], ds, shape, crop, flip), table)
    assert len(list((tmp_path / "cache" / "teacher-scores").iterdir())) == 2


def test_an_augmented_student_fits_the_teacher_alone_at_weight_one(cnn_teacher, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFGATES_CACHE", "off")
    true, shuffled = digits_npz(tmp_path / "true.npz", False), digits_npz(tmp_path / "shuffled.npz", True)
    aug = ["--image-shape", "1,8,8", "--random-crop", "1", "--flip", "0.5", "--teacher", str(cnn_teacher)]
    runs = {}
    for name, data, extra in [
        ("w1_true", true, ["--distill-weight", "1"]),
        ("w1_shuffled", shuffled, ["--distill-weight", "1"]),
        ("half", true, ["--distill-weight", "0.5"]),
    ]:
        runs[name] = tmp_path / name
        assert main(["train", "--dataset", data, *SMALL, *aug, *extra, "--out", str(runs[name])]) == 0
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    w = {name: weights(run) for name, run in runs.items()}
    assert same(w["w1_true"], w["w1_shuffled"])  # only the teacher's scores are fitted
    assert not same(w["w1_true"], w["half"])


def test_bad_cnn_teacher_options_are_clear_errors(cnn_teacher, tmp_path, capsys):
    out = str(tmp_path / "s")
    assert main(["train", *SMALL, "--teacher", str(cnn_teacher), "--teacher-temperature", "0", "--out", out]) == 2
    assert "--teacher-temperature: must be greater than 0" in capsys.readouterr().err
    data = tmp_path / "wide.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x_train=rng.random((50, 10)), y_train=rng.integers(0, 10, 50), x_test=rng.random((20, 10)),
             y_test=rng.integers(0, 10, 20))  # fmt: skip
    assert main(["train", "--dataset", str(data), *SMALL, "--teacher", str(cnn_teacher), "--out", out]) == 2
    assert "takes 64 features into 10 classes" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # refused before anything was written
    assert main(["teacher", "--dataset", str(data), "--out", out]) == 2
    assert "needs images" in capsys.readouterr().err
    assert main(["teacher", "--dataset", "digits", "--image-shape", "1,8,8", "--out", str(cnn_teacher)]) == 2
    assert "already exists" in capsys.readouterr().err
