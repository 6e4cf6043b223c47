"""Runs survive SIGKILL: resuming gives exactly the weights and metrics of an uninterrupted run."""

import shutil
import subprocess

import pytest
from safetensors.torch import load_file

from conftest import assert_same_weights, cli, kill_and_resume_equals_uninterrupted

COMMON = [
    "train",
    "--dataset",
    "digits",
    "--widths",
    "300,300",
    "--batch-size",
    "16",
    "--epochs",
    "30",
    "--checkpoint-every",
    "7",
    "--threads",
    "1",
    "--quiet",
]


def mid_epoch(progress: dict) -> bool:
    """The last checkpoint is mid-epoch, a few epochs in."""
    return progress["epoch"] >= 3 and progress["step"] > 0


ACCURACIES = ("test_acc_discrete", "test_acc_relaxed")


@pytest.mark.parametrize("connections", ["unique", "learned"])
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(tmp_path, connections):
    kill_and_resume_equals_uninterrupted(tmp_path, [*COMMON, "--connections", connections], mid_epoch, ACCURACIES)


def test_resume_of_a_run_on_a_trunk_needs_the_trunk_no_more(tmp_path):
    trunk = tmp_path / "trunk"
    conv = ["--image-shape", "1,8,8", "--conv", "6:3:1:2:0,8:3:1:2:1"]
    base = ["train", "--dataset", "digits", *conv, "--widths", "100", "--epochs", "2", "--quiet"]
    subprocess.run(cli(*base, "--out", str(trunk)), check=True, capture_output=True)
    common = [*COMMON, "--trunk", str(trunk), "--trunk-blocks", "1", "--connections", "learned"]
    kill_and_resume_equals_uninterrupted(
        tmp_path, common, mid_epoch, ACCURACIES, before_resume=lambda: shutil.rmtree(trunk)
    )


def test_resume_refuses_other_options_and_missing_runs(tmp_path):
    r = subprocess.run(cli("train", "--resume", str(tmp_path / "nope")), capture_output=True, text=True)
    assert r.returncode == 2 and "is not a run directory" in r.stderr
    r = subprocess.run(cli("train", "--resume", str(tmp_path), "--epochs", "3"), capture_output=True, text=True)
    assert r.returncode == 2 and "give no other training options" in r.stderr


def test_corrupt_training_state_is_a_clear_error(tmp_path):
    run = tmp_path / "run"
    subprocess.run(
        cli("train", "--widths", "40", "--epochs", "1", "--out", str(run), "--quiet"), check=True, capture_output=True
    )
    state = run / "train_state.safetensors"
    state.write_bytes(state.read_bytes()[:100])
    r = subprocess.run(cli("train", "--resume", str(run)), capture_output=True, text=True)
    assert r.returncode == 2 and "corrupt or truncated" in r.stderr and "Traceback" not in r.stderr


def test_resume_may_change_the_thread_count(tmp_path):
    run = tmp_path / "run"
    argv = ("train", "--widths", "40", "--epochs", "1", "--threads", "2", "--out", str(run), "--quiet")
    subprocess.run(cli(*argv), check=True, capture_output=True)
    before = load_file(run / "model.safetensors")
    r = subprocess.run(cli("train", "--resume", str(run), "--threads", "1", "--quiet"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    after = load_file(run / "model.safetensors")  # nothing left to train: the same model
    assert_same_weights(before, after)
