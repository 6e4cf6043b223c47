"""Bad input is refused once, at the boundary: one sentence on stderr, exit code 2, no traceback
and no half-made output. One test per class of bad input the README lists."""

import json
import shutil

import numpy as np
import pytest

from conftest import TINY, random_circuit, tiny_run
from diffgates import Circuit, DiffgatesError, LogicNet, ModelConfig, to_circuit
from diffgates.circuit.execute import predict_counts
from diffgates.circuit.program import Executor, available
from diffgates.cli import main
from diffgates.config import TrainConfig
from diffgates.encode import ThermometerEncoder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def export(run):
    out = run.parent / "export"
    assert main(["compile", str(run), "--out", str(out), "--vectors", "25", "--target", "c"]) == 0
    return out


def refused(capsys, args, message):
    """``args`` exit 2 with one line naming ``message`` and no traceback."""
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    "yaml,message",
    [
        ("widths: '20'", "widths must be a list of int values"),
        ("widths: [20, x]", "widths must be an integer, got 'x'"),
        ("lr: fast", "lr must be a finite number, got 'fast'"),
        ("lr: .nan", "lr must be a finite number"),
        ("epochs: '1'", "epochs must be an integer, got '1'"),
        ("epochs: 1.5", "epochs must be an integer, got 1.5"),
        ("encoder_bits: 2.0", "encoder_bits must be an integer, got 2.0"),
        ("epochs: true", "epochs must be an integer, got True"),
        ("tau: -1", "tau must be greater than 0"),
        ("threads: -2", "threads must be at least 1, got -2"),
        ("threads: 99999999999999999999", "threads must be at most 4096"),
        ("seed: 99999999999999999999", "seed must be at most 4294967295"),
        ("tau: 1e308", "tau must be at most 1000000"),
        ("flip: 1.5\nimage_shape: [1, 8, 8]", "flip must be at most 1"),
        ("encoder_strategy: fixed\nencoder_thresholds: [.inf]", "encoder_thresholds must be a finite number"),
        ("parametrization: 7", "parametrization must be a string, got 7"),
        ("conv: 8:3", "conv must be a list of str values"),
        ("lr: [0.1", "is not valid YAML or JSON at line 4, column 1: expected ',' or ']'"),
    ],
)
def test_config_values_of_the_wrong_type_or_range_are_refused(tmp_path, capsys, yaml, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 1\nwidths: [20]\n" + yaml + "\n")
    refused(capsys, ["train", "--config", str(cfg), "--out", str(tmp_path / "r"), "--quiet"], message)
    assert not (tmp_path / "r").exists()


def test_a_config_or_recipe_that_is_not_text_is_one_sentence(tmp_path, capsys):
    (tmp_path / "image.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    refused(capsys, ["train", "--config", str(tmp_path / "image.yaml"), "--out", str(tmp_path / "r")], "not text")
    refused(capsys, ["recipe", str(tmp_path / "image.yaml")], "is not valid YAML: it is not text")
    assert not (tmp_path / "r").exists()


def test_yaml_exponents_read_as_strings_are_numbers():
    assert TrainConfig.from_dict({"lr": "1e-3"}).lr == 0.001  # YAML 1.1 reads 1e-3 as a string


@pytest.mark.parametrize(
    "options,message",
    [
        (["--threads", "-1"], "--threads: must be at least 1"),
        (["--threads", "0"], "--threads: must be at least 1"),
        (["--threads", "99999999999999999999"], "--threads: must be at most 4096"),
        (["--lr", "nan"], "--lr: expected a finite number"),
        (["--epochs", "0"], "--epochs: must be at least 1"),
        (["--epochs", "1.5"], "--epochs: expected an integer"),
        (["--widths", "20,0"], "--widths: must be at least 1, got 0"),
    ],
)
def test_train_options_out_of_range_are_refused(tmp_path, capsys, options, message):
    refused(capsys, ["train", *TINY, *options, "--out", str(tmp_path / "r")], message)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "options,message",
    [
        (["--encoder-strategy", "fixed", "--encoder-thresholds", "0.5", "--encoder-bits", "3"], "conflicts with the 1"),
        (["--encoder-thresholds", "0.5"], "--encoder-thresholds does nothing without --encoder-strategy fixed"),
        (["--candidates", "4"], "--candidates does nothing without --connections learned"),
        (["--gumbel-scale", "0.5"], "--gumbel-scale does nothing without --forward gumbel"),
        (["--distill-weight", "0.9"], "--distill-weight does nothing without --teacher"),
        (["--trunk-blocks", "2"], "--trunk-blocks does nothing without --trunk"),
        (["--tree-depth", "2"], "--tree-depth does nothing without --conv"),
    ],
)
def test_options_that_do_nothing_in_the_combination_are_refused(tmp_path, capsys, options, message):
    refused(capsys, ["train", *TINY, *options, "--out", str(tmp_path / "r")], message)


def test_fixed_thresholds_record_the_bit_count_they_give(tmp_path):
    out = tmp_path / "r"
    args = ["--encoder-strategy", "fixed", "--encoder-thresholds", "4,8", "--out", str(out)]
    assert main(["train", *TINY, *args]) == 0
    assert TrainConfig.from_run(out).encoder_bits == 2


def test_a_saved_run_with_idle_options_still_loads_them_reset(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("epochs: 1\ndistill_weight: 0.9\nencoder_strategy: fixed\nencoder_thresholds: [0.5]\n")
    loaded = TrainConfig.from_run(tmp_path)
    assert loaded.distill_weight == 0.5 and loaded.encoder_bits == 1


@pytest.mark.parametrize(
    "arrays,message",
    [
        ({"x_train": np.zeros((0, 4))}, "at least one of each"),
        ({"x_train": np.array([["a", "b"]] * 5)}, "x_train must hold numbers"),
        ({"y_train": np.array([0.5] * 5)}, "integer class labels"),
        ({"y_test": np.arange(3)}, "same length"),
        ({"x_test": np.full((4, 3), np.nan)}, "NaN or infinite"),
        ({"y_train": -np.arange(5)}, "negative labels"),
    ],
)
def test_bad_dataset_arrays_are_refused_before_anything_is_written(tmp_path, capsys, arrays, message):
    data = {"x_train": np.ones((5, 3)), "y_train": np.arange(5) % 2, "x_test": np.ones((4, 3)), "y_test": np.arange(4)}
    data.update(arrays)
    np.savez(tmp_path / "d.npz", **data)
    refused(capsys, ["train", *TINY, "--dataset", str(tmp_path / "d.npz"), "--out", str(tmp_path / "r")], message)
    assert not (tmp_path / "r").exists()


def test_random_bytes_are_not_called_pickled_data(tmp_path, capsys):
    (tmp_path / "d.npz").write_bytes(np.random.default_rng(0).bytes(300))
    err = refused(capsys, ["train", *TINY, "--dataset", str(tmp_path / "d.npz")], "not an .npz file")
    assert "pickle" not in err


def test_uint8_pixels_in_npz_are_scaled_like_the_bundled_images(tmp_path):
    from diffgates.data import load_dataset

    x = np.array([[0, 128, 255]] * 4, dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(4) % 2, x_test=x, y_test=np.arange(4) % 2)
    ds = load_dataset(str(tmp_path / "d.npz"))
    np.testing.assert_allclose(ds.x_train[0], [0, 128 / 255, 1], rtol=1e-6)


def circuit_fields(c: Circuit) -> dict:
    return {
        "format": np.array("diffgates-circuit"),
        "version": np.array(1),
        "n_features": np.array(c.n_features),
        "n_classes": np.array(c.n_classes),
        "tau": np.array(c.tau),
        **{k: getattr(c, k) for k in ("in_feature", "in_threshold", "ops", "a", "b", "outputs", "layer")},
    }


@pytest.mark.parametrize(
    "change,message",
    [
        ({"ops": None}, "lacks circuit fields ops"),
        ({"ops": "ANDOR"}, "ops must be a 1-d numeric array"),
        ({"ops": np.full(80, 300)}, "ops holds values outside 0..255"),
        ({"ops": np.full(80, 17)}, "gate ops must be in 0..15"),
        ({"a": np.full(80, 2**40)}, "a holds values outside"),
        ({"a": np.full(80, 0.5)}, "a must hold integers"),
        ({"b": np.arange(80) + 12}, "topological order"),
        ({"a": np.zeros(0, np.uint8)}, "gate arrays differ in length"),
        ({"b": np.zeros(81, np.int32)}, "gate arrays differ in length"),
        ({"in_threshold": np.zeros(3, np.float32)}, "one entry per input bit"),
        ({"in_threshold": np.full(12, np.inf, np.float32)}, "thresholds must be finite"),
        ({"n_classes": np.array("two")}, "n_classes must be an integer"),
        ({"n_classes": np.array([2, 2])}, "n_classes must be an integer"),
        ({"tau": np.array(np.nan)}, "tau must be a finite number"),
        ({"tau": np.array(0.0)}, "tau must be positive"),
        ({"outputs": np.array([1, 2, 3])}, "split evenly"),
        ({"in_feature": np.full(12, 99)}, "features out of range"),
    ],
)
def test_circuit_files_are_checked_against_every_invariant_before_any_cast(tmp_path, change, message):
    fields = circuit_fields(random_circuit())
    for k, v in change.items():
        if v is None:
            del fields[k]
        else:
            fields[k] = v
    np.savez(tmp_path / "c.npz", **fields)
    with pytest.raises(DiffgatesError, match=message):
        Circuit.load(tmp_path / "c.npz")


@pytest.mark.parametrize("command", ["eval", "predict", "merge"])
def test_a_thread_count_beyond_what_torch_takes_is_refused(run, tmp_path, capsys, command):
    extra = {"eval": [], "predict": [str(tmp_path / "x.npy")], "merge": [str(run), "--out", str(tmp_path / "m")]}
    refused(capsys, [command, str(run), *extra[command], "--threads", str(2**63)], "--threads: must be at most 4096")


def test_the_python_api_validates_like_the_files():
    c = random_circuit()
    with pytest.raises(DiffgatesError, match="ops holds values outside"):
        c.replace(ops=np.full(c.n_gates, -1))
    with pytest.raises(DiffgatesError, match="fixed thresholds must be finite"):
        ThermometerEncoder(strategy="fixed", thresholds=[0.5, float("nan")])
    if available():
        for bad in (0, -3, 2.5, True, 10**6):
            with pytest.raises(DiffgatesError, match="threads must be an integer"):
                Executor(c, threads=bad)
        with pytest.raises(DiffgatesError, match="takes a Circuit"):
            Executor("circuit.npz")
    with pytest.raises(DiffgatesError, match="width 7 must be a multiple of the 10 classes, such as 10"):
        LogicNet(ModelConfig(n_features=4, n_classes=10, widths=[7]))
    with pytest.raises(DiffgatesError, match="width 4000 must be a multiple of the 9 classes, such as 3996"):
        LogicNet(ModelConfig(n_features=4, n_classes=9, widths=[4000]))
    with pytest.raises(DiffgatesError, match="at least one dense layer"):
        LogicNet(ModelConfig(n_features=4, n_classes=10, widths=[]))
    with pytest.raises(DiffgatesError, match="engine must be auto, native or numpy"):
        predict_counts(c, np.zeros((2, c.n_features), np.float32), engine="gpu")
    with pytest.raises(DiffgatesError, match="encoder is not fitted"):  # its thresholds are the circuit's
        to_circuit(LogicNet(ModelConfig(n_features=4, n_classes=2, widths=[10])))


@pytest.mark.parametrize(
    "options,message",
    [
        (["--vectors", "0"], "--vectors: must be at least 1"),
        (["--vectors", "-5"], "--vectors: must be at least 1"),
        (["--stage-levels", "-1"], "--stage-levels: must be at least 0"),
        (["--input-bits", "0"], "--input-bits: must be at least 1"),
        (["--input-bits", "40"], "--input-bits: must be at most 32"),
        (["--input-divisor", "0"], "--input-divisor: must be greater than 0"),
        (["--input-divisor", "inf"], "--input-divisor: expected a finite number"),
    ],
)
def test_compile_options_out_of_range_are_refused(run, tmp_path, capsys, options, message):
    refused(capsys, ["compile", str(run), "--out", str(tmp_path / "e"), *options], message)
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("metrics.jsonl", "{not json\n", "metrics.jsonl line 1 is corrupt"),
        ("metrics.jsonl", '{"epoch": 1}\n', "lacks numbers for loss"),
        ("metrics.jsonl", "[1, 2]\n", "is not a JSON object"),
        ("metrics.jsonl", "", "has no epochs yet"),
        ("summary.json", "{", "summary.json is corrupt"),
        ("summary.json", "[]", "summary.json is corrupt"),
    ],
)
def test_report_names_the_corrupt_file(run, tmp_path, capsys, name, content, message):
    pytest.importorskip("matplotlib")
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / name).write_text(content)
    refused(capsys, ["report", str(copy)], message)


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("golden_counts.txt", None, "neither an export holding golden_counts.txt nor a run with one"),
        ("golden_features.txt", None, "golden_features.txt is missing"),
        ("golden_counts.txt", "1 2 x\n", "golden_counts.txt is corrupt"),
        ("golden_features.txt", "nan 1\n", "golden_features.txt is corrupt"),
        ("golden_counts.txt", "0 " * 10 + "\n", "rows but golden_counts.txt"),
        ("golden_features.txt", "1 2\n" * 25, "the golden vectors are 2 features"),
    ],
)
def test_verify_names_the_corrupt_golden_file(export, tmp_path, capsys, name, content, message):
    copy = tmp_path / "export"
    shutil.copytree(export, copy)
    if content is None:
        (copy / name).unlink()
    else:
        (copy / name).write_text(content)
    err = refused(capsys, ["verify", str(copy)], message)
    assert "MISMATCH" not in err and "free space" not in err


def test_verify_takes_a_run_directory_for_its_export(export, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(export, run / "export")
    assert main(["verify", str(run)]) == 0
    assert "bit-exact" in capsys.readouterr().out
    shutil.rmtree(run / "export")
    refused(capsys, ["verify", str(run)], "nor a run with one; run 'diffgates compile' first")


def test_a_corrupt_checkpoint_config_is_a_clear_error(run, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    tensors = load_file(str(copy / "model.safetensors"))
    meta = {"format": "diffgates-model", "version": "1", "config": json.dumps({"n_features": "many"})}
    save_file(tensors, str(copy / "model.safetensors"), metadata=meta)
    refused(capsys, ["eval", str(copy)], "is not a valid diffgates checkpoint")
    save_file(tensors, str(copy / "model.safetensors"), metadata={**meta, "version": "{"})
    refused(capsys, ["eval", str(copy)], "corrupt: its format version is '{'")
    save_file(tensors, str(copy / "model.safetensors"), metadata={**meta, "version": "99"})
    refused(capsys, ["eval", str(copy)], "has format version 99; upgrade diffgates to read it")


def test_an_internal_error_exits_1_and_points_to_debug(run, monkeypatch, capsys):
    import diffgates.cli as cli

    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "cmd_info", broken)
    assert main(["info", str(run)]) == 1
    err = capsys.readouterr().err
    assert "internal error (ZeroDivisionError)" in err and "--debug" in err and "Traceback" not in err


def test_a_trunk_brings_the_convolutions_that_head_options_need():
    cfg = TrainConfig.from_dict({"trunk": "runs/t", "trunk_blocks": 2, "head_input": "blocks+bits"})
    assert cfg.head_input == "blocks+bits"
