"""Classifier datasets from folders of image files, one subfolder a class (the layout of
torchvision's ``ImageFolder``): ``FOLDER/train/CLASS/*`` and ``FOLDER/test/CLASS/*``, or
``FOLDER/CLASS/*`` with every :data:`HELD_OUT_EVERY`-th file of each class, in name order, held
out for testing. Classes are numbered in the order of their names; every image must have the
size and the colours (greyscale or RGB) of the others, and becomes 8-bit pixels scaled to
[0, 1], channel by channel, row by row, as the bundled image datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DiffgatesError

#: files of a folder held out for testing where it has no train/ and test/ folders: every
#: HELD_OUT_EVERY-th in name order (the last where there are fewer)
HELD_OUT_EVERY = 5

#: bytes of memory loading a folder holds for each value (channel of a pixel) of its images, at the
#: least: each image's float32 pixels as read, and their stacked features
BYTES_PER_VALUE = 8


def image_files(folder: Path) -> list[Path]:
    """The files of ``folder`` that Pillow reads by their extension, in name order (hidden ones
    left out); refuses a folder without any."""
    from PIL import Image

    Image.init()
    known = set(Image.registered_extensions())
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in known
    )
    if not files:
        raise DiffgatesError(f"{folder} holds no image files (PNG, JPEG, TIFF, ... that Pillow reads).")
    return files


def image_inputs(paths: list[str]) -> list[Path]:
    """Image files given on a command line, each folder among them replaced by its image files
    (:func:`image_files`, in name order)."""
    files = []
    for p in map(Path, paths):
        files += image_files(p) if p.is_dir() else [p]
    return files


def split_held_out(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """(to train on, to test on) of files in name order: every :data:`HELD_OUT_EVERY`-th held out
    for testing, the last where there are fewer."""
    held = set(range(HELD_OUT_EVERY - 1, len(files), HELD_OUT_EVERY)) or {len(files) - 1}
    return [f for i, f in enumerate(files) if i not in held], [f for i, f in enumerate(files) if i in held]


def class_folders(folder: Path) -> list[Path]:
    """The class subfolders of ``folder`` (hidden ones left out), in name order."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def has_train_and_test(folder: Path) -> bool:
    """Whether ``folder`` splits its data into ``train/`` and ``test/`` folders (False where it has
    neither); refuses one without the other."""
    split = [(folder / part).is_dir() for part in ("train", "test")]
    if split[0] != split[1]:
        have, lack = ("train", "test") if split[0] else ("test", "train")
        raise DiffgatesError(f"{folder} has a {have}/ folder but no {lack}/ folder; give it both, or neither.")
    return split[0]


def is_class_folder(path: str) -> bool:
    """Whether ``path`` is a folder laid out for classification: class folders (in its ``train/`` or
    ``test/`` where it has one) and no image files of its own (a folder of images is an image
    task's dataset)."""
    folder = Path(path)
    if not folder.is_dir():
        return False
    for part in ("train", "test"):
        if (folder / part).is_dir():
            return bool(class_folders(folder / part))
    return bool(class_folders(folder)) and not _has_images(folder)


def _has_images(folder: Path) -> bool:
    try:
        image_files(folder)
    except DiffgatesError:
        return False
    return True


def split_files(folder: Path) -> tuple[list[str], list[tuple[Path, int]], list[tuple[Path, int]]]:
    """(class names, (file, label) to train on, (file, label) to test on) of a class folder."""
    if has_train_and_test(folder):
        names = [p.name for p in class_folders(folder / "train")]
        test_names = [p.name for p in class_folders(folder / "test")]
        if names != test_names:
            odd = sorted(set(names) ^ set(test_names))
            raise DiffgatesError(
                f"{folder}/train and {folder}/test hold different classes ({', '.join(odd)} in one only); "
                "give both the same class folders."
            )
        train = [(f, k) for k, n in enumerate(names) for f in image_files(folder / "train" / n)]
        test = [(f, k) for k, n in enumerate(names) for f in image_files(folder / "test" / n)]
    else:
        names = [p.name for p in class_folders(folder)]
        train, test = [], []
        for k, name in enumerate(names):
            files = image_files(folder / name)
            if len(files) < 2:
                raise DiffgatesError(
                    f"class {name} of {folder} holds one image; each class needs two or more, to train on and to "
                    "test on (or train/ and test/ folders)."
                )
            own_train, own_test = split_held_out(files)
            train += [(f, k) for f in own_train]
            test += [(f, k) for f in own_test]
    if len(names) < 2:
        raise DiffgatesError(f"{folder} holds one class folder; a classifier needs two or more.")
    return names, train, test


def folder_image_shape(folder: Path) -> tuple[int, int, int]:
    """(channels, height, width) of a class folder's images, from the header of the first image of
    its first class (the first it trains on; only that class's folder is listed)."""
    root = folder / "train" if has_train_and_test(folder) else folder
    return _image_shape(image_files(class_folders(root)[0])[0])


def _image_shape(path: Path) -> tuple[int, int, int]:
    """(channels, height, width) diffgates reads from an image file, from its header."""
    from ..image.io import opened, shape_of

    with opened(path) as im:
        return shape_of(im, path)


def load_class_folder(folder: Path):
    """The :class:`~diffgates.data.Dataset` of a class folder; refuses images of another size or
    colours than the first, and images that would not fit in memory, before reading any pixels."""
    from .. import native
    from ..image.io import read_image
    from . import Dataset

    names, train, test = split_files(folder)
    shape = _image_shape(train[0][0])
    for f, _ in train + test:
        found = _image_shape(f)
        if found != shape:
            raise DiffgatesError(
                f"{f} is {_described(found)}, but {folder}'s images are {_described(shape)}; "
                "give images of one size and colours."
            )
    need, available = (len(train) + len(test)) * int(np.prod(shape)) * BYTES_PER_VALUE, native.available_memory()
    if need > available:
        raise DiffgatesError(
            f"the {len(train) + len(test)} images of {folder} need about {need / 2**30:.1f} GiB of memory, more "
            f"than the {available / 2**30:.1f} GiB available; use fewer or smaller images."
        )

    def read(files):
        x = np.stack([read_image(f)[0].reshape(-1) for f, _ in files])  # float32 8-bit codes / 255
        return x, np.array([k for _, k in files], dtype=np.int64)

    return Dataset(folder.name, *read(train), *read(test), tuple(names))


def _described(shape: tuple[int, int, int]) -> str:
    c, h, w = shape
    return f"{w} x {h} {'greyscale' if c == 1 else 'RGB'}"
