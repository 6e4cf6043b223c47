"""The compact logic layer in plain torch ops: runs on any device, autograd does the backward.

out = c0 + c1 a + c2 b + c3 ab, with a and b gathered as rows of the feature-major input.
"""

from __future__ import annotations

import torch


def dense_torch(x: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    a, b = x[ia], x[ib]
    c0, c1, c2, c3 = (c[:, k : k + 1] for k in range(4))
    return torch.addcmul(c0 + c1 * a, b, c2 + c3 * a)


def tree_torch(x: torch.Tensor, idx: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Logic-tree convolution, unpooled, in torch ops: ``idx`` (kernels, positions, leaves), -1 reads 0;
    ``c`` (kernels, gates, 4). Returns (kernels * positions, batch)."""
    k, n_pos, n_leaves = idx.shape
    padded = torch.cat([x, x.new_zeros(1, x.shape[1])])
    nodes = list(padded[torch.where(idx < 0, x.shape[0], idx)].unbind(2))
    for g in range(n_leaves - 1):
        a, b = nodes[2 * g], nodes[2 * g + 1]
        c0, c1, c2, c3 = (c[:, g, i].view(k, 1, 1) for i in range(4))
        nodes.append(torch.addcmul(c0 + c1 * a, b, c2 + c3 * a))
    return nodes[-1].reshape(k * n_pos, -1)


def pool_windows(t: torch.Tensor, size: int, padding: int, fill) -> torch.Tensor:
    """The ``size`` x ``size`` windows (stride ``size``) of maps ``t`` (c, h, w, ...), as
    (c, windows, size * size, ...) in row-major window and slot order; cells outside a map hold ``fill``."""
    c, h, w, *rest = t.shape
    ho, wo = (h + 2 * padding - size) // size + 1, (w + 2 * padding - size) // size + 1
    grid = t.new_full((c, ho * size, wo * size, *rest), fill)
    top, left = min(h, ho * size - padding), min(w, wo * size - padding)
    grid[:, padding : padding + top, padding : padding + left] = t[:, :top, :left]
    return grid.view(c, ho, size, wo, size, *rest).transpose(2, 3).reshape(c, ho * wo, size * size, *rest)


def or_pool2d(x: torch.Tensor, shape: tuple[int, int, int], size: int, padding: int = 0) -> torch.Tensor:
    """Relaxed OR pooling: max over each ``size`` x ``size`` window (stride ``size``) of feature-major
    ``x`` (c*h*w, batch). Windows reaching outside the map see 0; the gradient flows to the first
    maximum only (``max`` along a dimension, unlike ``amax``, which splits it between ties)."""
    batch = x.shape[1]
    windows = pool_windows(x.view(*shape, batch), size, padding, 0.0)
    return windows.max(dim=2).values.reshape(-1, batch)
