"""Logic-layer kernels: a choice of engine behind one function per layer kind (``logic_dense``,
``logic_tree_conv``), as ``torch.nn.functional`` is to ``torch.nn``.

- ``torch``: compact 4-term form in torch ops (any device; autograd backward).
- ``cpu``: fused C kernels with OpenMP (forward + backward), built on first use; CPU tensors only.
- ``auto``: ``cpu`` where it applies and builds, else ``torch``.
- ``reference``: the 16-term oracle (layers call it directly; slow, for tests and benchmarks).

The oracle in :mod:`diffgates.kernels.reference` is what both are tested against.
"""

from __future__ import annotations

import torch

from .. import native
from ..errors import DiffgatesError
from .torch_ops import dense_torch, or_pool2d, tree_torch

ENGINES = ("auto", "torch", "cpu", "reference")
CPU_DTYPES = (torch.float32, torch.float64)  # what every C kernel takes
DENSE_CPU_DTYPES = (*CPU_DTYPES, torch.bfloat16)  # the dense kernels also store in bfloat16


def set_threads(n: int | None) -> None:
    """``--threads``: the thread count of torch, the fused kernels (which follow torch's) and the
    circuit executor; None leaves torch's choice and every core."""
    if n is not None:
        torch.set_num_threads(n)
    native.set_threads(n)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a layer computes in (and keeps its coefficients in) for activations of ``dtype``:
    bfloat16 activations are widened to float32 for the arithmetic, on every engine."""
    return torch.float32 if dtype == torch.bfloat16 else dtype


def resolve_engine(engine: str, x: torch.Tensor, dtypes: tuple = CPU_DTYPES) -> str:
    """The engine that runs for ``engine`` on tensors like ``x``; the C kernels take ``dtypes``."""
    if engine not in ENGINES:
        raise DiffgatesError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}.")
    if engine == "auto":
        if x.device.type == "cpu" and x.dtype in dtypes:
            from . import cpu

            if cpu.available():
                return "cpu"
        return "torch"
    if engine == "cpu" and x.device.type != "cpu":
        raise DiffgatesError("engine 'cpu' needs CPU tensors; use engine 'torch' or 'auto' on GPU.")
    if engine == "cpu" and x.dtype not in dtypes:
        raise DiffgatesError(f"engine 'cpu' does not take {x.dtype} here; use engine 'torch' or 'auto'.")
    return engine


def logic_dense(
    x: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor, c: torch.Tensor, engine: str = "auto"
) -> torch.Tensor:
    """Relaxed dense logic layer on feature-major ``x`` (in, batch) with coefficients ``c`` (out, 4)."""
    engine = resolve_engine(engine, x, DENSE_CPU_DTYPES)
    if engine == "cpu":
        from . import cpu

        return cpu.dense(x, ia, ib, c)
    return dense_torch(x, ia, ib, c).to(x.dtype)  # bfloat16 in: computed in float32, stored back


def logic_tree_conv(
    x: torch.Tensor,
    rows: torch.Tensor,
    c: torch.Tensor,
    shape: tuple[int, int, int],
    pool: int = 1,
    pool_padding: int = 0,
    engine: str = "auto",
) -> torch.Tensor:
    """Relaxed logic-tree convolution with OR pooling on feature-major ``x`` (in, batch): the trees'
    leaves read input rows ``rows`` (kernels, positions, leaves; -1 reads 0) of a map of ``shape``
    (kernels, height, width), coefficients ``c`` (kernels, gates, 4); then ``pool`` x ``pool`` OR
    pooling (max) with ``pool_padding``. Returns (kernels * pooled positions, batch)."""
    if resolve_engine(engine, x) == "cpu":
        from . import cpu

        return cpu.tree_conv(x, cpu.pool_slots(rows, shape, pool, pool_padding), c)
    y = tree_torch(x, rows, c)
    return y if pool == 1 else or_pool2d(y, shape, pool, pool_padding)
