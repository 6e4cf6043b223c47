"""Fused CPU kernels (C + OpenMP, built on first use) behind a torch.autograd.Function.

Forward saves nothing but references to its input and coefficients (the input is the previous
layer's output, alive anyway), so a layer costs one activation row per gate per sample.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from .. import native
from . import compute_dtype
from .torch_ops import pool_windows

_SOURCE = Path(__file__).with_name("logic_cpu.c")
_SUFFIX = {torch.float32: "f32", torch.float64: "f64", torch.bfloat16: "bf16"}


_REV_CACHE: dict[tuple, tuple] = {}


_DEFINES: tuple[str, ...] = ()  # the build's preprocessor definitions (tests set SCRATCH_FAILS)


def _lib() -> ctypes.CDLL:
    return native.load(_SOURCE, defines=_DEFINES)


def available() -> bool:
    return native.available(_SOURCE)


def _p(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


def _call(name: str, dtype: torch.dtype, *args) -> None:
    """Run kernel ``name`` for ``dtype`` with ``args`` and torch's thread count last: tensors go
    as pointers, None as NULL, Python ints as int64; ctypes values (``c_int``) pass as they are.
    Raises MemoryError when the kernel could not allocate its scratch buffers."""

    def arg(a):
        if isinstance(a, torch.Tensor):
            return _p(a)
        return ctypes.c_int64(a) if isinstance(a, int) else a

    kernel = getattr(_lib(), f"{name}_{_SUFFIX[dtype]}")
    if kernel(*map(arg, args), ctypes.c_int(torch.get_num_threads())) != 0:
        raise MemoryError(f"the {name} kernel could not allocate its scratch buffers")


def _cached(tensors: tuple[torch.Tensor, ...], extra, build):
    """``build()``, remembered for these index tensors (same objects, unmodified) and ``extra``
    (the hashable rest of what it depends on)."""
    key = (build.__name__, *(id(t) for t in tensors), *(t._version for t in tensors), extra)
    hit = _REV_CACHE.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], tensors)):  # the cache holds them: ids stay unique
        return hit[1]
    if len(_REV_CACHE) > 256:
        _REV_CACHE.clear()
    value = build()
    _REV_CACHE[key] = (tensors, value)
    return value


def _csr(idx: torch.Tensor, n_in: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ptr, order): the positions of ``idx`` holding input i are order[ptr[i]:ptr[i + 1]]."""
    order = torch.argsort(idx, stable=True)
    ptr = torch.zeros(n_in + 1, dtype=torch.int64)
    ptr[1:] = torch.cumsum(torch.bincount(idx, minlength=n_in), 0)
    return ptr, order


def reverse_index(ia: torch.Tensor, ib: torch.Tensor, n_in: int):
    """CSR of the gates reading each input: (rev_ptr, rev_gate, rev_side); side 0 = A, 1 = B."""

    def gates_by_input():
        n_out = ia.numel()
        ptr, order = _csr(torch.cat([ia, ib]), n_in)
        return ptr, (order % n_out).contiguous(), (order >= n_out).to(torch.uint8).contiguous()

    return _cached((ia, ib), n_in, gates_by_input)


def _gather_plans(cand: torch.Tensor, n_in: int):
    """(forward, backward) plans (ptr, entry, src_row) of ``weighted_gather`` for candidates
    ``cand`` (rows, k) over ``n_in`` inputs: each row reads its own k entries; each input gathers
    the entries that read it, from the gradient row of their selection."""

    def plans():
        n_rows, k = cand.shape
        entry = torch.arange(n_rows * k)
        forward = (torch.arange(0, n_rows * k + 1, k), entry, cand.reshape(-1).contiguous())
        ptr, order = _csr(cand.reshape(-1), n_in)
        return forward, (ptr, order, (order // k).contiguous())

    return _cached((cand,), n_in, plans)


class _SelectFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cand, p):
        (n_in, batch), n_rows = x.shape, cand.shape[0]
        sel = torch.empty(n_rows, batch, dtype=x.dtype)
        forward_plan, ctx.backward_plan = _gather_plans(cand, n_in)  # the backward plan rides on ctx
        _call("weighted_gather", x.dtype, x, batch, *forward_plan, p, n_rows, sel)
        ctx.save_for_backward(x, cand, p)
        return sel

    @staticmethod
    def backward(ctx, gsel):
        x, cand, p = ctx.saved_tensors
        (n_in, batch), gsel = x.shape, gsel.contiguous()
        need_x, _, need_p = ctx.needs_input_grad
        gx = gp = None
        if need_x:
            gx = torch.empty_like(x)
            _call("weighted_gather", x.dtype, gsel, batch, *ctx.backward_plan, p, n_in, gx)
        if need_p:
            gp = torch.empty_like(p)
            _call("select_grad_weights", x.dtype, x, batch, cand, gsel, p.numel(), cand.shape[1], gp)
        return gx, None, gp


def select(x: torch.Tensor, cand: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Learned-connection mixtures (rows, batch): row r = sum_j p[r, j] x[cand[r, j]], for
    candidate indices ``cand`` and weights ``p`` (rows, k), differentiable in ``x`` and ``p``."""
    x = x.contiguous()
    return _SelectFn.apply(x, cand.contiguous(), p.to(compute_dtype(x.dtype)).contiguous())


class _DenseFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, ia, ib, c):
        n_out, batch = ia.numel(), x.shape[1]
        y = torch.empty(n_out, batch, dtype=x.dtype)
        _call("dense_forward", x.dtype, x, batch, ia, ib, c, n_out, y)
        ctx.save_for_backward(x, ia, ib, c)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, ia, ib, c = ctx.saved_tensors
        return _dense_backward(ctx.needs_input_grad, x, ia, ib, c, gy.contiguous(), 1)


def _dense_backward(needs, x, ia, ib, c, gy, per):
    """(gx, None, None, gc) of a dense layer; row g // per of ``gy`` is gate g's output gradient."""
    n_out, batch = ia.numel(), x.shape[1]
    gc = torch.empty(n_out, 4, dtype=c.dtype)
    if needs[0]:  # both gradients in one sweep over the inputs
        ptr, gate, side = reverse_index(ia, ib, x.shape[0])
        gx = torch.empty_like(x)
        _call("dense_backward", x.dtype, x, batch, ia, ib, c, gy, per, x.shape[0], ptr, gate, side, gc, gx)
    else:
        gx = None
        _call("dense_grad_coef", x.dtype, x, batch, ia, ib, gy, per, n_out, gc)
    return gx, None, None, (gc if needs[3] else None)


class _DenseGroupSumFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, ia, ib, c, k, tau):
        n_out, batch = ia.numel(), x.shape[1]
        sums = torch.empty(k, batch, dtype=c.dtype)
        _call("dense_groupsum_forward", x.dtype, x, batch, ia, ib, c, n_out, k, sums)
        ctx.save_for_backward(x, ia, ib, c)
        ctx.k, ctx.tau = k, tau
        return (sums.T / tau).contiguous()

    @staticmethod
    def backward(ctx, g):
        x, ia, ib, c = ctx.saved_tensors
        rows = (g.T / ctx.tau).to(x.dtype).contiguous()  # (k, batch): one gradient row per class
        return (*_dense_backward(ctx.needs_input_grad, x, ia, ib, c, rows, ia.numel() // ctx.k), None, None)


def dense(x: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Fused relaxed dense layer on CPU; x (in, batch) float32, float64 or bfloat16 (stored in
    bfloat16, computed in float32), c (out, 4)."""
    x = x.contiguous()
    return _DenseFn.apply(x, ia.contiguous(), ib.contiguous(), c.to(compute_dtype(x.dtype)).contiguous())


def dense_groupsum(
    x: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor, c: torch.Tensor, k: int, tau: float
) -> torch.Tensor:
    """GroupSum(k, tau) of a fused dense layer, in one pass: scores (batch, k) in the compute
    dtype. The layer's (out, batch) output is neither stored nor its gradient broadcast."""
    x = x.contiguous()
    return _DenseGroupSumFn.apply(
        x, ia.contiguous(), ib.contiguous(), c.to(compute_dtype(x.dtype)).contiguous(), k, float(tau)
    )


STACK_TILE = 64  # the most samples one tile of the stacked kernels holds (logic_cpu.c's STACK_TILE)


def stack_tile(batch: int, threads: int) -> int:
    """Samples per tile of ``dense_stack``: a tile for each thread, a multiple of 8 (one AVX2
    register of float32), at most STACK_TILE."""
    share = -(-batch // max(threads, 1))
    return min(STACK_TILE, max(8, -(-share // 8) * 8))


def _stack_plan(wiring: tuple[torch.Tensor, ...], n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(widths, ia, ib) of the stacked kernels: the input width and each layer's gates, and the
    layers' wiring end to end; ``wiring`` is (ia_1, ib_1, ia_2, ib_2, ...)."""

    def stack_plan():
        widths = torch.tensor([n_in, *(ia.numel() for ia in wiring[::2])], dtype=torch.int64)
        return widths, torch.cat(wiring[::2]).contiguous(), torch.cat(wiring[1::2]).contiguous()

    return _cached(wiring, n_in, stack_plan)


class _StackFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, k, tau, wiring, basis, *ps):
        batch = x.shape[1]
        widths, ia, ib = _stack_plan(wiring, x.shape[0])
        tile = stack_tile(batch, torch.get_num_threads())
        c, probs = (torch.cat(ps), None) if basis is None else _relaxed(ps, basis, widths[1:])
        acts = torch.empty(int(widths[:-1].sum()) * batch, dtype=x.dtype)
        sums = torch.empty(k, batch, dtype=c.dtype)
        _call("stack_forward", x.dtype, x, batch, tile, len(ps), widths, ia, ib, c, k, acts, sums)
        ctx.save_for_backward(acts, widths, ia, ib, c, probs, basis)
        ctx.k, ctx.tau, ctx.tile, ctx.x_like = k, tau, tile, (x.shape, x.dtype)
        return (sums.T / tau).contiguous()

    @staticmethod
    def backward(ctx, g):
        acts, widths, ia, ib, c, probs, basis = ctx.saved_tensors
        (shape, dtype), layers = ctx.x_like, len(widths) - 1
        rows = (g.T / ctx.tau).to(c.dtype).contiguous()  # (k, batch): one gradient row per class
        gc = torch.empty_like(c)
        gcp = torch.empty(-(-shape[1] // ctx.tile), *c.shape, dtype=c.dtype)
        gx = torch.empty(shape, dtype=dtype) if ctx.needs_input_grad[0] else None
        _call("stack_backward", dtype, acts, shape[1], ctx.tile, layers, widths, ia, ib, c, ctx.k, rows, gcp, gc, gx)
        if basis is None:
            grads = torch.split(gc, widths[1:].tolist())
        else:
            grads = _relaxed_grads(probs, gc, widths[1:], basis)
        return (gx, None, None, None, None, *grads)


def dense_stack(
    x: torch.Tensor,
    wiring: list[tuple[torch.Tensor, torch.Tensor]],
    ps: list[torch.Tensor],
    k: int,
    tau: float,
    basis: torch.Tensor | None = None,
) -> torch.Tensor:
    """GroupSum(k, tau) of fused dense layers applied in turn (layer i reads the previous one's
    output, row ``wiring[i][0][g]`` and ``wiring[i][1][g]`` for gate g), each thread taking its
    tile of samples through all of them: scores (batch, k) in the compute dtype; x (in, batch).
    ``ps[i]``: layer i's coefficients (gates, 4), or, with ``basis`` (a parametrization's
    ``weight_basis``), its weights (gates, 16 or 4), made relaxed coefficients by the kernels in
    the same call (and their gradients in the backward), as :func:`coefficients` does. It keeps
    every layer's output for the backward, as the layer-by-layer kernels do."""
    x = x.contiguous()
    flat = tuple(t.contiguous() for pair in wiring for t in pair)
    ps = [p.to(compute_dtype(x.dtype)).contiguous() for p in ps]
    if basis is not None:
        basis = basis.to(ps[0].dtype).contiguous()
    m = 4 if basis is None else basis.shape[0]
    for i, ((ia, _), p) in enumerate(zip(wiring, ps)):
        if p.shape != (ia.numel(), m):  # the kernels would read past the end
            raise ValueError(
                f"layer {i} has {ia.numel()} gates but parameters of shape {tuple(p.shape)}, not (gates, {m})"
            )
    return _StackFn.apply(x, k, float(tau), flat, basis, *ps)


def _addresses(tensors) -> torch.Tensor:
    """The tensors' data addresses, for kernels that take one buffer per layer."""
    return torch.tensor([t.data_ptr() for t in tensors], dtype=torch.int64)


def _relaxed(ws, basis: torch.Tensor, n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(c, probs): the relaxed coefficients (gates, 4) of the weights ``ws`` of layers of ``n``
    gates, end to end, and the probabilities their backward needs."""
    total, m, dtype = int(n.sum()), ws[0].shape[1], ws[0].dtype
    c, probs = torch.empty(total, 4, dtype=dtype), torch.empty(total, m, dtype=dtype)
    _call("coef_forward", dtype, _addresses(ws), n, len(ws), ctypes.c_int(m), basis, c, probs)
    return c, probs


def _relaxed_grads(probs: torch.Tensor, gc: torch.Tensor, n: torch.Tensor, basis: torch.Tensor) -> list:
    """The weight gradients of each layer from the coefficient gradients ``gc`` (end to end)."""
    m = probs.shape[1]
    gws = [torch.empty(int(g), m, dtype=probs.dtype) for g in n]
    _call("coef_backward", probs.dtype, probs, gc.contiguous(), n, len(gws), ctypes.c_int(m), basis, _addresses(gws))
    return gws


class _CoefFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, basis):
        n = torch.tensor([w.shape[0]], dtype=torch.int64)
        c, probs = _relaxed([w], basis, n)
        ctx.save_for_backward(probs, basis, n)
        return c

    @staticmethod
    def backward(ctx, gc):
        probs, basis, n = ctx.saved_tensors
        return _relaxed_grads(probs, gc, n, basis)[0], None


def coefficients(w: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Relaxed coefficients (n, 4) from weights (n, 16) (softmax) or (n, 4) (sigmoid) in one pass;
    ``basis`` (16 or 4, 4) is the parametrization's map to {1, a, b, ab}."""
    return _CoefFn.apply(w.contiguous(), basis.to(w.dtype).contiguous())


class _ConvFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, idx, c, n_pos):
        k, n_gates = c.shape[0], c.shape[1]
        n_leaves = n_gates + 1
        window = idx.numel() // (k * n_pos * n_leaves)
        batch, n_out = x.shape[1], k * n_pos
        y = torch.empty(n_out, batch, dtype=x.dtype)
        arg = torch.empty(n_out, batch, dtype=torch.uint8) if window > 1 else None
        _call(
            "conv_forward",
            x.dtype,
            x,
            batch,
            idx,
            n_out,
            n_pos,
            ctypes.c_int(window),
            ctypes.c_int(n_leaves),
            c,
            y,
            arg,
        )
        ctx.save_for_backward(x, idx, c, arg)
        ctx.shape = (n_pos, window, n_leaves)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, idx, c, arg = ctx.saved_tensors
        n_pos, window, n_leaves = ctx.shape
        gy = gy.contiguous()
        gc = torch.empty_like(c)
        gx = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        _call(
            "conv_backward",
            x.dtype,
            x,
            x.shape[1],
            x.shape[0],
            idx,
            gy.shape[0],
            n_pos,
            ctypes.c_int(window),
            ctypes.c_int(n_leaves),
            c.shape[0],
            c,
            gy,
            arg,
            gc,
            gx,
        )
        return gx, None, gc, None


def pool_slots(rows: torch.Tensor, shape: tuple[int, int, int], pool: int, pool_padding: int = 0) -> torch.Tensor:
    """What :func:`tree_conv` takes for the leaf rows ``rows`` (kernels, positions, leaves) of a
    map of ``shape`` (kernels, height, width) pooled ``pool`` x ``pool``: int32 (kernels, pooled
    positions, window slots, leaves), a slot outside the map -2 in every leaf. Remembered for
    ``rows`` while it is unmodified."""

    def slots() -> torch.Tensor:
        windows = pool_windows(rows.view(*shape, rows.shape[-1]), pool, pool_padding, -2)
        return windows.to(torch.int32).contiguous()

    return _cached((rows,), (tuple(shape), pool, pool_padding), slots)


def tree_conv(x: torch.Tensor, idx: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Fused logic-tree convolution + OR pooling on CPU.

    ``idx``: int32 (kernels, pooled positions, window slots, leaves), -1 reads 0, -2 in leaf 0 marks
    a slot outside the map; ``c``: (kernels, gates, 4). Returns (kernels * pooled positions, batch).
    """
    if idx.shape[-1] > 32:
        raise ValueError("the fused tree kernel supports trees of depth <= 5")
    x = x.contiguous()
    return _ConvFn.apply(x, idx.to(torch.int32).contiguous(), c.to(x.dtype).contiguous(), idx.shape[1])
