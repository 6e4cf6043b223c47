import json
import time

import numpy as np
import pytest

from conftest import TINY, assert_resuming_changes_nothing
from diffgates.cli import main
from diffgates.config import TrainConfig


def test_train_eval_info_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--dataset", "digits", "--widths", "600,600", "--epochs", "8", "--out", str(out), "--quiet"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in (
        "dataset",
        "test_acc_relaxed",
        "test_acc_discrete",
        "test_acc_circuit",
        "gates",
        "train_seconds",
        "parametrization",
    ):
        assert key in summary
    assert summary["gates"] == 1200
    assert summary["circuit_mismatches"] == 0
    assert summary["test_acc_circuit"] == summary["test_acc_discrete"]
    assert summary["test_acc_discrete"] > 0.5  # far above chance after 8 short epochs
    speeds = ("circuit_img_per_s", "circuit_img_per_s_packed", "circuit_img_per_s_features")
    assert min(summary[k] for k in speeds) > 0  # bits a byte each, packed, raw features
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 8 and json.loads(lines[-1])["epoch"] == 8
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{summary['test_acc_discrete']:.4f}" in text
    assert main(["info", str(out)]) == 0
    assert "XOR" in capsys.readouterr().out


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    rc = main(["train", "--epochs", "1", "--widths", "20", "--out", str(out), "--quiet"])
    assert rc == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "precious"


def test_eval_fails_when_circuit_disagrees(tmp_path, capsys):
    import numpy as np

    from diffgates import Circuit

    out = tmp_path / "run"
    assert main(["train", "--epochs", "2", "--widths", "100,100", "--out", str(out), "--quiet"]) == 0
    c = Circuit.load(out / "circuit.npz")
    c.replace(ops=np.full_like(c.ops, 15)).save(out / "circuit.npz")  # every gate TRUE
    assert main(["eval", str(out)]) == 1
    assert "disagree" in capsys.readouterr().err


def test_hard_forward_training_trains_the_discrete_network(tmp_path):
    out = tmp_path / "hard"
    args = ["train", "--widths", "800,800", "--epochs", "6", "--forward", "hard", "--out", str(out), "--quiet"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_acc_relaxed"] == summary["test_acc_discrete"]  # the trained network is the circuit
    assert summary["test_acc_discrete"] > 0.5


def test_cuda_device_without_gpu_is_a_clear_error(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        return
    assert main(["train", "--device", "cuda", "--epochs", "1", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("device", ["gpu", "", "cuda:x", "meta"])
def test_a_device_diffgates_does_not_run_on_is_refused(tmp_path, capsys, device):
    assert main(["train", "--device", device, "--epochs", "1", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "--device must be cpu, cuda or cuda:N" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_config_file_repeats_a_run(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["train", "--widths", "200,200", "--epochs", "3", "--seed", "5", "--out", str(first), "--quiet"]) == 0
    assert main(["train", "--config", str(first / "config.yaml"), "--out", str(second), "--quiet"]) == 0
    a, b = (json.loads((d / "summary.json").read_text()) for d in (first, second))
    assert a["test_acc_discrete"] == b["test_acc_discrete"] and a["widths"] == b["widths"] == [200, 200]
    assert (first / "metrics.jsonl").read_text().count("\n") == 3


def test_a_run_finds_its_data_and_runs_from_any_working_directory(tmp_path, monkeypatch, capsys):
    """Files named relative to where training ran (a dataset file, --init-from, --teacher) are
    saved as absolute paths: eval, --resume and merge work from elsewhere."""
    rng = np.random.default_rng(0)
    x = rng.random((300, 10), dtype=np.float32)
    y = (x[:, 0] > x[:, 1]).astype(np.int64)
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    np.savez(work / "mine.npz", x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    monkeypatch.chdir(work)
    small = ["--dataset", "mine.npz", "--widths", "40,40", "--epochs", "2", "--quiet"]
    assert main(["train", *small, "--out", "a"]) == 0
    assert main(["train", *small, "--init-from", "a", "--teacher", "a", "--epochs", "1", "--out", "b"]) == 0
    saved = TrainConfig.from_run(work / "b")
    assert saved.dataset == str(work / "mine.npz")
    assert saved.init_from == str(work / "a") and saved.teacher == [str(work / "a")]

    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["eval", str(work / "a")]) == 0
    accuracy = json.loads((work / "a" / "summary.json").read_text())["test_acc_discrete"]
    assert f"{accuracy:.4f}" in capsys.readouterr().out
    (work / "b" / "summary.json").unlink()  # as if killed before the end: the teacher scores again
    assert main(["train", "--resume", str(work / "b")]) == 0
    assert main(["merge", str(work / "a"), str(work / "b"), "--out", "both"]) == 0
    info = json.loads((elsewhere / "both" / "ensemble.json").read_text())
    assert info["dataset"] == str(work / "mine.npz") and info["members"] == [str(work / "a"), str(work / "b")]


def test_a_run_on_8_bit_pixels_from_an_npz_compiles_to_verilog_without_format_options(tmp_path, capsys):
    """uint8 features are pixels scaled to [0, 1], as for the image datasets: the Verilog encoder
    reads them as 8-bit codes without --input-bits and --input-divisor; float features still need them."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (400, 6, 6), dtype=np.uint8)
    y = (x[:, 0, 0] > x[:, 5, 5]).astype(np.int64)
    np.savez(tmp_path / "pix.npz", x_train=x[:300], y_train=y[:300], x_test=x[300:], y_test=y[300:])
    np.savez(tmp_path / "flt.npz", x_train=x[:300] / 255, y_train=y[:300], x_test=x[300:] / 255, y_test=y[300:])
    for name in ("pix", "flt"):
        args = ["train", "--dataset", str(tmp_path / f"{name}.npz"), "--widths", "60,60", "--epochs", "2"]
        assert main([*args, "--out", str(tmp_path / name), "--quiet"]) == 0
    assert main(["compile", str(tmp_path / "pix"), "--vectors", "50"]) == 0
    info = json.loads((tmp_path / "pix" / "export" / "compile.json").read_text())
    assert info["input_format"] == {"bits": 8, "divisor": 255.0}
    assert main(["verify", str(tmp_path / "pix")]) == 0
    capsys.readouterr()
    assert main(["compile", str(tmp_path / "flt"), "--vectors", "50"]) == 2
    assert "needs an input format; pass --input-bits and --input-divisor" in capsys.readouterr().err


def test_command_line_options_override_the_config_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("widths: [100, 100]\nepochs: 2\n")
    assert main(["train", "--config", str(cfg), "--epochs", "1", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert (tmp_path / "r" / "metrics.jsonl").read_text().count("\n") == 1


def test_compile_overwrite_leaves_no_stale_export_files(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--widths", "100,100", "--epochs", "2", "--out", str(run), "--quiet"]) == 0
    assert main(["compile", str(run), "--target", "c", "--vectors", "50"]) == 0
    assert (run / "export" / "model.c").exists()
    assert main(["compile", str(run), "--target", "blif", "--vectors", "50"]) == 2  # refuses without --overwrite
    assert main(["compile", str(run), "--target", "blif", "--vectors", "50", "--overwrite"]) == 0
    assert (run / "export" / "model.blif").exists() and not (run / "export" / "model.c").exists()
    assert "dead" in capsys.readouterr().out  # the pass log is printed


def test_bfloat16_activations_train_like_float32(tmp_path):
    """Same seed, same data: the bfloat16 run follows the float32 run closely (the roundings are
    small against the gradient noise) and its circuit is exact like any other."""
    runs = {}
    for act in ("float32", "bfloat16"):
        out = tmp_path / act
        args = ["train", "--widths", "800,800", "--epochs", "6", "--activations", act, "--out", str(out), "--quiet"]
        assert main(args) == 0
        runs[act] = json.loads((out / "summary.json").read_text())
    bf = runs["bfloat16"]
    assert bf["circuit_mismatches"] == 0 and bf["test_acc_circuit"] == bf["test_acc_discrete"]
    assert bf["test_acc_discrete"] > 0.8
    assert abs(bf["test_acc_discrete"] - runs["float32"]["test_acc_discrete"]) < 0.03


@pytest.fixture
def restore_threads():
    import torch

    from diffgates.kernels import set_threads

    before = torch.get_num_threads()
    yield
    set_threads(None)
    torch.set_num_threads(before)


def test_threads_1_keeps_training_and_evaluation_on_one_core(tmp_path, monkeypatch, restore_threads):
    import torch

    from diffgates.circuit import program

    seen = []
    real = program.run

    def spy(prog, bits, threads=None):
        seen.append(program.check_threads(threads))
        return real(prog, bits, threads)

    monkeypatch.setattr(program, "run", spy)
    run = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--widths", "20", "--quiet", "--threads", "1", "--out", str(run)]) == 0
    assert torch.get_num_threads() == 1
    assert main(["eval", str(run), "--threads", "1"]) == 0
    assert seen and set(seen) == {1}


def test_cache_off_keeps_nothing_and_builds_nowhere_in_the_working_directory(tmp_path):
    import os
    import subprocess
    import sys

    code = "from diffgates.circuit import program; assert program.available()"
    env = {**os.environ, "DIFFGATES_CACHE": "off"}
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True)
    assert list(tmp_path.iterdir()) == []


def test_python_and_the_command_line_build_the_same_default_model():
    import torch

    from diffgates.build import build_model
    from diffgates.config import TrainConfig
    from diffgates.data import load_dataset
    from diffgates.nn import LogicNet, ModelConfig

    ds = load_dataset("digits")
    cli_model = build_model(TrainConfig(), ds)  # what `diffgates train` with no options builds
    python_model = LogicNet(ModelConfig(n_features=ds.n_features, n_classes=ds.n_classes))
    assert cli_model.config == python_model.config
    for name, t in python_model.state_dict().items():
        if "encoder" not in name:  # the encoder is fitted on the data in one of them only
            assert torch.equal(t, cli_model.state_dict()[name]), name


def test_time_budget_stops_training_and_scores_the_partial_epoch(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--widths", "2000,2000", "--epochs", "500", "--time-budget", "1.5"]
    t0 = time.perf_counter()
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert s["stopped"] == "time budget" and s["epochs_run"] == len(rows) < 500
    assert 1.5 <= rows[-1]["elapsed_seconds"] < 1.5 + rows[-1]["epoch_seconds"] + 5
    assert time.perf_counter() - t0 < 60  # the budget, one evaluation and the run's writing
    assert f"stopped early (time budget) after {len(rows)} of 500 epochs" in capsys.readouterr().out
    assert_resuming_changes_nothing(out)  # a run that stopped is finished
    assert json.loads((out / "summary.json").read_text())["stopped"] == "time budget"


def test_cosine_rate_follows_the_epochs_or_the_time_budget_whichever_is_further():
    class Optimizer:
        param_groups = [{"lr": None}, {"lr": None}]

    opt = Optimizer()
    cfg = TrainConfig(lr=0.1, lr_schedule="cosine")
    cfg.set_rate(opt, 0.5, 1000.0)  # no budget: the position alone
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(0.05)] * 2
    budget = TrainConfig(lr=0.1, lr_schedule="cosine", time_budget=100)
    budget.set_rate(opt, 0.25, 100.0)  # the budget spent: the end of the decay
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)
    budget.set_rate(opt, 0.5, 10.0)  # the epochs further on than the clock
    assert opt.param_groups[1]["lr"] == pytest.approx(0.05)
    TrainConfig(lr=0.1, lr_schedule="constant").set_rate(opt, 0.9, 1.0)  # a constant rate is left alone
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_validation_keeps_the_best_epoch_and_leaves_the_test_set_alone(tmp_path, capsys):
    from diffgates.data import load_dataset

    out = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--widths", "500,500", "--epochs", "8", "--validation", "0.25"]
    assert main([*args, "--lr", "0.2", "--out", str(out), "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = max(rows, key=lambda r: r["val_acc_discrete"])  # the first of equal scores
    assert s["best_epoch"] == best["epoch"] and s["val_acc_discrete"] == best["val_acc_discrete"]
    assert f"kept epoch {best['epoch']}, the best on the validation split" in capsys.readouterr().out
    assert s["test_acc_discrete"] == best["test_acc_discrete"]  # the kept model is that epoch's
    full = load_dataset("digits")
    assert s["validation_samples"] == round(0.25 * len(full.y_train)) and s["test_samples"] == len(full.y_test)
    # the split is the seed's: the same samples are held out every time
    rest, x_val, _ = full.holdout(0.25, 0)
    assert len(rest.y_train) + len(x_val) == len(full.y_train)
    np.testing.assert_array_equal(full.holdout(0.25, 0)[1], x_val)
    assert not np.array_equal(full.holdout(0.25, 1)[1], x_val)


def test_patience_needs_a_validation_split(tmp_path, capsys):
    assert main(["train", *TINY, "--patience", "3", "--out", str(tmp_path / "run")]) == 2
    assert "--patience does nothing without --validation" in capsys.readouterr().err


def test_28_by_28_data_gets_the_fashion_recipe_where_options_leave_it_out(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = {f"x_{s}": rng.random((n, 784), dtype=np.float32) for s, n in (("train", 100), ("test", 30))}
    np.savez(tmp_path / "m28.npz", **data, y_train=np.arange(100) % 10, y_test=np.arange(30) % 10)
    args = ["train", "--dataset", str(tmp_path / "m28.npz"), "--widths", "100", "--epochs", "1", "--quiet"]
    assert main([*args, "--tau", "5", "--out", str(tmp_path / "run")]) == 0
    assert "the Fashion-MNIST recipe set --encoder-bits 3; options given win" in capsys.readouterr().out

    cfg = TrainConfig.from_run(tmp_path / "run")
    assert (cfg.encoder_bits, cfg.tau, cfg.widths, cfg.epochs) == (3, 5.0, [100], 1)  # given options win
    assert main(["train", *TINY, "--out", str(tmp_path / "digits")]) == 0  # 64 features: the usual defaults
    assert TrainConfig.from_run(tmp_path / "digits").encoder_bits == 4


def test_version_is_the_packages(capsys):
    import importlib.metadata

    import diffgates

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"diffgates {diffgates.__version__}"
    assert importlib.metadata.version("diffgates") == diffgates.__version__  # pyproject reads it from the package
