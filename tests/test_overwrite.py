"""--overwrite replaces only what diffgates wrote, never an input of the same command, and never by
deleting first: a failure leaves the old result as it was."""

import json
import shutil
import socket
import subprocess

import pytest

from conftest import TINY, tiny_run
from diffgates.cli import main
from diffgates.outdir import MARKER, kind_of, partial_dir


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory)


def snapshot(path):
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_runs_and_exports_carry_their_marker(run, tmp_path):
    assert kind_of(run) == "run" and (run / MARKER).is_file()
    assert main(["compile", str(run), "--out", str(tmp_path / "exp"), "--target", "c", "--vectors", "20"]) == 0
    assert kind_of(tmp_path / "exp") == "export"
    assert not partial_dir(tmp_path / "exp").exists()


@pytest.mark.parametrize("command", ["train", "compile", "merge"])
def test_overwrite_refuses_a_directory_diffgates_did_not_write(run, tmp_path, capsys, command):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.txt").write_text("years of work")
    args = {
        "train": ["train", *TINY],
        "compile": ["compile", str(run), "--vectors", "20"],
        "merge": ["merge", str(run), str(run)],
    }[command]
    assert main([*args, "--out", str(out), "--overwrite"]) == 2
    assert "did not write" in capsys.readouterr().err
    assert (out / "thesis.txt").read_text() == "years of work"
    assert sorted(p.name for p in out.iterdir()) == ["thesis.txt"]


def test_compile_and_merge_refuse_to_overwrite_their_own_input(run, tmp_path, capsys):
    before = snapshot(run)
    assert main(["compile", str(run), "--out", str(run), "--overwrite"]) == 2
    assert "which this command reads" in capsys.readouterr().err
    assert main(["merge", str(run), str(run), "--out", str(run), "--overwrite"]) == 2
    assert "which this command reads" in capsys.readouterr().err
    assert main(["compile", str(run), "--out", str(run.parent), "--overwrite"]) == 2  # a folder holding the input
    assert snapshot(run) == before
    assert main(["eval", str(run)]) == 0


def test_train_refuses_to_overwrite_a_run_it_starts_from(run, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    before = snapshot(copy)
    assert main(["train", *TINY, "--init-from", str(copy), "--out", str(copy), "--overwrite"]) == 2
    assert "which this command reads" in capsys.readouterr().err
    config = copy / "config.yaml"
    assert main(["train", "--config", str(config), "--out", str(copy), "--overwrite", "--quiet"]) == 2
    assert snapshot(copy) == before


def test_a_compile_that_fails_during_overwrite_keeps_the_old_export(run, tmp_path, capsys):
    out = tmp_path / "exp"
    assert main(["compile", str(run), "--out", str(out), "--vectors", "30"]) == 0
    before = snapshot(out)
    # digits features go up to 16: 3-bit input codes cannot hold them, found while writing the Verilog
    assert main(["compile", str(run), "--out", str(out), "--overwrite", "--vectors", "40", "--input-bits", "3"]) == 2
    assert "features are not 3-bit codes" in capsys.readouterr().err
    assert snapshot(out) == before
    assert not partial_dir(out).exists()
    assert main(["verify", str(out)]) == 0


def test_overwrite_replaces_a_run_only_once_the_new_one_is_complete(run, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    shutil.copytree(run, out)
    before = snapshot(out)

    import diffgates.train as training

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "evaluate", crash)  # dies after training, before the run is complete
    assert main(["train", *TINY, "--seed", "3", "--out", str(out), "--overwrite"]) == 130
    assert snapshot(out) == before  # the old run is untouched
    partial = partial_dir(out)
    assert (partial / "train_state.safetensors").is_file()

    state = (partial / "train_state.safetensors").read_bytes()
    assert main(["train", *TINY, "--seed", "4", "--out", str(out), "--overwrite"]) == 2  # would lose it
    assert f"finish it with 'diffgates train --resume {partial}'" in capsys.readouterr().err
    assert (partial / "train_state.safetensors").read_bytes() == state and snapshot(out) == before

    monkeypatch.undo()
    assert main(["train", "--resume", str(partial)]) == 0  # finishing the new run swaps it in
    assert not partial.exists()
    assert "seed: 3" in (out / "config.yaml").read_text()
    assert kind_of(out) == "run" and main(["eval", str(out)]) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_overwrite_of_a_finished_run_swaps_in_the_new_one(run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run, out)
    (out / "notes.txt").write_text("stale")  # nothing of the old run survives in the new one
    assert main(["train", *TINY, "--seed", "5", "--out", str(out), "--overwrite"]) == 0
    assert "seed: 5" in (out / "config.yaml").read_text()
    assert not (out / "notes.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_training_whose_circuit_disagrees_fails_and_keeps_the_old_run(run, tmp_path, monkeypatch, capsys):
    import diffgates.train as training

    out = tmp_path / "run"
    shutil.copytree(run, out)
    before = snapshot(out)
    real = training.evaluate

    def disagree(*args, **kwargs):
        return {**real(*args, **kwargs), "circuit_mismatches": 7}

    monkeypatch.setattr(training, "evaluate", disagree)
    assert main(["train", *TINY, "--out", str(out), "--overwrite"]) == 1
    err = capsys.readouterr().err
    assert "disagrees with the model on 7 test samples" in err and "--debug" in err
    assert snapshot(out) == before


def test_overwrite_leaves_a_replacement_that_another_process_is_writing(run, tmp_path, capsys):
    out = tmp_path / "exp"
    assert main(["compile", str(run), "--out", str(out), "--target", "c", "--vectors", "20"]) == 0
    before = snapshot(out)
    partial = partial_dir(out)
    partial.mkdir()
    (partial / "model.c").write_text("half written")
    writer = subprocess.Popen(["sleep", "60"])
    try:
        info = {"kind": "export", "replaces": out.name, "pid": writer.pid, "host": socket.gethostname()}
        (partial / MARKER).write_text(json.dumps(info))
        assert main(["compile", str(run), "--out", str(out), "--overwrite", "--target", "c", "--vectors", "20"]) == 2
        assert f"process {writer.pid} is writing the replacement of {out}" in capsys.readouterr().err
        assert (partial / "model.c").read_text() == "half written" and snapshot(out) == before
    finally:
        writer.kill()
        writer.wait()
    # once that process is gone, what it left is only a failed attempt: replaced
    assert main(["compile", str(run), "--out", str(out), "--overwrite", "--target", "c", "--vectors", "20"]) == 0
    assert not partial.exists() and main(["verify", str(out)]) == 0
    assert set(json.loads((out / MARKER).read_text())) == {"kind"}


def test_a_run_being_trained_is_neither_resumed_nor_replaced_by_another_process(run, tmp_path, capsys):
    assert set(json.loads((run / MARKER).read_text())) == {"kind"}  # a finished run names no writer
    out = tmp_path / "run"
    shutil.copytree(run, out)
    writer = subprocess.Popen(["sleep", "60"])
    try:
        info = {"kind": "run", "pid": writer.pid, "host": socket.gethostname()}
        (out / MARKER).write_text(json.dumps(info))
        before = snapshot(out)
        assert main(["train", "--resume", str(out)]) == 2
        assert f"process {writer.pid} is writing {out}" in capsys.readouterr().err
        assert main(["train", *TINY, "--out", str(out), "--overwrite"]) == 2
        assert f"process {writer.pid} is writing {out}" in capsys.readouterr().err
        assert snapshot(out) == before and not partial_dir(out).exists()
    finally:
        writer.kill()
        writer.wait()
    # once that process is gone, the run is an ordinary one again
    assert main(["train", *TINY, "--seed", "5", "--out", str(out), "--overwrite"]) == 0
    assert set(json.loads((out / MARKER).read_text())) == {"kind"}
