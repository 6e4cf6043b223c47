"""``diffgates predict``: a trained classifier's circuit on new data, from arrays or image files.

Arrays (``.npy``, or ``.npz`` holding ``x`` or ``x_test``) are (samples, features...) in the units
the run was trained on: uint8 values are scaled to [0, 1] as training from ``.npz`` and the
bundled image datasets do, other numbers are used as they are. Image files (PNG, JPEG, ... through
Pillow) are read as 8-bit pixels scaled to [0, 1], channel by channel, so they are taken only by
runs trained on such pixels.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from .data import eight_bit_pixels, image_shape_of
from .data.folders import image_inputs
from .errors import NPZ_READ_ERRORS, DiffgatesError
from .outdir import check_output_file
from .paths import replacing

ARRAY_SUFFIXES = (".npy", ".npz")
OUTPUT_SUFFIXES = (".npy", ".csv")


def read_inputs(paths: list[str], dataset: str, image_shape: list[int] | None, n_features: int):
    """(features (samples, n_features) float32, a name per sample) from one array file
    or from image files and folders of them, checked against what the run takes."""
    arrays = [p for p in paths if Path(p).suffix.lower() in ARRAY_SUFFIXES]
    if arrays and len(paths) > 1:
        raise DiffgatesError("give one .npy or .npz file, or image files, not both or several arrays.")
    if arrays:
        x = _read_array(Path(arrays[0]))
        names = [str(i) for i in range(len(x))]
    else:
        files = image_inputs(paths)
        x, names = _read_images(files, dataset, image_shape), list(map(str, files))
    if x.shape[1] != n_features:
        raise DiffgatesError(f"the inputs have {x.shape[1]} features a sample; the run takes {n_features}.")
    return x, names


def _read_array(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DiffgatesError(f"no file at {path}.")
    try:
        if path.suffix.lower() == ".npy":
            x = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as z:
                key = next((k for k in ("x", "x_test") if k in z.files), None)
                if key is None:
                    listed = ", ".join(z.files) or "no arrays"
                    raise DiffgatesError(f"{path} holds {listed}; name the inputs x or x_test.")
                x = z[key]
    except NPZ_READ_ERRORS as e:
        what = f"a readable {path.suffix} file (object arrays are not allowed)"
        raise DiffgatesError(f"{path} is not {what}: {e}.") from e
    if x.dtype.kind not in "biuf" or x.ndim < 2 or x.shape[0] == 0:
        raise DiffgatesError(f"{path}: the inputs must be numbers, (samples, features...), got {x.dtype} {x.shape}.")
    flat = x.reshape(len(x), -1)
    if x.dtype == np.uint8:
        return flat.astype(np.float32) / np.float32(255)
    flat = flat.astype(np.float32)
    if not np.isfinite(flat).all():
        raise DiffgatesError(f"{path} holds NaN or infinite values; clean or impute them first.")
    return flat


def _read_images(paths: list[Path], dataset: str, image_shape: list[int] | None) -> np.ndarray:
    from .image.io import read_image

    if (dataset.endswith(".npz") or Path(dataset).is_absolute()) and not Path(dataset).exists():
        raise DiffgatesError(
            f"the run's training data {dataset} is gone, so whether its features were 8-bit pixels is unknown; "
            "pass the features as a .npy array."
        )
    if not eight_bit_pixels(dataset):
        raise DiffgatesError(
            f"the run was trained on {dataset}, whose features are not 8-bit pixels, so image files cannot stand "
            "for them; pass the features as a .npy array."
        )
    shape = tuple(image_shape) if image_shape else image_shape_of(dataset)
    images = []
    for path in paths:
        channels, mode, _ = read_image(path)
        if shape and channels.shape != shape:
            c, h, w = shape
            raise DiffgatesError(
                f"{path} is {channels.shape[2]} x {channels.shape[1]} {mode}; the run takes {w} x {h} "
                f"{'greyscale' if c == 1 else 'RGB'} images."
            )
        images.append(channels.reshape(-1))
    if len({len(v) for v in images}) > 1:
        raise DiffgatesError("the images differ in size; give images of one size.")
    return np.stack(images)


def check_output(path: str | os.PathLike, overwrite: bool, inputs: list[str]) -> Path:
    """Refuse an output file that would be lost (or is one of the ``inputs``) or could not be
    written, before any work."""
    out = Path(path)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise DiffgatesError(f"-o {out}: write labels to a .npy file or labels and counts to a .csv file.")
    return check_output_file(out, overwrite, inputs)


def classes_of(labels: np.ndarray, class_names: list[str] | None) -> list[str] | None:
    """The class name of each label (the label itself past the names), or None without names."""
    if not class_names:
        return None
    return [class_names[k] if k < len(class_names) else str(k) for k in labels.tolist()]


def write_predictions(
    out: Path, names: list[str], counts: np.ndarray | None, labels: np.ndarray, class_names: list[str] | None = None
) -> None:
    """Labels (.npy, int64) or, per sample, its name, label, class name (where the run has class
    names) and class counts (.csv: ``counts`` needed), replacing ``out`` whole or not at all."""
    try:
        with replacing(out) as tmp:
            if out.suffix.lower() == ".npy":
                with open(tmp, "wb") as f:
                    np.save(f, labels.astype(np.int64))
            else:
                with open(tmp, "w", newline="") as f:
                    rows = csv.writer(f)
                    classes = classes_of(labels, class_names)
                    named = ["class"] if classes else []
                    rows.writerow(["sample", "label", *named, *(f"count_{k}" for k in range(counts.shape[1]))])
                    for i, (name, y, c) in enumerate(zip(names, labels, counts)):
                        rows.writerow([name, int(y), *([classes[i]] if classes else []), *map(int, c)])
    except OSError as e:
        raise DiffgatesError(f"cannot write {out}: {e.strerror or e}.") from None
