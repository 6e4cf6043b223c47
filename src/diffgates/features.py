"""The one check every entry point applies to raw features (model, executor, encoder)."""

from __future__ import annotations

import numpy as np

from .errors import DiffgatesError

NONFINITE = "input contains NaN or infinite values; clean or impute them first."


def check_features(x, n_features: int | None, finite: bool = True) -> None:
    """Raise a clear error for inputs that no encoder can take. ``finite=False`` leaves out the
    check for NaN and infinite values, for a caller whose kernel checks every value as it reads it
    (and raises :data:`NONFINITE` itself)."""
    shape = tuple(x.shape)
    if len(shape) != 2:
        raise DiffgatesError(f"expected a 2-d array (samples, features), got shape {shape}.")
    if n_features is not None and shape[1] != n_features:
        raise DiffgatesError(f"expected {n_features} features per sample, got {shape[1]}.")
    if isinstance(x, np.ndarray) and x.dtype.kind in "biu":  # integers are always finite
        return
    if isinstance(x, np.ndarray) and x.dtype.kind != "f":
        raise DiffgatesError(f"expected numbers as features, got an array of {x.dtype}.")
    if not finite:
        return
    ok = x.isfinite().all() if hasattr(x, "isfinite") else np.isfinite(x).all()  # a torch tensor, or numpy
    if not bool(ok):
        raise DiffgatesError(NONFINITE)
