"""Classifier datasets from folders of image files, one subfolder a class: what they load as, the
runs trained on them (convolutions, predict from image files, compile to Verilog), and refusals."""

import csv

import numpy as np
import pytest

from conftest import TINY
from diffgates.circuit import Circuit
from diffgates.circuit.execute import run_numpy
from diffgates.circuit.ir import encode_bits
from diffgates.cli import main
from diffgates.data import eight_bit_pixels, feature_count, image_shape_of, load_dataset
from diffgates.errors import DiffgatesError


def save(path, pixels):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def squares(n, rng, shape=(4, 4)):
    """uint8 images and their class: whether the top half is brighter than the bottom half."""
    x = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    return x, (x[:, : shape[0] // 2].mean((1, 2)) > x[:, shape[0] // 2 :].mean((1, 2))).astype(np.int64)


def class_folder(root, x, y, names=("bright-top", "dark-top")):
    """Image k into root/names[y[k]]/k.png (zero-padded, so name order is k's order)."""
    for k, (img, label) in enumerate(zip(x, y)):
        save(root / names[label] / f"{k:04d}.png", img)
    return root


def test_a_class_folder_loads_as_scaled_pixels_with_every_fifth_file_of_a_class_held_out(tmp_path, rng):
    x, y = squares(40, rng)
    root = class_folder(tmp_path / "sq", x, y)
    ds = load_dataset(str(root))
    train, test = [], []
    for label in (0, 1):  # the classes in name order; each class's files in name order
        own = np.flatnonzero(y == label)
        held = own[4::5] if len(own) >= 5 else own[-1:]
        test += [(k, label) for k in held]
        train += [(k, label) for k in own if k not in held]
    assert ds.x_train.dtype == np.float32 and ds.x_train.shape == (len(train), 16)
    np.testing.assert_array_equal(ds.x_train, x[[k for k, _ in train]].reshape(-1, 16) / np.float32(255))
    np.testing.assert_array_equal(ds.y_train, [label for _, label in train])
    np.testing.assert_array_equal(ds.x_test, x[[k for k, _ in test]].reshape(-1, 16) / np.float32(255))
    np.testing.assert_array_equal(ds.y_test, [label for _, label in test])
    assert image_shape_of(str(root)) == (1, 4, 4) and feature_count(str(root)) == 16 and eight_bit_pixels(str(root))
    assert ds.class_names == ("bright-top", "dark-top")  # label order: the folders' names in order


def test_train_and_test_folders_and_rgb_images(tmp_path, rng):
    x = rng.integers(0, 256, (12, 5, 3, 3), dtype=np.uint8)  # 12 RGB images, 3 wide and 5 high
    y = np.arange(12) % 3
    for k in range(12):
        save(tmp_path / "rgb" / ("test" if k >= 9 else "train") / f"c{y[k]}" / f"{k}.png", x[k])
    ds = load_dataset(str(tmp_path / "rgb"))
    assert image_shape_of(str(tmp_path / "rgb")) == (3, 5, 3)
    np.testing.assert_array_equal(ds.x_test, x[9:].transpose(0, 3, 1, 2).reshape(3, -1) / np.float32(255))
    np.testing.assert_array_equal(ds.y_test, y[9:])  # channel by channel, row by row
    assert ds.n_classes == 3 and len(ds.y_train) == 9


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    x, y = squares(160, np.random.default_rng(0), shape=(6, 6))
    class_folder(root / "sq", x, y)
    out = root / "run"
    args = ["train", *TINY, "--widths", "60", "--dataset", str(root / "sq"), "--conv", "4:3", "--out", str(out)]
    assert main(args) == 0
    return out, root / "sq"


def test_a_run_on_a_class_folder_learns_its_image_shape_predicts_image_files_and_compiles(folder_run, capsys):
    out, data = folder_run
    c = Circuit.load(out / "circuit.npz")
    assert c.n_features == 36  # convolutions over the 6 x 6 greyscale images, no --image-shape given
    files = sorted((data / "dark-top").glob("*.png"))[:3] + sorted((data / "bright-top").glob("*.png"))[:3]
    capsys.readouterr()
    assert main(["predict", str(out), *map(str, files)]) == 0
    printed = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    from PIL import Image

    pixels = np.stack([np.asarray(Image.open(f)).reshape(-1) for f in files]) / np.float32(255)
    counts = run_numpy(c, encode_bits(c, pixels.astype(np.float32)))
    expected = counts.argmax(1)
    names = ["bright-top", "dark-top"]  # each label's class folder, printed after it
    assert [(f, int(label), name) for f, label, name in printed] == [
        (str(f), y, names[y]) for f, y in zip(files, expected.tolist())
    ]
    assert main(["predict", str(out), *map(str, files), "-o", str(out.parent / "p.csv")]) == 0
    with open(out.parent / "p.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["sample", "label", "class", "count_0", "count_1"]
    assert rows[1:] == [[str(f), str(y), names[y], *map(str, n)] for f, y, n in zip(files, expected, counts)]
    assert main(["predict", str(out), str(data / "dark-top")]) == 0  # a folder: each of its image files
    folder_files = sorted((data / "dark-top").glob("*.png"))
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == list(map(str, folder_files))
    assert main(["report", str(out)]) == 0 and (out / "report" / "confusion.png").is_file()  # axes named
    # an ensemble of the run keeps the names
    assert main(["merge", str(out), str(out), "--out", str(out.parent / "both")]) == 0
    capsys.readouterr()
    assert main(["predict", str(out.parent / "both"), *map(str, files)]) == 0
    assert [line.split("\t")[2] for line in capsys.readouterr().out.splitlines()] == [names[y] for y in expected]
    # 8-bit pixels: the Verilog encoder needs no --input-bits / --input-divisor
    assert main(["compile", str(out), "--target", "all"]) == 0
    assert '// class 1: "dark-top"' in (out / "export" / "model.v").read_text()  # what each output stands for
    assert '{\n"bright-top",\n"dark-top"\n}' in (out / "export" / "model.c").read_text()  # dg_class_name's


def refuses(path, message):
    with pytest.raises(DiffgatesError, match=message):
        load_dataset(str(path))


def test_bad_class_folders_are_refused(tmp_path, rng):
    x, y = squares(20, rng)
    one_class = class_folder(tmp_path / "one", x[y == 0], y[y == 0])
    refuses(one_class, "holds one class folder; a classifier needs two or more")
    lonely = class_folder(tmp_path / "lonely", x[:6], np.r_[0, 0, 0, 0, 0, 1])
    refuses(lonely, "class dark-top of .* holds one image; each class needs two or more")
    odd = class_folder(tmp_path / "odd", x, y)
    save(odd / "dark-top" / "9999.png", rng.integers(0, 256, (4, 5), dtype=np.uint8))
    refuses(odd, r"9999.png is 5 x 4 greyscale, but .*'s images are 4 x 4 greyscale")
    for part in ("train", "test"):
        class_folder(tmp_path / "split" / part, x, y, names=("a", "b") if part == "train" else ("a", "c"))
    refuses(tmp_path / "split", r"hold different classes \(b, c in one only\)")
    class_folder(tmp_path / "half" / "train", x, y)
    refuses(tmp_path / "half", "has a train/ folder but no test/ folder")
    plain = tmp_path / "plain"  # images without classes: an image task's dataset
    for k in range(3):
        save(plain / f"{k}.png", x[k])
    refuses(plain, "has no class folders: a classifier trains on a folder with a subfolder of images")
    class_folder(plain, x, y)
    refuses(plain, "holds image files beside its class folders; move them into a class folder or out of")


def test_an_image_task_refuses_a_class_folder(tmp_path, rng, capsys):
    x, y = squares(20, rng)
    root = class_folder(tmp_path / "sq", x, y)
    assert main(["train", "--task", "superres", "--dataset", str(root), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "holds class folders, a classifier's dataset" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_class_folder_too_large_for_memory_is_refused_before_its_pixels_are_read(tmp_path, rng, monkeypatch):
    from diffgates import native
    from diffgates.image import io

    x, y = squares(20, rng)
    root = class_folder(tmp_path / "sq", x, y)
    monkeypatch.setattr(native, "available_memory", lambda: 20 * 16 * 8 - 1)  # one byte short
    monkeypatch.setattr(io, "read_image", lambda path: pytest.fail("pixels read"))
    refuses(root, r"the 20 images of .* need about 0.0 GiB of memory, more than the 0.0 GiB available")
