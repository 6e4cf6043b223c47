"""CIFAR-10 in its standard python-pickle form (``cifar-10-batches-py``), read without trusting it.

The batches are pickles of ``{b"data": uint8 (10000, 3072), b"labels": [...]}``. Unpickling runs
code named by the file, so the reader allows only what those files need (numpy's array
reconstruction); anything else is refused with a clear error instead of being executed.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from ..errors import DiffgatesError
from .archive import safe_extract

ARCHIVE = "cifar-10-python.tar.gz"
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
TEST = "test_batch"
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core", 1) if hasattr(np, "_core") else module
        return super().find_class(module, name)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 3072) channel-major, labels int64) of one batch file."""
    try:
        with open(path, "rb") as f:
            d = _ArraysOnly(io.BytesIO(f.read()), encoding="bytes").load()
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise DiffgatesError(f"{path} is not a CIFAR-10 python batch: {e}.") from e
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DiffgatesError(
            f"{path}: expected data of shape (n, 3072) and n labels, got {data.shape}, {labels.shape}."
        )
    return data, labels


def batches_dir(d: Path) -> Path | None:
    """The directory holding the batch files under ``d``, extracting the archive if that is all there is."""
    for candidate in (d / "cifar-10-batches-py", d):
        if all((candidate / f).is_file() for f in [*TRAIN, TEST]):
            return candidate
    if (d / ARCHIVE).is_file():
        safe_extract(d / ARCHIVE, d)
        return batches_dir(d) if (d / "cifar-10-batches-py").is_dir() else None
    return None


def load_cifar10(d: Path) -> tuple[np.ndarray, ...]:
    """x_train, y_train, x_test, y_test with pixels in [0, 1], features channel by channel."""
    parts = [read_batch(d / f) for f in TRAIN]
    xtr = np.concatenate([p[0] for p in parts]).astype(np.float32) / 255.0
    ytr = np.concatenate([p[1] for p in parts])
    xte, yte = read_batch(d / TEST)
    return xtr, ytr, xte.astype(np.float32) / 255.0, yte
