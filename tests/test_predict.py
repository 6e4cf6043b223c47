"""diffgates predict: a classifier's circuit on new arrays and image files, its outputs and refusals."""

import csv

import numpy as np
import pytest

from conftest import TINY, current_umask, tiny_run
from diffgates.circuit import Circuit
from diffgates.circuit.execute import run_numpy
from diffgates.circuit.ir import encode_bits
from diffgates.cli import main
from diffgates.data import load_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def pixel_run(tmp_path_factory):
    """A run trained on an .npz of 4 x 4 uint8 images (pixels scaled to [0, 1] in training)."""
    folder = tmp_path_factory.mktemp("pixels")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (200, 4, 4), dtype=np.uint8)
    y = (x[:, :2].mean((1, 2)) > x[:, 2:].mean((1, 2))).astype(np.int64)
    data = folder / "squares.npz"
    np.savez(data, x_train=x[:150], y_train=y[:150], x_test=x[150:], y_test=y[150:])
    out = folder / "run"
    assert main(["train", *TINY, "--widths", "40", "--dataset", str(data), "--out", str(out)]) == 0
    return out, x[150:]


def oracle(run_dir, x):
    """Labels from the numpy reference of the saved circuit (first maximum wins)."""
    c = Circuit.load(run_dir / "circuit.npz")
    return run_numpy(c, encode_bits(c, x)).argmax(1)


def refused(capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_predict_prints_and_writes_the_circuits_labels(run, tmp_path, capsys):
    x = load_dataset("digits").x_test
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", x_test=x, y_test=np.zeros(len(x), dtype=np.int64))
    expected = oracle(run, x)
    assert main(["predict", str(run), str(tmp_path / "x.npy")]) == 0
    printed = capsys.readouterr().out.split()
    assert [int(v) for v in printed] == expected.tolist()

    assert main(["predict", str(run), str(tmp_path / "x.npz"), "-o", str(tmp_path / "labels.npy")]) == 0
    labels = np.load(tmp_path / "labels.npy")
    assert labels.dtype == np.int64 and labels.tolist() == expected.tolist()

    assert main(["predict", str(run), str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.csv")]) == 0
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.reader(f))
    c = Circuit.load(run / "circuit.npz")
    counts = run_numpy(c, encode_bits(c, x))
    assert rows[0] == ["sample", "label", *(f"count_{k}" for k in range(c.n_classes))]
    assert [[int(v) for v in r] for r in rows[1:]] == [[i, y, *n] for i, (y, n) in enumerate(zip(expected, counts))]


def test_predict_reads_image_files_as_the_pixels_it_was_trained_on(pixel_run, tmp_path, capsys):
    from PIL import Image

    run, images = pixel_run
    paths = []
    for i, image in enumerate(images[:5]):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    assert main(["predict", str(run), *paths]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    expected = oracle(run, images[:5].reshape(5, -1).astype(np.float32) / 255)
    assert expected.tolist() != oracle(run, images[:5].reshape(5, -1).astype(np.float32)).tolist()  # scaling shows
    assert lines == [f"{p}\t{y}" for p, y in zip(paths, expected)]
    # the same images as a uint8 array: scaled the same way
    np.save(tmp_path / "x.npy", images[:5])
    assert main(["predict", str(run), str(tmp_path / "x.npy")]) == 0
    assert [int(v) for v in capsys.readouterr().out.split()] == expected.tolist()

    Image.fromarray(np.zeros((5, 4), dtype=np.uint8)).save(tmp_path / "wide.png")
    refused(capsys, ["predict", str(run), paths[0], str(tmp_path / "wide.png")], "the images differ in size")
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    refused(capsys, ["predict", str(run), str(tmp_path / "rgb.png")], "48 features a sample; the run takes 16")


def test_predict_refuses_bad_inputs_with_one_sentence(run, tmp_path, capsys):
    np.save(tmp_path / "short.npy", np.zeros((3, 10), dtype=np.float32))
    np.save(tmp_path / "nan.npy", np.full((3, 64), np.nan, dtype=np.float32))
    np.savez(tmp_path / "other.npz", pixels=np.zeros((3, 64)))
    (tmp_path / "bad.npy").write_text("not an array")
    (tmp_path / "pic.png").write_bytes(b"")
    x = str(tmp_path / "nan.npy")
    refused(capsys, ["predict", str(run), str(tmp_path / "short.npy")], "10 features a sample; the run takes 64")
    refused(capsys, ["predict", str(run), x], "holds NaN or infinite values")
    refused(capsys, ["predict", str(run), str(tmp_path / "other.npz")], "holds pixels; name the inputs x or x_test")
    refused(capsys, ["predict", str(run), str(tmp_path / "bad.npy")], "is not a readable .npy file")
    refused(capsys, ["predict", str(run), str(tmp_path / "missing.npy")], "no file at")
    refused(capsys, ["predict", str(run), str(tmp_path / "pic.png")], "whose features are not 8-bit pixels")
    refused(capsys, ["predict", str(run), x, x], "not both or several arrays")
    refused(capsys, ["predict", str(run), x, "-o", str(tmp_path / "out.txt")], "write labels to a .npy file")
    refused(capsys, ["predict", str(run), x, "-o", str(tmp_path / "no" / "out.npy")], "does not exist")


def test_predict_keeps_an_existing_output_unless_told(run, tmp_path, capsys):
    np.save(tmp_path / "x.npy", load_dataset("digits").x_test[:7])
    out = tmp_path / "labels.npy"
    out.write_bytes(b"mine")
    refused(capsys, ["predict", str(run), str(tmp_path / "x.npy"), "-o", str(out)], "exists; pass --overwrite")
    assert out.read_bytes() == b"mine"
    assert main(["predict", str(run), str(tmp_path / "x.npy"), "-o", str(out), "--overwrite"]) == 0
    assert np.load(out).shape == (7,)
    capsys.readouterr()
    x = str(tmp_path / "x.npy")
    refused(capsys, ["predict", str(run), x, "-o", x, "--overwrite"], "is the input; write elsewhere")
    assert np.load(x).shape == (7, 64)
    assert out.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # written like any other file
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
