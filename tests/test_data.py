import numpy as np
import pytest

from diffgates import DiffgatesError
from diffgates.data import load_dataset
from diffgates.data.idx import read_idx, write_idx


def write_fake_mnist(d, rng, n_train=50, n_test=20, compress=True):
    ext = ".gz" if compress else ""
    write_idx(d / f"train-images-idx3-ubyte{ext}", rng.integers(0, 256, (n_train, 28, 28)))
    write_idx(d / f"train-labels-idx1-ubyte{ext}", rng.integers(0, 10, n_train))
    write_idx(d / f"t10k-images-idx3-ubyte{ext}", rng.integers(0, 256, (n_test, 28, 28)))
    write_idx(d / f"t10k-labels-idx1-ubyte{ext}", rng.integers(0, 10, n_test))


@pytest.mark.parametrize("compress", [True, False])
def test_idx_loader_reads_the_standard_files(tmp_path, rng, compress):
    write_fake_mnist(tmp_path, rng, compress=compress)
    ds = load_dataset("mnist", str(tmp_path))
    assert ds.x_train.shape == (50, 784) and ds.x_test.shape == (20, 784)
    assert ds.x_train.dtype == np.float32 and 0 <= ds.x_train.min() and ds.x_train.max() <= 1
    ext = ".gz" if compress else ""
    raw = read_idx(tmp_path / f"train-images-idx3-ubyte{ext}")
    assert np.array_equal(ds.x_train[3], raw[3].reshape(-1) / np.float32(255))


def test_truncated_idx_file_is_a_clear_error(tmp_path, rng):
    write_idx(tmp_path / "f", rng.integers(0, 256, (4, 3)))
    raw = (tmp_path / "f").read_bytes()
    (tmp_path / "f").write_bytes(raw[:-2])
    with pytest.raises(DiffgatesError, match="truncated"):
        read_idx(tmp_path / "f")


def test_npz_dataset(tmp_path, rng):
    p = tmp_path / "toy.npz"
    np.savez(
        p,
        x_train=rng.normal(size=(30, 2, 3)),
        y_train=rng.integers(0, 3, 30),
        x_test=rng.normal(size=(10, 2, 3)),
        y_test=rng.integers(0, 3, 10),
    )
    ds = load_dataset(str(p))
    assert ds.x_train.shape == (30, 6) and ds.name == "toy" and ds.class_names is None
    np.savez(p, **dict(np.load(p)), class_names=np.array(["cat", "dog", "émeu"]))
    assert load_dataset(str(p)).class_names == ("cat", "dog", "émeu")
    np.savez(p, **{k: v for k, v in np.load(p).items() if k != "class_names"}, class_names=np.array([b"a", b"b", b"c"]))
    assert load_dataset(str(p)).class_names == ("a", "b", "c")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"x_test": np.zeros((10, 5))}, "train has 6 features but test has 5"),
        ({"y_train": np.full(30, -1)}, "negative labels"),
        ({"y_train": np.zeros(30) + 0.5}, "integer class labels"),
        ({"x_train": np.full((30, 6), np.nan)}, "NaN or infinite"),
        ({"y_test": np.zeros(3, dtype=int)}, "same length"),
        ({"y_train": np.zeros(30, dtype=int), "y_test": np.zeros(10, dtype=int)}, "two or more classes"),
        ({"class_names": np.array(["a", "b"])}, "labels go up to 2, but there are only 2 class names"),
        ({"class_names": np.array(["a", "b", "a"])}, "names a class twice"),
        ({"class_names": np.array(["a", " ", "c"])}, "class_names must be a 1-d array of non-empty strings"),
        ({"class_names": np.arange(3)}, "class_names must be a 1-d array of non-empty strings"),
    ],
)
def test_bad_npz_dataset_is_refused(tmp_path, rng, change, message):
    arrays = dict(
        x_train=rng.normal(size=(30, 6)),
        y_train=rng.integers(0, 3, 30),
        x_test=rng.normal(size=(10, 6)),
        y_test=rng.integers(0, 3, 10),
    )
    arrays.update(change)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DiffgatesError, match=message):
        load_dataset(str(tmp_path / "bad.npz"))


def test_digits_is_embedded():
    ds = load_dataset("digits")
    assert ds.n_features == 64 and ds.n_classes == 10
    assert len(ds.x_train) + len(ds.x_test) == 1797
