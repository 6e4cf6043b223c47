"""Running an image network over whole images, and the measures and classical baselines it is
compared with.

A network reads one pixel's window and writes that pixel's output block; :func:`reconstruct`
slides it over every pixel, a band of rows at a time, so an image of any size runs in bounded
memory. An output value is the count of ones in its group of output gates divided by the group
size: k gates give k + 1 levels in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..circuit import program
from ..circuit.execute import predict_counts
from ..circuit.ir import Circuit
from .data import assemble, windows

#: a predictor maps windows (n, patch * patch) to counts (n, outputs)
Predictor = Callable[[np.ndarray], np.ndarray]


def circuit_predictor(circuit: Circuit, threads: int | None = None) -> Predictor:
    """Counts from the compiled bit-sliced executor (the numpy oracle without a C compiler)."""
    if not program.available():
        return lambda x: predict_counts(circuit, x, engine="numpy")
    ex = program.Executor(circuit, threads=threads)
    return lambda x: ex.counts(x).astype(np.int64)


def values(counts: np.ndarray, group: int, span: float = 1.0) -> np.ndarray:
    """Output values of counts out of ``group``: count / group, through :func:`stretch`."""
    return stretch(counts.astype(np.float32) / np.float32(group), span)


def stretch(v: np.ndarray, span: float) -> np.ndarray:
    """Values in [0, 1] stretched by ``span`` about 0.5 and clipped to [0, 1] where ``span`` is
    above 1 (``--output-span``); elementwise, so it applies to whole images as to counts."""
    return v if span == 1 else np.clip((v - np.float32(0.5)) * np.float32(span) + np.float32(0.5), 0, 1)


def reconstruct(
    predict: Predictor, img: np.ndarray, patch: int, s: int, group: int, rows: int = 0, span: float = 1.0
) -> np.ndarray:
    """The network slid over ``img`` (H, W): the (H * s, W * s) output of :func:`values`.
    ``rows``: input rows per band (default: about a million windows a band)."""
    h, w = img.shape
    rows = rows or max(1, 1_000_000 // max(1, w))
    r = patch // 2
    out = np.empty((h * s, w * s), dtype=np.float32)
    for top in range(0, h, rows):
        bottom = min(h, top + rows)
        # the band with the rows its windows reach, edges repeated as for the whole image
        lo, hi = max(0, top - r), min(h, bottom + r)
        band = np.pad(img[lo:hi], ((r - (top - lo), r - (hi - bottom)), (0, 0)), mode="edge")
        x = windows(band, patch).reshape(bottom - top + 2 * r, w, -1)[r : r + bottom - top].reshape(-1, patch * patch)
        counts = predict(np.ascontiguousarray(x))
        out[top * s : bottom * s] = assemble(values(counts, group, span), bottom - top, w, s)
    return out


def psnr(truth: np.ndarray, img: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (scikit-image's definition; equal
    images: infinity, without numpy's warning of a division by zero)."""
    from skimage.metrics import peak_signal_noise_ratio

    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(truth, img, data_range=1.0))


def ssim(truth: np.ndarray, img: np.ndarray) -> float:
    """Structural similarity for images in [0, 1] (scikit-image's, 7 x 7 windows, smaller images
    with the largest odd window that fits)."""
    from skimage.metrics import structural_similarity

    side = min(truth.shape)
    win = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(truth, img, data_range=1.0, win_size=win))


def upscale_classic(img: np.ndarray, s: int, method: str) -> np.ndarray:
    """Pillow's nearest, bilinear or bicubic resize of a [0, 1] image by ``s``, clipped to [0, 1]."""
    from PIL import Image

    resample = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[method]
    big = Image.fromarray(img.astype(np.float32)).resize((img.shape[1] * s, img.shape[0] * s), resample)
    return np.clip(np.asarray(big, dtype=np.float32), 0, 1)


def denoise_classic(img: np.ndarray, method: str) -> np.ndarray:
    """A classical denoiser: ``median`` (3 x 3) or ``gaussian:SIGMA`` (pixels)."""
    from scipy import ndimage

    if method == "median":
        return ndimage.median_filter(img, size=3, mode="nearest")
    return ndimage.gaussian_filter(img, sigma=float(method.split(":")[1]), mode="nearest")
