import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY, random_model
from diffgates import Circuit, DiffgatesError, load_model
from diffgates.circuit.execute import predict_counts
from diffgates.circuit.program import Executor
from diffgates.data import load_dataset
from diffgates.encode import ThermometerEncoder
from diffgates.nn import to_circuit


def test_wrong_feature_count_is_a_clear_error():
    model = random_model(n_features=12)
    with pytest.raises(DiffgatesError, match="expected 12 features per sample, got 11"):
        model(torch.zeros(3, 11))
    with pytest.raises(DiffgatesError, match="expected 12 features per sample, got 11"):
        predict_counts(to_circuit(model), np.zeros((3, 11)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_refused(bad):
    model = random_model(n_features=4)
    x = np.zeros((2, 4), dtype=np.float32)
    x[1, 2] = bad
    with pytest.raises(DiffgatesError, match="NaN or infinite"):
        model(torch.as_tensor(x))
    with pytest.raises(DiffgatesError, match="NaN or infinite"):
        predict_counts(to_circuit(model), x)


@pytest.mark.parametrize("x", [np.array([["a", "b", "c", "d"]]), np.array([[None] * 4])], ids=["str", "object"])
def test_features_that_are_not_numbers_are_refused(x):
    circuit = to_circuit(random_model(n_features=4))
    with pytest.raises(DiffgatesError, match="expected numbers as features, got an array of"):
        predict_counts(circuit, x)
    with pytest.raises(DiffgatesError, match="expected numbers as features"):
        Executor(circuit).predict(x)


@pytest.mark.parametrize("engine", ["torch", "cpu", "reference"])
@pytest.mark.parametrize("conv", [[], ["4:3:1:2:0"]], ids=["dense", "conv"])
def test_the_model_takes_arrays_and_empty_batches(engine, conv):
    """A numpy array scores as its tensor does; an empty batch gives (0, classes) scores that
    backpropagate like any batch's, in training and evaluation, on every engine."""
    from diffgates import LogicNet, ModelConfig

    shape = {"image_shape": (1, 8, 8), "conv": conv} if conv else {}
    model = LogicNet(ModelConfig(n_features=64, n_classes=2, widths=(20, 20), **shape), engine=engine)
    x = np.random.default_rng(0).random((5, 64), dtype=np.float32)
    model.encoder.fit(x)
    for mode in ("train", "eval"):
        getattr(model, mode)()
        torch.manual_seed(0)
        from_array = model(x)
        torch.manual_seed(0)
        assert torch.equal(from_array, model(torch.as_tensor(x)))
        empty = model(x[:0])
        assert empty.shape == (0, 2)
        if mode == "train":
            model.zero_grad()
            empty.sum().backward()
            assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    assert model.counts(torch.zeros(0, 64)).shape == (0, 2)
    circuit = to_circuit(model)  # and the circuit, on the executor and on the numpy oracle
    for how in ("native", "numpy"):
        assert predict_counts(circuit, x[:0], engine=how).shape == (0, 2)


@pytest.mark.parametrize(
    "k,tau,message",
    [(2, -1.0, "tau"), (2, 0.0, "tau"), (2, float("nan"), "tau"), (0, 1.0, "n_classes must be at least 1")],
)
def test_a_head_that_cannot_score_is_refused(k, tau, message):
    from diffgates import LogicNet, ModelConfig

    with pytest.raises(DiffgatesError, match=message):
        LogicNet(ModelConfig(n_features=4, n_classes=k, widths=(20,), tau=tau))


def test_unfitted_encoder_says_so():
    with pytest.raises(DiffgatesError, match="not fitted"):
        ThermometerEncoder(3)(torch.zeros(2, 2))


def test_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(DiffgatesError, match="no diffgates checkpoint"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(DiffgatesError, match="no circuit file"):
        Circuit.load(tmp_path / "nope.npz")
    with pytest.raises(DiffgatesError, match="mnist not found"):
        load_dataset("mnist", str(tmp_path))
    with pytest.raises(DiffgatesError, match="no dataset file"):
        load_dataset(str(tmp_path / "x.npz"))


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    p = tmp_path / "m.safetensors"
    p.write_bytes(b"\x00" * 50)
    with pytest.raises(DiffgatesError, match="not a readable diffgates checkpoint"):
        load_model(p)


def _damage_first_member(path: Path) -> None:
    """Make the deflate stream of an .npz file's first member start with a block of the reserved
    type, which zlib refuses (``zlib.error``, not a zip or an OS error)."""
    raw = bytearray(path.read_bytes())
    assert raw[:4] == b"PK\x03\x04" and int.from_bytes(raw[8:10], "little") == 8  # deflated
    raw[30 + int.from_bytes(raw[26:28], "little") + int.from_bytes(raw[28:30], "little")] = 0b111
    path.write_bytes(bytes(raw))


def test_npz_files_whose_compressed_data_is_damaged_are_clear_errors(tmp_path):
    from diffgates.predict import _read_array

    to_circuit(random_model()).save(tmp_path / "circuit.npz")
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.random((20, 4)), "y_train": np.arange(20) % 2, "x_test": rng.random((5, 4))}
    np.savez_compressed(tmp_path / "data.npz", **arrays, y_test=np.arange(5) % 2)
    np.savez_compressed(tmp_path / "x.npz", x=rng.random((5, 4)))
    readers = {
        "circuit.npz": (Circuit.load, "not a readable circuit file"),
        "data.npz": (load_dataset, "not a readable"),
        "x.npz": (lambda path: _read_array(Path(path)), "not a readable"),
    }
    for name, (read, message) in readers.items():
        _damage_first_member(tmp_path / name)
        with pytest.raises(DiffgatesError, match=message + ".*(invalid block type|Error -3)"):
            read(str(tmp_path / name))


def test_cli_reports_one_line_and_nonzero_exit_without_traceback(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "diffgates.cli",
            "train",
            "--dataset",
            "mnist",
            "--data-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("error: mnist not found")
    assert not (tmp_path / "run").exists()


def test_unknown_config_keys_are_refused(tmp_path, capsys):
    from diffgates.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 1\nlearning_rate: 0.1\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "unknown config keys: learning_rate" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    cfg.write_text("epochs: 1\n1: 2\nnull: 3\n")  # keys that are not names
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "unknown config keys: 1, None;" in capsys.readouterr().err
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages: [{name: a}]\n2: x\nz: y\n")
    assert main(["recipe", str(recipe), "--out", str(tmp_path / "r")]) == 2
    assert "unknown recipe keys 2, z;" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_an_impossible_architecture_is_refused_before_the_run_directory_is_made(tmp_path, capsys):
    from diffgates.cli import main

    args = ["train", "--epochs", "1", "--widths", "25", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    assert "must be a multiple of the 10 classes" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_unwritable_output_directory_is_a_clear_error(tmp_path, capsys):
    from diffgates.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["train", "--epochs", "1", "--widths", "20", "--out", str(blocker / "run"), "--quiet"]) == 2
    assert "cannot write to" in capsys.readouterr().err
    assert blocker.read_text() == "not a directory"


def test_full_disk_during_a_save_keeps_the_old_file_and_says_so(tmp_path, monkeypatch, capsys):
    import errno

    import diffgates.checkpoint as ck
    from diffgates import save_model
    from diffgates.cli import main

    model = random_model()
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    before = path.read_bytes()

    def full(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", filename)

    monkeypatch.setattr(ck, "save_file", full)
    with pytest.raises(OSError):
        save_model(random_model(seed=1), path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.tmp*"))
    rc = main(["train", "--epochs", "1", "--widths", "20", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "No space left on device" in err and "Traceback" not in err


def test_running_out_of_memory_is_one_sentence_and_leaves_no_export(tmp_path, monkeypatch, capsys):
    import diffgates.export as export
    from diffgates.cli import main

    run = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(run)]) == 0

    def no_memory(*args, **kwargs):
        return np.zeros(2**60, np.float32)  # 4 EiB: numpy's MemoryError, "Unable to allocate ..."

    monkeypatch.setattr(export, "golden_vectors", no_memory)
    assert main(["compile", str(run), "--target", "c"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory (Unable to allocate") and len(err.splitlines()) == 1
    assert not (run / "export").exists() and not list(run.glob(".export*"))

    def no_torch_memory(*args, **kwargs):
        return torch.zeros(2**60)  # torch's CPU allocator: a RuntimeError, "can't allocate memory"

    monkeypatch.setattr(export, "golden_vectors", no_torch_memory)
    assert main(["compile", str(run), "--target", "c"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory (") and "can't allocate memory" in err and len(err.splitlines()) == 1
    assert not (run / "export").exists() and not list(run.glob(".export*"))


def test_eval_refuses_a_dataset_the_model_was_not_built_for(tmp_path, capsys):
    from diffgates.cli import main

    run = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--widths", "20", "--out", str(run), "--quiet"]) == 0
    np.savez(
        tmp_path / "other.npz",
        x_train=np.zeros((5, 3)),
        y_train=np.arange(5),
        x_test=np.zeros((5, 3)),
        y_test=np.arange(5),
    )
    (run / "config.yaml").write_text(
        (run / "config.yaml").read_text().replace("dataset: digits", f"dataset: {tmp_path / 'other.npz'}")
    )
    assert main(["eval", str(run)]) == 2
    assert "but the model expects 64 features" in capsys.readouterr().err


def test_unknown_activation_dtype_is_refused(capsys):
    from diffgates.cli import main
    from diffgates.nn import LogicNet, ModelConfig

    with pytest.raises(DiffgatesError, match="activations must be one of float32, bfloat16"):
        LogicNet(ModelConfig(n_features=4, n_classes=2, widths=[8], activations="float16"))
    assert main(["train", "--activations", "float16", "--epochs", "1"]) == 2  # refused before anything runs
    assert "invalid choice: 'float16'" in capsys.readouterr().err


def test_a_failed_or_interrupted_native_build_leaves_nothing_in_the_cache(tmp_path, monkeypatch):
    from diffgates import native

    src = tmp_path / "src"
    src.mkdir()
    (src / "broken.c").write_text("int f(void) { return }\n")
    (src / "fine.c").write_text("int f(void) { return 1; }\n")
    cache = tmp_path / "cache"
    monkeypatch.setenv("DIFFGATES_CACHE", str(cache))
    with pytest.raises(native.NativeUnavailable, match="building broken.c failed"):
        native.load(src / "broken.c")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(native.subprocess, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        native.load(src / "fine.c")
    assert list(cache.iterdir()) == []


def test_with_the_cache_off_the_builds_go_when_the_process_ends(tmp_path):
    code = (
        "from diffgates import native; from diffgates.paths import scratch_dir; "
        "(scratch_dir() / 'probe.c').write_text('int f(void) { return 1; }'); "
        "native.load(scratch_dir() / 'probe.c'); print(scratch_dir())"
    )
    env = {**os.environ, "DIFFGATES_CACHE": "off"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    scratch = Path(r.stdout.strip())
    assert scratch.name.startswith("diffgates-") and not scratch.exists()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_the_executor_refuses_a_non_finite_feature_wherever_it_is(bad):
    """The executor's kernel checks every float32 feature as it packs them (instead of a pass of
    its own over the input): one bad value is refused in a full tile of 64 rows (8 x 8 blocks),
    in the features past the last whole block of 8, in a last partial tile, in a feature the
    circuit does not read, and in float64 input."""
    from conftest import random_circuit
    from diffgates.circuit import program

    c = random_circuit(5, n_features=21, n_inputs=60, n_gates=200, n_classes=3, group=20)
    prog = program.prepare(c)
    x = np.random.default_rng(5).normal(size=(1100, 21)).astype(np.float32)  # 2 blocks and 76 rows
    assert np.array_equal(program.run_features(prog, x, 2), predict_counts(c, x, engine="numpy"))
    unread = sorted(set(range(21)) - set(c.in_feature.tolist()))
    for row, col in [(0, 0), (700, 7), (300, 20), (1070, 3), (1099, 12), (40, unread[0])]:
        for dtype in (np.float32, np.float64):
            y = x.astype(dtype)
            y[row, col] = bad
            with pytest.raises(DiffgatesError, match="NaN or infinite"):
                program.run_features(prog, y, 2)
