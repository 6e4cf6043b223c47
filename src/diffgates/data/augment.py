"""Image augmentation on encoded batches: random crop after zero padding, horizontal flip.

It works on the encoder's bits (batch, pixels * bits) viewed as (batch, channels, height, width,
bits), so the dataset is encoded once. For thresholds shared by all pixels (the image presets'
``fixed`` encoder) this is exactly augmenting the pixels and then encoding, with padding pixels
below every threshold (black). Randomness comes from torch's global generator, which a resumed
run restores.
"""

from __future__ import annotations

import torch


def augment_bits(bits: torch.Tensor, image_shape, n_bits: int, crop: int = 0, flip: float = 0.0) -> torch.Tensor:
    if not crop and not flip:
        return bits
    c, h, w = image_shape
    n = bits.shape[0]
    x = bits.reshape(n, c, h, w, n_bits)
    if crop:
        padded = x.new_zeros(n, c, h + 2 * crop, w + 2 * crop, n_bits)
        padded[:, :, crop : crop + h, crop : crop + w] = x
        dy, dx = torch.randint(0, 2 * crop + 1, (2, n, 1), device=x.device)
        rows = (dy + torch.arange(h, device=x.device))[:, :, None]
        cols = (dx + torch.arange(w, device=x.device))[:, None, :]
        x = padded[torch.arange(n, device=x.device)[:, None, None], :, rows, cols]  # (n, h, w, c, bits)
        x = x.permute(0, 3, 1, 2, 4)
    if flip:
        mask = torch.rand(n, device=x.device) < flip
        x = torch.where(mask.view(n, 1, 1, 1, 1), x.flip(3), x)
    return x.reshape(n, -1)
