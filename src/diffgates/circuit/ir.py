"""The Circuit: a discrete logic network as flat arrays, the one IR every backend reads.

Signals are numbered: ``0 .. n_inputs-1`` are input bits, ``n_inputs + i`` is gate ``i``.
Gates are in topological order (each reads only lower-numbered signals).

- input bit ``j`` is ``x[in_feature[j]] > in_threshold[j]`` (float32 compare), the encoder;
- gate ``i`` computes ``ops[i]`` (standard 16-gate numbering) of signals ``a[i]`` and ``b[i]``;
- ``outputs`` lists the signals read by GroupSum, class by class in equal blocks;
- ``layer[i]`` is the model layer gate ``i`` came from (for reports only).

File format (``.npz``, no pickles): the arrays above plus ``format``, ``version``,
``n_features``, ``n_classes`` and ``tau``.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from ..errors import DiffgatesError

FORMAT = "diffgates-circuit"
VERSION = 1

_ARRAYS = {
    "in_feature": np.int32,
    "in_threshold": np.float32,
    "ops": np.uint8,
    "a": np.int32,
    "b": np.int32,
    "outputs": np.int32,
    "layer": np.int32,
}


@dataclass
class Circuit:
    n_features: int
    in_feature: np.ndarray
    in_threshold: np.ndarray
    ops: np.ndarray
    a: np.ndarray
    b: np.ndarray
    outputs: np.ndarray
    layer: np.ndarray
    n_classes: int
    tau: float = 1.0

    def __post_init__(self):
        for name, dtype in _ARRAYS.items():
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=dtype))

    @property
    def n_inputs(self) -> int:
        return len(self.in_feature)

    @property
    def n_gates(self) -> int:
        return len(self.ops)

    @property
    def n_signals(self) -> int:
        return self.n_inputs + self.n_gates

    @property
    def group_size(self) -> int:
        return len(self.outputs) // self.n_classes

    @classmethod
    def from_model(cls, model) -> Circuit:
        """Extract the discrete network of a trained :class:`~diffgates.nn.LogicNet`."""
        from .extract import from_model

        return from_model(model)

    def on_bits(self) -> Circuit:
        """The same network reading its encoded input bits directly: feature j is input bit j
        (threshold 0.5). After optimisation, ``in_feature`` then names the bit columns kept."""
        n = self.n_inputs
        return self.replace(n_features=n, in_feature=np.arange(n), in_threshold=np.full(n, 0.5, np.float32))

    def replace(self, **changes) -> Circuit:
        return replace(self, **changes)

    def validate(self) -> Circuit:
        """Check the structural invariants; raise DiffgatesError naming the first one broken."""
        n_in, n = self.n_inputs, self.n_gates
        checks = [
            (len(self.in_threshold) == n_in, "in_threshold must have one entry per input bit"),
            (len(self.a) == n and len(self.b) == n and len(self.layer) == n, "gate arrays differ in length"),
            (bool(np.all(self.ops < 16)), "gate ops must be in 0..15"),
            (
                n_in == 0 or (self.in_feature.min() >= 0 and self.in_feature.max() < self.n_features),
                "input bits read features out of range",
            ),
            (bool(np.all((self.a >= 0) & (self.b >= 0))), "gate inputs must be non-negative"),
            (
                bool(np.all(self.a < n_in + np.arange(n))) and bool(np.all(self.b < n_in + np.arange(n))),
                "gates must only read earlier signals (topological order)",
            ),
            (
                self.n_classes >= 1 and len(self.outputs) % self.n_classes == 0,
                "outputs must split evenly into n_classes groups",
            ),
            (
                len(self.outputs) == 0 or (self.outputs.min() >= 0 and self.outputs.max() < n_in + n),
                "outputs reference unknown signals",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise DiffgatesError(f"invalid circuit: {message}.")
        return self

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        np.savez_compressed(
            tmp,
            format=np.array(FORMAT),
            version=np.array(VERSION),
            n_features=np.array(self.n_features),
            n_classes=np.array(self.n_classes),
            tau=np.array(self.tau),
            **arrays,
        )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Circuit:
        path = Path(path)
        if not path.is_file():
            raise DiffgatesError(f"no circuit file at {path}.")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise DiffgatesError(f"{path} is not a readable circuit file (corrupt or truncated): {e}.") from e
        if str(data.get("format", "")) != FORMAT:
            raise DiffgatesError(f"{path} is not a diffgates circuit file.")
        if int(data["version"]) > VERSION:
            raise DiffgatesError(f"{path} has circuit format version {int(data['version'])}; upgrade diffgates.")
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise DiffgatesError(f"{path} lacks circuit fields {', '.join(missing)}.")
        return cls(
            n_features=int(data["n_features"]),
            n_classes=int(data["n_classes"]),
            tau=float(data["tau"]),
            **{name: data[name] for name in _ARRAYS},
        ).validate()

    def layer_counts(self) -> dict[int, int]:
        ids, counts = np.unique(self.layer, return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts)}

    def op_histogram(self) -> dict[int, dict[int, int]]:
        """Per layer: gate id -> count."""
        out: dict[int, dict[int, int]] = {}
        for layer in np.unique(self.layer):
            ops, counts = np.unique(self.ops[self.layer == layer], return_counts=True)
            out[int(layer)] = {int(o): int(c) for o, c in zip(ops, counts)}
        return out
