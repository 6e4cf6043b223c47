"""GroupSum: class scores as counts of 1s in each class's block of output bits."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import DiffgatesError


class GroupSum(nn.Module):
    """Split the (features, batch) input into ``k`` equal blocks; score = block sum / ``tau``."""

    def __init__(self, k: int, tau: float = 1.0):
        super().__init__()
        self.k = k
        self.tau = float(tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] % self.k:
            raise DiffgatesError(f"GroupSum({self.k}) needs a multiple of {self.k} inputs, got {x.shape[0]}.")
        return x.reshape(self.k, -1, x.shape[-1]).sum(1).T / self.tau

    def extra_repr(self) -> str:
        return f"k={self.k}, tau={self.tau}"
