"""Image augmentation on encoded batches: random crop after zero padding, horizontal flip.

It works on the encoder's bits (batch, pixels * bits) viewed as (batch, channels, height, width,
bits), so the dataset is encoded once. For thresholds shared by all pixels (the image presets'
``fixed`` encoder) this is exactly augmenting the pixels and then encoding, with padding pixels
below every threshold (black). Randomness comes from torch's global generator, which a resumed
run restores.

Every augmented image is one of a finite set of *variants* (a crop offset and flipped or not),
numbered by :func:`variant`; a teacher scores each variant of the training set once, so a student
learns the teacher's scores of exactly the image it sees.
"""

from __future__ import annotations

import torch


def n_variants(crop: int, flip: float) -> int:
    return (2 * crop + 1) ** 2 * (2 if flip else 1)


def variant(dy: torch.Tensor, dx: torch.Tensor, flipped: torch.Tensor, crop: int, flip: float) -> torch.Tensor:
    """Number of each image's variant in ``range(n_variants(crop, flip))``."""
    v = dy * (2 * crop + 1) + dx
    return v * 2 + flipped.long() if flip else v


def draw(n: int, crop: int, flip: float, device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random (dy, dx, flipped) of ``n`` images: crop offsets in [0, 2 * crop], flips with probability ``flip``."""
    dy, dx = torch.randint(0, 2 * crop + 1, (2, n), device=device) if crop else torch.zeros(2, n, dtype=torch.long)
    flipped = torch.rand(n, device=device) < flip if flip else torch.zeros(n, dtype=torch.bool)
    return dy.to(device), dx.to(device), flipped.to(device)


def apply(x: torch.Tensor, image_shape, n_bits: int, crop: int, dy, dx, flipped) -> torch.Tensor:
    """Crop every image of ``x`` (batch, pixels * n_bits) at its offset after zero padding by
    ``crop``, then mirror the flipped ones."""
    c, h, w = image_shape
    n = x.shape[0]
    x = x.reshape(n, c, h, w, n_bits)
    if crop:
        padded = x.new_zeros(n, c, h + 2 * crop, w + 2 * crop, n_bits)
        padded[:, :, crop : crop + h, crop : crop + w] = x
        rows = (dy.view(n, 1) + torch.arange(h, device=x.device))[:, :, None]
        cols = (dx.view(n, 1) + torch.arange(w, device=x.device))[:, None, :]
        x = padded[torch.arange(n, device=x.device)[:, None, None], :, rows, cols]  # (n, h, w, c, bits)
        x = x.permute(0, 3, 1, 2, 4)
    if flipped.any():
        x = torch.where(flipped.view(n, 1, 1, 1, 1), x.flip(3), x)
    return x.reshape(n, -1)


def augment_bits(
    bits: torch.Tensor, image_shape, n_bits: int, crop: int = 0, flip: float = 0.0, with_variant: bool = False
):
    """Randomly cropped and flipped ``bits``; with ``with_variant`` also each image's :func:`variant`."""
    n = bits.shape[0]
    dy, dx, flipped = draw(n, crop, flip, bits.device)
    out = apply(bits, image_shape, n_bits, crop, dy, dx, flipped) if crop or flip else bits
    return (out, variant(dy, dx, flipped, crop, flip)) if with_variant else out


def variants(x: torch.Tensor, image_shape, crop: int, flip: float):
    """Yield (variant number, every image of raw ``x`` (batch, pixels) in that variant)."""
    n, side = x.shape[0], 2 * crop + 1
    for v in range(n_variants(crop, flip)):
        pos, f = divmod(v, 2) if flip else (v, 0)
        dy, dx = torch.full((n,), pos // side), torch.full((n,), pos % side)
        yield v, apply(x, image_shape, 1, crop, dy, dx, torch.full((n,), bool(f)))
