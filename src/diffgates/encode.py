"""Input encoders: real features -> bits, fitted on training data and saved with the model.

A thermometer code with ``n_bits`` thresholds per feature: bit ``f * n_bits + k`` is
``x[f] > thresholds_[f, k]``. The comparison is done in float32 everywhere (model, executor, C),
so every backend sees exactly the same bits.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .errors import DiffgatesError
from .features import check_features

STRATEGIES = ("uniform", "quantile", "fixed")


class ThermometerEncoder(nn.Module):
    """Thermometer code with ``n_bits`` thresholds per feature.

    ``strategy``: ``"uniform"`` (evenly spaced between each feature's min and max),
    ``"quantile"`` (equal-frequency cut points of each feature) or ``"fixed"`` (the given
    ``thresholds`` for every feature). ``fit`` learns ``thresholds_`` of shape (features, n_bits).
    """

    def __init__(self, n_bits: int = 3, strategy: str = "uniform", thresholds=None):
        super().__init__()
        if strategy not in STRATEGIES:
            raise DiffgatesError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}.")
        if strategy == "fixed":
            if thresholds is None:
                raise DiffgatesError("strategy 'fixed' needs a list of thresholds.")
            n_bits = len(thresholds)
            if not np.isfinite(np.asarray(thresholds, dtype=np.float64)).all():
                raise DiffgatesError(f"fixed thresholds must be finite numbers, got {list(thresholds)}.")
        if n_bits < 1:
            raise DiffgatesError(f"n_bits must be at least 1, got {n_bits}.")
        self.n_bits = n_bits
        self.strategy = strategy
        self.thresholds = None if thresholds is None else [float(t) for t in thresholds]
        self.register_buffer("thresholds_", torch.empty(0, n_bits))

    @property
    def fitted(self) -> bool:
        return self.thresholds_.shape[0] > 0

    @property
    def n_features(self) -> int:
        return self.thresholds_.shape[0]

    @property
    def out_features(self) -> int:
        return self.n_features * self.n_bits

    def fit(self, x) -> ThermometerEncoder:
        x = np.asarray(x, dtype=np.float64)
        check_features(x, None)
        q = np.arange(1, self.n_bits + 1) / (self.n_bits + 1)
        if self.strategy == "fixed":
            t = np.tile(np.asarray(self.thresholds), (x.shape[1], 1))
        elif self.strategy == "uniform":
            lo, hi = x.min(0), x.max(0)
            t = lo[:, None] + (hi - lo)[:, None] * q[None, :]
        else:
            t = np.quantile(x, q, axis=0).T
        self.thresholds_ = torch.as_tensor(t, dtype=torch.float32)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, features) real (a tensor, or an array torch takes) -> (batch, features * n_bits)
        in {0., 1.}."""
        if not self.fitted:
            raise DiffgatesError("the encoder is not fitted; call fit(x_train) first.")
        check_features(x, self.n_features)
        bits = torch.as_tensor(x).to(torch.float32).unsqueeze(-1) > self.thresholds_
        return bits.reshape(len(bits), self.out_features).to(torch.float32)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "thresholds_"
        if key in state_dict:  # the fitted shape is only known once loaded
            self.thresholds_ = torch.empty_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"n_bits={self.n_bits}, strategy={self.strategy!r}, n_features={self.n_features}"
