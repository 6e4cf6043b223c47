"""Reading and writing image files (Pillow) for ``diffgates upscale`` and ``diffgates denoise``:
8-bit greyscale (mode L) and RGB images, each RGB channel through the network on its own; bilevel
and palette images are read as their greyscale or colours, and an alpha channel is kept beside
the colour channels (scaled like the image, not through the network)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .. import native
from ..errors import DiffgatesError
from ..outdir import check_output_file
from ..paths import replacing

MODES = ("L", "RGB")


@contextmanager
def opened(path: str | os.PathLike):
    """An image file opened with Pillow (its pixels not yet read); what Pillow cannot read is one
    sentence naming the file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DiffgatesError(f"{path} is not a file.")
    try:
        with Image.open(path) as im:
            yield im
    except UnidentifiedImageError:
        raise DiffgatesError(f"{path} is not an image file that Pillow can read.") from None
    except Image.DecompressionBombError as e:
        raise DiffgatesError(f"{path} is too large to read safely ({e}).") from None
    except OSError as e:
        raise DiffgatesError(f"{path} could not be read as an image ({e}).") from None


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, str, np.ndarray | None]:
    """(channels (C, H, W) float32 in [0, 1] as 8-bit codes / 255, their Pillow mode (L or RGB),
    the alpha channel (H, W) uint8 or None) of an image file."""
    with opened(path) as im:
        im.load()
        if im.mode in ("P", "PA"):  # a palette: its colours, with its transparency as alpha
            im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
        elif im.mode == "1":
            im = im.convert("L")
        alpha = np.asarray(im.getchannel("A"), dtype=np.uint8) if im.mode in ("LA", "RGBA") else None
        if alpha is not None:
            im = im.convert(im.mode[:-1])
        if im.mode not in MODES:
            raise DiffgatesError(
                f"{path} has Pillow mode {im.mode}; diffgates reads 8-bit greyscale and RGB images (also "
                "bilevel, palette and with alpha), so convert it first (e.g. with Pillow's convert('RGB'))."
            )
        mode, pixels = im.mode, np.asarray(im, dtype=np.uint8)
    channels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return channels.astype(np.float32) / np.float32(255), mode, alpha


def scale_alpha(alpha: np.ndarray, s: int) -> np.ndarray:
    """An alpha channel (H, W) uint8 resized to (H * s, W * s), bicubic (Pillow)."""
    from PIL import Image

    h, w = alpha.shape
    return np.asarray(Image.fromarray(alpha).resize((w * s, h * s), Image.Resampling.BICUBIC), dtype=np.uint8)


def check_size(shape: tuple[int, ...], s: int, path) -> None:
    """Refuse an image whose output would not fit in memory (about 12 bytes per output value are
    held at once: the float image and one band's windows are far smaller)."""
    c, h, w = shape
    need, free = c * h * w * s * s * 12, native.available_memory()
    if need > free:
        raise DiffgatesError(
            f"{path} is {w} x {h}; its output ({w * s} x {h * s}) needs about {need / 2**30:.1f} GiB, more than "
            f"the {free / 2**30:.1f} GiB available."
        )


def write_image(
    path: str | os.PathLike, channels: np.ndarray, mode: str, overwrite: bool, alpha: np.ndarray | None = None
) -> None:
    """Save (C, H, W) values in [0, 1] as 8-bit ``mode`` (with ``alpha`` (H, W) uint8: LA or RGBA);
    a file already there needs ``overwrite`` and is replaced whole or not at all."""
    from PIL import Image

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt not in Image.SAVE:
        raise DiffgatesError(
            f"no image format that Pillow writes ends in {path.name!r}; name it .png (or .jpg, .bmp, .tif)."
        )
    check_output_file(path, overwrite)
    pixels = np.rint(np.clip(channels, 0, 1) * 255).astype(np.uint8)
    if alpha is not None:  # (H, W, 2) and (H, W, 4) arrays are LA and RGBA images
        pixels = np.concatenate([pixels, alpha[None]])
    image = Image.fromarray(pixels[0] if len(pixels) == 1 else pixels.transpose(1, 2, 0))
    with replacing(path) as tmp:
        try:
            image.save(tmp, format=fmt)
        except (ValueError, KeyError, OSError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else e
            raise DiffgatesError(f"cannot write {path} as {fmt} ({reason}).") from None
