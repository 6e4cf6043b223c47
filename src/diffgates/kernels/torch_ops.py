"""The compact logic layer in plain torch ops: runs on any device, autograd does the backward.

out = c0 + c1 a + c2 b + c3 ab, with a and b gathered as rows of the feature-major input.
"""

from __future__ import annotations

import torch


def dense_torch(x: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    a, b = x[ia], x[ib]
    c0, c1, c2, c3 = (c[:, k : k + 1] for k in range(4))
    return torch.addcmul(c0 + c1 * a, b, c2 + c3 * a)
