"""Reading and writing image files (Pillow) for ``diffgates upscale`` and ``diffgates denoise``:
8-bit greyscale (mode L) and RGB images, each RGB channel through the network on its own; bilevel
and palette images are read as their greyscale or colours, and an alpha channel is kept beside
the colour channels (scaled like the image, not through the network). Animations (GIF, APNG,
WebP, multi-page TIFF) go through frame by frame and are written back as animations with their
frames' durations and loop count."""

from __future__ import annotations

import os
import struct
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .. import native
from ..errors import DiffgatesError
from ..outdir import check_output_file
from ..paths import replacing

#: the Pillow modes diffgates reads: 8-bit greyscale and RGB, also bilevel, palette and with alpha
MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA")
#: what Pillow's decoders raise on a damaged file (besides OSError: SyntaxError for a broken PNG
#: chunk, IndexError for a GIF's, TypeError for a TIFF without dimensions, struct.error, ...)
CORRUPT = (OSError, SyntaxError, ValueError, IndexError, TypeError, KeyError, EOFError, ZeroDivisionError, struct.error)


@contextmanager
def opened(path: str | os.PathLike):
    """An image file opened with Pillow (its pixels not yet read); what Pillow cannot read is one
    sentence naming the file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DiffgatesError(f"{path} is not a file.")
    try:
        with warnings.catch_warnings():  # Pillow's warnings (corrupt metadata, large images) are not ours to print
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                yield im
    except UnidentifiedImageError:
        raise DiffgatesError(f"{path} is not an image file that Pillow can read.") from None
    except Image.DecompressionBombError as e:
        raise DiffgatesError(f"{path} is too large to read safely ({e}).") from None
    except CORRUPT as e:
        raise DiffgatesError(f"{path} could not be read as an image ({type(e).__name__}: {e}).") from None


def shape_of(im, path: str | os.PathLike) -> tuple[int, int, int]:
    """(channels, height, width) diffgates reads from the image file ``path`` Pillow has open, from
    its header (alpha left out; a palette counts as colour); a mode it does not read is refused."""
    _check_mode(im.mode, path)
    channels = 1 if im.mode in ("1", "L", "LA") else 3
    return channels, im.size[1], im.size[0]


def _check_mode(mode: str, path: str | os.PathLike) -> None:
    if mode not in MODES:
        deep = mode in ("I", "F") or mode.startswith("I;16")  # 16-bit, 32-bit integer or float grey
        fix = (
            "scale it to 8 bits first (Pillow's convert('L') clips such values instead of scaling them)"
            if deep
            else "convert it first (e.g. with Pillow's convert('RGB'))"
        )
        raise DiffgatesError(
            f"{path} has Pillow mode {mode}; diffgates reads 8-bit greyscale and RGB images (also "
            f"bilevel, palette and with alpha), so {fix}."
        )


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, str, np.ndarray | None]:
    """(channels (C, H, W) float32 in [0, 1] as 8-bit codes / 255, their Pillow mode (L or RGB),
    the alpha channel (H, W) uint8 or None) of an image file of one frame (an animation is refused:
    :func:`read_frames` reads those)."""
    with opened(path) as im:
        n = getattr(im, "n_frames", 1)
        if n > 1:
            raise DiffgatesError(
                f"{path} holds {n} frames (an animation); one image a file is read here (diffgates upscale and "
                "denoise take every frame)."
            )
        pixels, mode, alpha = _pixels(im, path)
    return as_values(pixels), mode, alpha


def read_frames(path: str | os.PathLike) -> tuple[list[tuple[np.ndarray, np.ndarray | None]], str, dict]:
    """Every frame of an image file (one for a still image; GIF, APNG, WebP and TIFF can hold
    more) as (pixels (C, H, W) uint8, alpha (H, W) uint8 or None), in one Pillow mode (L, or RGB
    where any frame is RGB, unless its colours are a palette's greys; every frame with alpha where
    one has it), and the timing that :func:`write_frames` gives the output (each frame's duration
    in ms, the loop count)."""
    with opened(path) as im:
        frames, durations, palettes = [], [], []
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            palettes.append(im.mode in ("P", "PA") or im.format == "GIF")  # a GIF's later frames come as RGB
            frames.append(_pixels(im, path))
            durations.append(im.info.get("duration"))
        loop = im.info.get("loop")
    mode = "RGB" if any(m == "RGB" for _, m, _ in frames) else "L"
    grey = [len(p) == 1 or (p[0] == p[1]).all() and (p[0] == p[2]).all() for p, _, _ in frames]
    if mode == "RGB" and all(palettes) and all(grey):
        mode = "L"  # palettes of greys only: one channel through the network, a greyscale output
        frames = [(p[:1], "L", a) for p, _, a in frames]
    with_alpha = any(a is not None for _, _, a in frames)
    out = []
    for pixels, m, alpha in frames:
        if m != mode:  # a greyscale frame among colour ones: its grey in every channel
            pixels = np.repeat(pixels, 3, axis=0)
        if with_alpha and alpha is None:
            alpha = np.full(pixels.shape[1:], 255, dtype=np.uint8)
        out.append((pixels, alpha))
    timing = {"duration": [int(d) for d in durations]} if len(out) > 1 and all(map(_duration, durations)) else {}
    return out, mode, {**timing, **({"loop": int(loop)} if _duration(loop) else {})}


def _duration(value) -> bool:
    """Whether ``value`` is a frame duration (ms) or loop count the writers take (a damaged file's
    are left out)."""
    return isinstance(value, (int, float)) and 0 <= value <= 65535


def _pixels(im, path) -> tuple[np.ndarray, str, np.ndarray | None]:
    """(pixels (C, H, W) uint8, Pillow mode L or RGB, alpha (H, W) uint8 or None) of the frame
    Pillow has open."""
    _check_mode(im.mode, path)
    im.load()
    if im.mode in ("P", "PA"):  # a palette: its colours, with its transparency as alpha
        im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
    elif im.mode == "1":
        im = im.convert("L")
    alpha = np.asarray(im.getchannel("A"), dtype=np.uint8) if im.mode in ("LA", "RGBA") else None
    if alpha is not None:
        im = im.convert(im.mode[:-1])
    pixels = np.asarray(im, dtype=np.uint8)
    return (pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)), im.mode, alpha


def as_values(pixels: np.ndarray) -> np.ndarray:
    """8-bit pixels as float32 values in [0, 1] (codes / 255)."""
    return pixels.astype(np.float32) / np.float32(255)


def as_pixels(values: np.ndarray) -> np.ndarray:
    """Values (clipped to [0, 1]) as the nearest 8-bit pixels."""
    return np.rint(np.clip(values, 0, 1) * 255).astype(np.uint8)


def scale_alpha(alpha: np.ndarray, s: int) -> np.ndarray:
    """An alpha channel (H, W) uint8 resized to (H * s, W * s), bicubic (Pillow)."""
    from PIL import Image

    h, w = alpha.shape
    return np.asarray(Image.fromarray(alpha).resize((w * s, h * s), Image.Resampling.BICUBIC), dtype=np.uint8)


def check_size(shape: tuple[int, ...], s: int, path, frames: int = 1) -> None:
    """Refuse an image whose output would not fit in memory: about 12 bytes per output value of
    the frame being worked on (the float image and one band's windows are far smaller), and a byte
    per value of the other frames in and out."""
    c, h, w = shape
    need = c * h * w * s * s * 12 + (frames - 1) * c * h * w * (1 + s * s)
    free = native.available_memory()
    if need > free:
        many = f" in {frames} frames" if frames > 1 else ""
        raise DiffgatesError(
            f"{path} is {w} x {h}{many}; its output ({w * s} x {h * s}) needs about {need / 2**30:.1f} GiB, more "
            f"than the {free / 2**30:.1f} GiB available."
        )


def output_format(path: str | os.PathLike, frames: int = 1) -> str:
    """The Pillow format that writes ``path`` (by its extension), refused where there is none or
    where it cannot hold ``frames`` frames."""
    from PIL import Image

    path = Path(path)
    Image.init()
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt not in Image.SAVE:
        raise DiffgatesError(
            f"no image format that Pillow writes ends in {path.name!r}; name it .png (or .jpg, .bmp, .tif)."
        )
    if frames > 1 and fmt not in Image.SAVE_ALL:
        raise DiffgatesError(
            f"{path.name} would hold {frames} frames, which {fmt} cannot; name it .gif, .png (APNG), .webp or .tif."
        )
    return fmt


def write_frames(
    path: str | os.PathLike,
    frames: list[tuple[np.ndarray, np.ndarray | None]],
    mode: str,
    overwrite: bool,
    timing: dict | None = None,
) -> None:
    """Save frames of (pixels (C, H, W) uint8, alpha (H, W) uint8 or None) as 8-bit ``mode``
    (with alpha: LA or RGBA), several as an animation with ``timing`` (``duration``, ``loop``:
    :func:`read_frames`); a file already there needs ``overwrite`` and is replaced whole or not at
    all."""
    from PIL import Image

    path = Path(path)
    fmt = output_format(path, len(frames))
    check_output_file(path, overwrite)
    images = []
    for pixels, alpha in frames:
        if alpha is not None:  # (H, W, 2) and (H, W, 4) arrays are LA and RGBA images
            pixels = np.concatenate([pixels, alpha[None]])
        images.append(Image.fromarray(pixels[0] if len(pixels) == 1 else pixels.transpose(1, 2, 0)))
    more = {"save_all": True, "append_images": images[1:], **(timing or {})} if len(images) > 1 else {}
    with replacing(path) as tmp:
        try:
            images[0].save(tmp, format=fmt, **more)
        except (ValueError, KeyError, OSError, RuntimeError, OverflowError) as e:  # e.g. frames of unequal sizes
            reason = e.strerror if isinstance(e, OSError) and e.strerror else e
            raise DiffgatesError(f"cannot write {path} as {fmt} ({reason}).") from None
