"""Images for reconstruction tasks: the datasets as greyscale pictures in [0, 1], how a task
degrades them, and the windows a network reads and the blocks it writes.

- ``digits`` (8 x 8, values 0-16 scaled), ``mnist`` and ``fashion-mnist`` (28 x 28): their own
  train/test splits.
- ``photos``: the photographs bundled with scikit-image and scikit-learn, in greyscale (colour ones
  by ITU-R 601 luminance); a fixed split, :data:`PHOTOS_TRAIN` to train on random windows,
  :data:`PHOTOS_TEST` held out and tested whole.
- a folder of image files (any format Pillow reads; in greyscale as the photographs): its
  ``train/`` and ``test/`` folders where it has both, else every fifth file in name order held
  out for testing (:func:`folder_images`; ``data.folders.HELD_OUT_EVERY``).

Every degraded input is quantised to 8-bit codes (what a camera or a frame buffer holds), so the
hardware encoder compares bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import noise_spec
from ..data import IMAGE_SHAPES, NAMED, load_dataset
from ..data.folders import has_train_and_test, image_files, is_class_folder, split_held_out
from ..errors import DiffgatesError

PHOTOS_TRAIN = (
    "astronaut", "camera", "coins", "moon", "brick", "grass", "gravel", "text", "page", "cell",
    "immunohistochemistry", "hubble_deep_field",
)  # fmt: skip
PHOTOS_TEST = ("chelsea", "coffee", "rocket", "china", "flower")  # scikit-learn's two last


def load_images(name: str, data_dir: str | None = None, min_side: int = 1) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train, test) lists of float32 greyscale images in [0, 1]; a folder's images must be at
    least ``min_side`` pixels a side (super-resolution: its scale)."""
    if name == "photos":
        return [photo(p) for p in PHOTOS_TRAIN], [photo(p) for p in PHOTOS_TEST]
    if name not in NAMED and Path(name).is_dir():
        return folder_images(Path(name), min_side)
    if name not in ("digits", *IMAGE_SHAPES) or name == "cifar10":
        raise DiffgatesError(
            f"image tasks take --dataset digits, mnist, fashion-mnist, photos or a folder of images, got {name!r}."
        )
    ds = load_dataset(name, data_dir)
    side = 8 if name == "digits" else IMAGE_SHAPES[name][1]
    scale = 16.0 if name == "digits" else 1.0
    return tuple(
        list((x / np.float32(scale)).reshape(-1, side, side).astype(np.float32)) for x in (ds.x_train, ds.x_test)
    )


def photo(name: str) -> np.ndarray:
    """One bundled photograph, greyscale float32 in [0, 1]."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        rgb = load_sample_image(f"{name}.jpg")
    else:
        try:
            import skimage.data
        except ImportError:
            raise DiffgatesError("the photos need scikit-image: pip install 'diffgates[image]'.") from None
        rgb = getattr(skimage.data, name)()
    return to_grey(np.asarray(rgb))


def folder_images(folder: Path, min_side: int = 1) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train, test) greyscale images of a folder of image files: those of its ``train/`` and
    ``test/`` folders where it has both, else of its own files, every
    ``data.folders.HELD_OUT_EVERY``-th in name order held out for testing."""
    if is_class_folder(str(folder)):
        raise DiffgatesError(
            f"{folder} holds class folders, a classifier's dataset; image tasks take a folder of images (or its "
            "train/ and test/ folders of images)."
        )
    if has_train_and_test(folder):
        train, test = image_files(folder / "train"), image_files(folder / "test")
    else:
        files = image_files(folder)
        if len(files) < 2:
            raise DiffgatesError(
                f"{folder} holds one image; an image task needs two or more, to train on and to test on "
                "(or train/ and test/ folders)."
            )
        train, test = split_held_out(files)
    _check_sizes(folder, train + test, min_side)
    return _read_images(train), _read_images(test)


#: bytes of memory an image task holds for each pixel of its images, at the least (measured
#: beside the process's own: 22 for super-resolution, 37 for denoising)
BYTES_PER_PIXEL = 22


def _check_sizes(folder: Path, files: list[Path], min_side: int) -> None:
    """Refuse, before reading any pixels, an image of a mode diffgates does not read or smaller than
    ``min_side`` a side, and images that training could not hold in memory."""
    from .. import native
    from .io import opened, shape_of

    pixels = 0
    for f in files:
        with opened(f) as im:
            _, h, w = shape_of(im, f)
        pixels += w * h
        if min(w, h) < min_side:
            raise DiffgatesError(
                f"{f} is {w} x {h} pixels, smaller than the scale {min_side} on a side; move it out of {folder} "
                "or use a smaller --scale."
            )
    need, available = pixels * BYTES_PER_PIXEL, native.available_memory()
    if need > available:
        raise DiffgatesError(
            f"the {len(files)} images of {folder} hold {pixels / 1e6:.1f} megapixels, which training needs about "
            f"{need / 2**30:.1f} GiB of memory for, more than the {available / 2**30:.1f} GiB available; use fewer "
            "or smaller images."
        )


def _read_images(files: list[Path]) -> list[np.ndarray]:
    from .io import read_image

    images = []
    for f in files:
        channels = read_image(f)[0]  # (C, H, W): greyscale or RGB, alpha left out
        images.append(to_grey(channels[0] if len(channels) == 1 else channels.transpose(1, 2, 0)))
    return images


def to_grey(img: np.ndarray) -> np.ndarray:
    """uint8 greyscale or RGB(A) -> float32 luminance in [0, 1] (ITU-R 601 weights)."""
    x = img.astype(np.float32) / np.float32(255 if img.dtype == np.uint8 else 1)
    if x.ndim == 3:
        x = x[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(x, 0, 1).astype(np.float32)


def quantise(x: np.ndarray) -> np.ndarray:
    """To the nearest 8-bit code, as float32 code / 255."""
    return (np.rint(np.clip(x, 0, 1) * 255) / np.float32(255)).astype(np.float32)


def crop(img: np.ndarray, scale: int) -> np.ndarray:
    """The image cut to whole multiples of ``scale`` (from the bottom and right)."""
    h, w = img.shape[0] // scale * scale, img.shape[1] // scale * scale
    if not h or not w:
        raise DiffgatesError(f"an image of {img.shape[1]} x {img.shape[0]} is smaller than the scale {scale}.")
    return img[:h, :w]


def downscale(img: np.ndarray, scale: int) -> np.ndarray:
    """Area averaging over scale x scale blocks (``img`` cut to multiples first), in 8-bit codes."""
    hr = crop(img, scale)
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    return quantise(hr.reshape(h, scale, w, scale).mean((1, 3)))


def add_noise(img: np.ndarray, noise: str, rng: np.random.Generator) -> np.ndarray:
    """``img`` with noise (``gaussian:SIGMA`` or ``salt-pepper:FRACTION``), in 8-bit codes."""
    kind, amount = noise_spec(noise)
    if kind == "gaussian":
        return quantise(img + rng.normal(0, amount, img.shape).astype(np.float32))
    hit = rng.random(img.shape) < amount
    return quantise(np.where(hit, (rng.random(img.shape) < 0.5).astype(np.float32), img))


def pair(img: np.ndarray, task: str, scale: int, noise: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(network input, ground truth) of one image for ``task``."""
    if task == "superres":
        return downscale(img, scale), crop(img, scale)
    return add_noise(img, noise, rng), img


def factor(task: str, scale: int) -> int:
    """Output pixels per input pixel along each side."""
    return scale if task == "superres" else 1


def windows(img: np.ndarray, k: int) -> np.ndarray:
    """Every pixel's k x k neighbourhood, edges repeated: (H * W, k * k) float32, row-major."""
    r = k // 2
    padded = np.pad(img, r, mode="edge")
    view = np.lib.stride_tricks.sliding_window_view(padded, (k, k))
    return np.ascontiguousarray(view.reshape(img.shape[0] * img.shape[1], k * k), dtype=np.float32)


def blocks(img: np.ndarray, s: int) -> np.ndarray:
    """The s x s output block of every input pixel: (H/s * W/s, s * s), row-major in the block."""
    h, w = img.shape[0] // s, img.shape[1] // s
    return np.ascontiguousarray(img.reshape(h, s, w, s).transpose(0, 2, 1, 3).reshape(h * w, s * s))


def assemble(values: np.ndarray, h: int, w: int, s: int) -> np.ndarray:
    """The inverse of :func:`blocks`: (h * w, s * s) -> (h * s, w * s)."""
    return np.ascontiguousarray(values.reshape(h, w, s, s).transpose(0, 2, 1, 3).reshape(h * s, w * s))


def test_inputs(
    task: str, scale: int, noise: str, seed: int, dataset: str, data_dir: str | None = None, images: list | None = None
) -> list:
    """(input, truth) pairs of the test images (``images``, else the dataset's), degraded as
    training evaluates them."""
    test = images if images is not None else load_images(dataset, data_dir)[1]
    rng = np.random.default_rng(10_000 + seed)  # the test inputs do not depend on the training
    return [pair(img, task, scale, noise, rng) for img in test]


def test_windows(cfg, n: int) -> np.ndarray:
    """The first ``n`` windows of the test inputs of run options ``cfg``, image after image."""
    found, total = [], 0
    for lr, _ in test_inputs(cfg.task, cfg.scale, cfg.noise, cfg.seed, cfg.dataset, cfg.data_dir):
        found.append(windows(lr, cfg.patch))
        total += len(found[-1])
        if total >= n:
            break
    return np.concatenate(found)[:n]
