"""GroupSum: class scores as counts of 1s in each class's block of output bits."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import DiffgatesError


class _GroupSumFn(torch.autograd.Function):
    """Block sums (features, batch) -> (batch, k) / tau. Written out because autograd's own
    backward of ``sum(1).T`` broadcasts a transposed gradient, a strided copy that cost more
    than a whole logic layer; here the broadcast reads contiguous rows."""

    @staticmethod
    def forward(ctx, x, k, tau):
        ctx.shape, ctx.tau, ctx.dtype = x.shape, tau, x.dtype
        total = torch.promote_types(x.dtype, torch.float32)  # bfloat16 bits are counted in float32
        return (x.reshape(k, -1, x.shape[-1]).sum(1, dtype=total).T / tau).contiguous()

    @staticmethod
    def backward(ctx, g):
        n, batch = ctx.shape
        rows = (g.T / ctx.tau).to(ctx.dtype).contiguous()  # (k, batch)
        return rows[:, None, :].expand(rows.shape[0], n // rows.shape[0], batch).reshape(n, batch), None, None


class GroupSum(nn.Module):
    """Split the (features, batch) input into ``k`` equal blocks; score = block sum / ``tau``."""

    def __init__(self, k: int, tau: float = 1.0):
        super().__init__()
        if int(k) != k or k < 1:
            raise DiffgatesError(f"GroupSum needs a whole number of classes k >= 1, got {k!r}.")
        if not math.isfinite(tau) or tau <= 0:
            raise DiffgatesError(f"GroupSum's tau divides the counts and must be above 0, got {tau}.")
        self.k = int(k)
        self.tau = float(tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] % self.k:
            raise DiffgatesError(f"GroupSum({self.k}) needs a multiple of {self.k} inputs, got {x.shape[0]}.")
        return _GroupSumFn.apply(x, self.k, self.tau)

    def extra_repr(self) -> str:
        return f"k={self.k}, tau={self.tau}"
