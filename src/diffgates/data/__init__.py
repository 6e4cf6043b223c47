"""Datasets: everything becomes float32 features (samples, features) and int64 labels.

- ``digits``: scikit-learn's bundled 8x8 digits (offline), fixed stratified 80/20 split.
- ``fashion-mnist``, ``mnist``: the standard IDX files (``.gz`` or not) in a directory; searched in
  ``--data-dir``, ``$DIFFGATES_DATA/<name>``, ``~/.cache/diffgates/<name>`` and, for
  Fashion-MNIST, ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``).
- ``cifar10``: the python-pickle batches (``cifar-10-batches-py``, or the ``cifar-10-python.tar.gz``
  archive, extracted on first use) in the same places.
- ``diffgates download mnist|cifar10`` fetches MNIST or CIFAR-10 into ``~/.cache/diffgates/<name>``,
  checking each file's SHA-256.
- a path ending in ``.npz`` holding ``x_train, y_train, x_test, y_test`` (and, if you like,
  ``class_names``: a string a class, in label order); features of dtype uint8 (pixels 0-255) are
  scaled to [0, 1], other numeric dtypes are used as they are.
- a folder of image files, one subfolder a class (``folders``).
The bundled image datasets' and the folders' pixels are scaled to [0, 1].
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import paths
from ..errors import NPZ_READ_ERRORS, DiffgatesError
from .folders import class_folders, folder_image_shape, is_class_folder, load_class_folder
from .idx import read_idx

DATASETS = ("digits", "fashion-mnist", "mnist", "cifar10")
#: every dataset known by name: also the image tasks' bundled photographs (``image.data``)
NAMED = (*DATASETS, "photos")
#: (channels, height, width) of the image datasets; features are stored channel by channel, row by row.
IMAGE_SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
#: the names of the bundled datasets' classes, in label order (digits and MNIST: the labels themselves)
CLASS_NAMES = {
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}

_HINTS = {
    "fashion-mnist": "install Debian's package with 'apt-get install dataset-fashion-mnist', or put the 4 "
    "IDX files from https://github.com/zalandoresearch/fashion-mnist in a directory and pass --data-dir",
    "mnist": "run 'diffgates download mnist', or put the 4 MNIST IDX files (train-images-idx3-ubyte.gz, ...) "
    "in a directory and pass --data-dir",
    "cifar10": "run 'diffgates download cifar10', or put cifar-10-python.tar.gz or its cifar-10-batches-py "
    "directory in a directory and pass --data-dir",
}
_SYSTEM_DIRS = {"fashion-mnist": ["/usr/share/datasets/fashion-mnist"], "mnist": [], "cifar10": []}
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    #: each class's name, label order (None where the labels are the names)
    class_names: tuple[str, ...] | None = None

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def holdout(self, fraction: float, seed: int) -> tuple[Dataset, np.ndarray, np.ndarray]:
        """(this dataset without a validation split, x_val, y_val): :func:`holdout_indices`."""
        keep, val = holdout_indices(len(self.y_train), fraction, seed, "training samples")
        rest = Dataset(self.name, self.x_train[keep], self.y_train[keep], self.x_test, self.y_test, self.class_names)
        return rest, self.x_train[val], self.y_train[val]


def holdout_indices(n: int, fraction: float, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out) sorted indices of ``n`` items: ``fraction`` of them held out, chosen by
    ``seed`` (the first of ``numpy.random.default_rng(seed).permutation``)."""
    k = round(n * fraction)
    if not 1 <= k < n:
        raise DiffgatesError(f"--validation {fraction} of {n} {what} leaves no validation or training set.")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[k:]), np.sort(order[:k])


def validate(ds: Dataset) -> Dataset:
    """Check shapes, finiteness and labels once, at the boundary."""
    for split in ("train", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
            raise DiffgatesError(
                f"dataset {ds.name}: x_{split} must be (samples, features) and y_{split} (samples,) of the "
                f"same length, got {x.shape} and {y.shape}."
            )
        if not np.isfinite(x).all():
            raise DiffgatesError(f"dataset {ds.name}: x_{split} contains NaN or infinite values.")
        if y.min() < 0:
            raise DiffgatesError(f"dataset {ds.name}: y_{split} has negative labels; labels must be 0..k-1.")
        if y.max() >= 65536:
            raise DiffgatesError(f"dataset {ds.name}: y_{split} has a label {y.max()}; labels must be 0..k-1.")
    if ds.n_classes < 2:
        raise DiffgatesError(f"dataset {ds.name}: every label is 0; a classifier needs two or more classes.")
    if ds.class_names is not None and len(ds.class_names) < ds.n_classes:
        raise DiffgatesError(
            f"dataset {ds.name}: labels go up to {ds.n_classes - 1}, but there are only {len(ds.class_names)} class "
            "names."
        )
    if ds.x_train.shape[1] != ds.x_test.shape[1]:
        raise DiffgatesError(
            f"dataset {ds.name}: train has {ds.x_train.shape[1]} features but test has {ds.x_test.shape[1]}."
        )
    return ds


def _digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return Dataset("digits", xtr.astype(np.float32), ytr.astype(np.int64), xte.astype(np.float32), yte.astype(np.int64))


def data_dirs(name: str, data_dir: str | None) -> list[Path]:
    """Where dataset ``name`` is looked for, in order."""
    given = [Path(data_dir)] if data_dir else []
    return given + paths.data_dirs(name) + [Path(d) for d in _SYSTEM_DIRS[name]]


def _not_found(name: str, candidates: list[Path]) -> DiffgatesError:
    where = ", ".join(str(c) for c in candidates)
    return DiffgatesError(f"{name} not found (looked in {where}); {_HINTS[name]}.")


def find_idx_dir(name: str, data_dir: str | None) -> Path:
    candidates = data_dirs(name, data_dir)
    for d in candidates:
        if all((d / f).exists() or (d / (f + ".gz")).exists() for f in _IDX_FILES):
            return d
    raise _not_found(name, candidates)


def _cifar10(data_dir: str | None) -> Dataset:
    from .cifar import batches_dir, load_cifar10

    candidates = data_dirs("cifar10", data_dir)
    for d in candidates:
        found = batches_dir(d) if d.is_dir() else None
        if found is not None:
            return Dataset("cifar10", *load_cifar10(found), CLASS_NAMES["cifar10"])
    raise _not_found("cifar10", candidates)


def _idx(name: str, data_dir: str | None) -> Dataset:
    d = find_idx_dir(name, data_dir)

    def read(stem):
        path = d / stem if (d / stem).exists() else d / (stem + ".gz")
        return read_idx(path)

    xtr, ytr, xte, yte = (read(f) for f in _IDX_FILES)
    flat = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255.0  # noqa: E731
    return Dataset(name, flat(xtr), ytr.astype(np.int64), flat(xte), yte.astype(np.int64), CLASS_NAMES.get(name))


def _npz(path: str) -> Dataset:
    """x_train, y_train, x_test, y_test from an .npz file; uint8 features (pixels) are scaled to [0, 1]
    like the bundled image datasets, other numeric features are used as they are."""
    p = Path(path)
    if not p.is_file():
        raise DiffgatesError(f"no dataset file at {p}.")
    if not zipfile.is_zipfile(p):
        raise DiffgatesError(f"{p} is not an .npz file (not a zip archive); save one with numpy.savez.")
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise DiffgatesError(f"{p} lacks arrays {', '.join(missing)}; it needs {', '.join(keys)}.")
            arrays = {k: z[k] for k in keys}
            names = z["class_names"] if "class_names" in z.files else None
    except NPZ_READ_ERRORS as e:
        raise DiffgatesError(f"{p} is not a readable .npz file (object arrays are not allowed): {e}.") from e
    for k in ("x_train", "x_test"):
        x = arrays[k]
        if x.dtype.kind not in "biuf":
            raise DiffgatesError(f"{p}: {k} must hold numbers, got {x.dtype}.")
        if x.ndim < 2 or x.shape[0] == 0 or x[0].size == 0:
            raise DiffgatesError(f"{p}: {k} must be (samples, features...) with at least one of each, got {x.shape}.")
        flat = x.reshape(len(x), -1).astype(np.float32)
        arrays[k] = flat / 255.0 if x.dtype == np.uint8 else flat
    for k in ("y_train", "y_test"):
        y = arrays[k]
        if y.dtype.kind not in "iu" or y.ndim != 1:
            raise DiffgatesError(f"{p}: {k} must be a 1-d array of integer class labels, got {y.dtype} {y.shape}.")
        arrays[k] = y.astype(np.int64)
    return Dataset(p.stem, **arrays, class_names=None if names is None else _checked_class_names(p, names))


def _checked_class_names(path: Path, names: np.ndarray) -> tuple[str, ...]:
    """An .npz file's ``class_names``: a 1-d array of distinct, non-empty strings."""
    if names.dtype.kind == "S":
        names = np.char.decode(names, "utf-8", "replace")
    if names.dtype.kind != "U" or names.ndim != 1 or not all(n.strip() for n in names.tolist()):
        raise DiffgatesError(
            f"{path}: class_names must be a 1-d array of non-empty strings, got {names.dtype} {names.shape}."
        )
    if len(set(names.tolist())) < len(names):
        raise DiffgatesError(f"{path}: class_names names a class twice; give each class its own name.")
    return tuple(names.tolist())


def feature_count(name: str) -> int | None:
    """Features per sample of a dataset, known without loading it: from its image shape, or from
    the header of an .npz file's ``x_train`` (None where neither tells)."""
    shape = image_shape_of(name)
    if shape:
        return math.prod(shape)
    header = npz_header(name, "x_train")
    if header is None:
        return None  # the load itself says what is wrong
    shape = header[0]
    return int(math.prod(shape[1:])) if len(shape) >= 2 else None


def npz_header(name: str, key: str) -> tuple[tuple[int, ...], np.dtype] | None:
    """(shape, dtype) of array ``key`` in the .npz file ``name``, read from its header without
    loading it; None where there is no such file or array."""
    if not name.endswith(".npz"):
        return None
    try:
        with zipfile.ZipFile(name) as zf, zf.open(f"{key}.npy") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
    except (*NPZ_READ_ERRORS, KeyError):
        return None
    return shape, dtype


def eight_bit_pixels(name: str) -> bool:
    """Whether a dataset's features are 8-bit pixels scaled to [0, 1]: a bundled image dataset, a
    folder of images, or an .npz file whose ``x_train`` is uint8."""
    header = npz_header(name, "x_train")
    return name in IMAGE_SHAPES or is_class_folder(name) or (header is not None and header[1] == np.uint8)


def image_shape_of(name: str) -> tuple[int, int, int] | None:
    """(channels, height, width) of a dataset's images: a bundled image dataset's, or a class
    folder's (from its first image); None for other data."""
    if name in IMAGE_SHAPES:
        return IMAGE_SHAPES[name]
    return folder_image_shape(Path(name)) if is_class_folder(name) else None


def load_dataset(name: str, data_dir: str | None = None) -> Dataset:
    """Load a dataset by name (see module docstring) and validate it."""
    if name.endswith(".npz"):
        ds = _npz(name)
    elif name == "digits":
        ds = _digits()
    elif name in ("fashion-mnist", "mnist"):
        ds = _idx(name, data_dir)
    elif name == "cifar10":
        ds = _cifar10(data_dir)
    elif is_class_folder(name):
        ds = load_class_folder(Path(name))
    elif Path(name).is_dir() and class_folders(Path(name)):
        raise DiffgatesError(
            f"{name} holds image files beside its class folders; move them into a class folder or out of {name}."
        )
    elif Path(name).is_dir():
        raise DiffgatesError(
            f"{name} has no class folders: a classifier trains on a folder with a subfolder of images for each "
            "class (FOLDER/CLASS/*.png, or FOLDER/train/CLASS/ and FOLDER/test/CLASS/); a folder of images "
            "alone is for the image tasks (--task superres or denoise)."
        )
    else:
        raise DiffgatesError(
            f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}, a .npz path or a folder of class folders."
        )
    return validate(ds)
