"""The Circuit: a discrete logic network as flat arrays, the one IR every backend reads.

Signals are numbered: ``0 .. n_inputs-1`` are input bits, ``n_inputs + i`` is gate ``i``.
Gates are in topological order (each reads only lower-numbered signals).

- input bit ``j`` is ``x[in_feature[j]] > in_threshold[j]`` (float32 compare), the encoder;
- gate ``i`` computes ``ops[i]`` (standard 16-gate numbering) of signals ``a[i]`` and ``b[i]``;
- ``outputs`` lists the signals read by GroupSum, class by class in equal blocks: a classifier's
  class counts, or (``argmax`` false) an image network's output values, whose argmax means nothing;
- ``layer[i]`` is the model layer gate ``i`` came from (for reports only).

File format (``.npz``, no pickles): the arrays above plus ``format``, ``version``,
``n_features``, ``n_classes``, ``tau`` and ``argmax`` (absent in older files: true).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from ..errors import NPZ_READ_ERRORS, DiffgatesError
from ..features import check_features

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
    argmax: bool = True  # the outputs are classes: backends also give the first maximum

    def __post_init__(self):
        """Arrays are checked before they are cast (a value out of the stored type's range is
        refused, not wrapped), then every structural invariant: see :meth:`validate`."""
        for name, dtype in _ARRAYS.items():
            setattr(self, name, _cast(name, getattr(self, name), dtype))
        self.n_features = _scalar("n_features", self.n_features, integer=True)
        self.n_classes = _scalar("n_classes", self.n_classes, integer=True)
        self.tau = _scalar("tau", self.tau, integer=False)
        flag = np.asarray(self.argmax)
        if flag.shape != () or flag.dtype.kind not in "biu" or int(flag) not in (0, 1):
            raise DiffgatesError(f"invalid circuit: argmax must be true or false, got {self.argmax!r}.")
        self.argmax = bool(flag)
        self.validate()

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
        checks = [  # in order, each evaluated only once those before it hold (lengths before elementwise ones)
            (lambda: self.n_features >= 1, "n_features must be at least 1"),
            (lambda: self.tau > 0, "tau must be positive"),
            (lambda: len(self.in_threshold) == n_in, "in_threshold must have one entry per input bit"),
            (lambda: bool(np.isfinite(self.in_threshold).all()), "input thresholds must be finite numbers"),
            (lambda: len(self.a) == n and len(self.b) == n and len(self.layer) == n, "gate arrays differ in length"),
            (lambda: bool(np.all(self.ops < 16)), "gate ops must be in 0..15"),
            (
                lambda: n_in == 0 or (self.in_feature.min() >= 0 and self.in_feature.max() < self.n_features),
                "input bits read features out of range",
            ),
            (lambda: bool(np.all((self.a >= 0) & (self.b >= 0))), "gate inputs must be non-negative"),
            (
                lambda: bool(np.all(self.a < n_in + np.arange(n))) and bool(np.all(self.b < n_in + np.arange(n))),
                "gates must only read earlier signals (topological order)",
            ),
            (
                lambda: self.n_classes >= 1 and len(self.outputs) % self.n_classes == 0,
                "outputs must split evenly into n_classes groups",
            ),
            (
                lambda: len(self.outputs) == 0 or (self.outputs.min() >= 0 and self.outputs.max() < n_in + n),
                "outputs reference unknown signals",
            ),
        ]
        for ok, message in checks:
            if not ok():
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
            argmax=np.array(self.argmax),
            **arrays,
        )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Circuit:
        path = Path(path)
        if not path.is_file():
            raise DiffgatesError(f"no circuit file at {path}.")
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":  # a zip archive's first entry (np.savez); a truncated one gets further
                raise DiffgatesError(f"{path} is not a diffgates circuit file (not an .npz archive).")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except NPZ_READ_ERRORS as e:
            raise DiffgatesError(f"{path} is not a readable circuit file (corrupt or truncated): {e}.") from e
        if str(data.get("format", "")) != FORMAT:
            raise DiffgatesError(f"{path} is not a diffgates circuit file.")
        if _scalar("version", data.get("version"), integer=True) > VERSION:
            raise DiffgatesError(f"{path} has circuit format version {int(data['version'])}; upgrade diffgates.")
        data.setdefault("argmax", np.array(True))  # written before outputs could be values
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise DiffgatesError(f"{path} lacks circuit fields {', '.join(missing)}.")
        try:
            return cls(**{f.name: data[f.name] for f in fields(cls)})
        except DiffgatesError as e:
            raise DiffgatesError(f"{path}: {e}") from None

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


def _cast(name: str, value, dtype) -> np.ndarray:
    """``value`` as a 1-d contiguous array of ``dtype``, refusing what the cast would change."""
    a = np.asarray(value)
    if a.ndim != 1 or a.dtype.kind not in "biuf":
        raise DiffgatesError(f"invalid circuit: {name} must be a 1-d numeric array, got {a.dtype} of shape {a.shape}.")
    if np.issubdtype(dtype, np.integer) and a.size:
        if a.dtype.kind == "f" and not (np.isfinite(a).all() and (a == np.round(a)).all()):
            raise DiffgatesError(f"invalid circuit: {name} must hold integers.")
        info = np.iinfo(dtype)
        if a.min() < info.min or a.max() > info.max:
            raise DiffgatesError(f"invalid circuit: {name} holds values outside {info.min}..{info.max}.")
    return np.ascontiguousarray(a, dtype=dtype)


def _scalar(name: str, value, integer: bool):
    """A number stored as a 0-d array or given as a Python number, checked for its kind."""
    a = np.asarray(value)
    ok = a.shape == () and a.dtype.kind in ("iu" if integer else "iuf") and np.isfinite(a)
    if not ok:
        kind = "an integer" if integer else "a finite number"
        raise DiffgatesError(f"invalid circuit: {name} must be {kind}, got {value!r}.")
    return int(a) if integer else float(a)


def encode_bits(circuit: Circuit, x: np.ndarray) -> np.ndarray:
    """Raw features (batch, n_features) -> input bits (batch, n_inputs) as uint8."""
    x = np.asarray(x)
    check_features(x, circuit.n_features)
    bits = np.empty((len(x), circuit.n_inputs), dtype=np.uint8)  # row-major, as the executor reads it
    for i in range(0, len(x), 4096):  # float32 copies of a few thousand rows stay in cache
        rows = np.take(x[i : i + 4096].astype(np.float32, copy=False), circuit.in_feature, axis=1)
        np.greater(rows, circuit.in_threshold, out=bits[i : i + 4096].view(bool))
    return bits
