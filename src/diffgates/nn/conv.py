"""LogicConv2d (logic-gate trees shared over positions, with fused OR pooling) and OrPool2d.

Images are feature-major like every other activation: an (channels, height, width) map over a
batch is a (channels * height * width, batch) tensor, so a convolution is a gather of rows and
flattening for the dense layers that follow costs nothing.

Each output channel (kernel) is a complete binary tree of ``2**depth - 1`` learnable gates whose
``2**depth`` leaves are fixed random positions of a ``size`` x ``size`` receptive field, drawn from
at most two input channels of the kernel's group (Petersen et al., 2024). Gate ``g`` of a tree
reads nodes ``2g`` and ``2g + 1`` and writes node ``leaves + g`` (nodes below ``leaves`` are the
leaves), so the root is the last node. The weights are shared by all positions.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass

import torch
from torch import nn

from ..errors import DiffgatesError
from ..kernels import logic_tree_conv
from ..kernels.reference import tree_reference
from ..kernels.torch_ops import or_pool2d
from . import parametrization as P
from .dense import GateLayer, GateOptions


@dataclass(frozen=True)
class ConvSpec:
    """One convolution block: ``kernels`` trees over ``size`` x ``size`` fields, then OR pooling.

    Written ``K:SIZE[:PAD[:POOL[:POOL_PAD[:STRIDE[:DEPTH]]]]]``, e.g. ``16:5`` or ``48:3:0:2:1``;
    the defaults are padding 0, pooling 2 x 2 (stride 2), pooling padding 0, tree stride 1 and the
    model's tree depth (DEPTH 0); POOL 1 means no pooling.
    """

    kernels: int
    size: int = 3
    padding: int = 0
    pool: int = 2
    pool_padding: int = 0
    stride: int = 1
    depth: int = 0  # the trees' depth; 0: the model's tree_depth

    def __post_init__(self):
        text = ":".join(str(v) for v in astuple(self))
        if min(self.kernels, self.size, self.pool, self.stride) < 1 or min(self.padding, self.pool_padding) < 0:
            raise DiffgatesError(f"conv block {text!r}: sizes must be positive and paddings non-negative.")
        if not 0 <= self.depth <= 5:
            raise DiffgatesError(f"conv block {text!r}: tree depth {self.depth} is not 1 to 5 (or 0: the model's).")
        if self.pool_padding > self.pool // 2:
            raise DiffgatesError(
                f"conv block {text!r}: pool padding {self.pool_padding} is more than half the pool size {self.pool}."
            )

    @classmethod
    def parse(cls, text: str) -> ConvSpec:
        try:
            values = [int(v) for v in str(text).split(":")]
            if not 2 <= len(values) <= 7:
                raise ValueError
        except ValueError:
            raise DiffgatesError(
                f"conv block {text!r} is not K:SIZE[:PAD[:POOL[:POOL_PAD[:STRIDE[:DEPTH]]]]] with integers "
                "(e.g. 16:3:1:2)."
            ) from None
        return cls(*values)


def conv_out(size: int, field: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - field) // stride + 1


def block_shapes(in_shape, spec: ConvSpec) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(map after the trees, map after pooling) of a block, each (channels, height, width)."""
    _, h, w = in_shape
    stride = spec.stride
    ho, wo = conv_out(h, spec.size, stride, spec.padding), conv_out(w, spec.size, stride, spec.padding)
    hp, wp = (
        conv_out(ho, spec.pool, spec.pool, spec.pool_padding),
        conv_out(wo, spec.pool, spec.pool, spec.pool_padding),
    )
    if min(ho, wo, hp, wp) < 1:
        raise DiffgatesError(f"conv block {spec} does not fit an input map of {h} x {w}.")
    return (spec.kernels, ho, wo), (spec.kernels, hp, wp)


def random_leaves(
    kernels: int, channels: int, groups: int, size: int, n_leaves: int, gen: torch.Generator, tree_channels: int = 2
):
    """(channel, dy, dx) of every leaf, each (kernels, n_leaves): at most ``tree_channels``
    channels per kernel, from the kernel's group; distinct positions when the field has enough,
    and never the same input twice for one first-level gate."""
    per_group = channels // groups
    group = torch.arange(kernels) // (kernels // groups)
    n_ch = min(tree_channels, per_group)
    pair = torch.rand(kernels, per_group, generator=gen).argsort(1)[:, :n_ch] + (group * per_group)[:, None]
    n_cand = n_ch * size * size
    if n_cand >= n_leaves:
        cand = torch.rand(kernels, n_cand, generator=gen).argsort(1)[:, :n_leaves]
    else:
        if n_cand < 2:
            raise DiffgatesError("a logic tree needs a receptive field of at least 2 inputs.")
        cand = torch.randint(n_cand, (kernels, n_leaves), generator=gen)
        left, right = cand[:, 0::2], cand[:, 1::2]
        clash = left == right
        while clash.any():
            right[clash] = torch.randint(n_cand, (int(clash.sum()),), generator=gen)
            clash = left == right
        cand = torch.stack([left, right], 2).reshape(kernels, n_leaves)
    channel = pair.gather(1, cand // (size * size))
    pos = cand % (size * size)
    return channel, pos // size, pos % size


class LogicConv2d(GateLayer):
    """Logic-tree convolution over a (channels, height, width) map, optionally with OR pooling fused.

    Input (channels * height * width, batch), output (kernels * out_h * out_w, batch) with
    ``out_shape`` after pooling. Modes and options as :class:`~diffgates.nn.LogicDense`; the wiring
    (leaf channels and offsets) lives in buffers, so ``state_dict()`` restores the layer exactly.
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        kernels: int,
        size: int = 3,
        stride: int = 1,
        padding: int = 0,
        depth: int = 3,
        groups: int = 1,
        tree_channels: int = 2,
        pool: int = 1,
        pool_padding: int = 0,
        options: GateOptions = GateOptions(),
        seed: int | None = None,
    ):
        super().__init__(options, seed)
        self.in_shape = tuple(int(v) for v in in_shape)
        channels = self.in_shape[0]
        if not 1 <= depth <= 5:
            raise DiffgatesError(f"tree depth must be 1 to 5, got {depth}.")
        if channels % groups or kernels % groups:
            raise DiffgatesError(f"groups={groups} must divide the {channels} input channels and {kernels} kernels.")
        self.spec = ConvSpec(kernels, size, padding, pool, pool_padding, stride)
        if tree_channels < 1:
            raise DiffgatesError(f"tree_channels must be at least 1, got {tree_channels}.")
        self.depth, self.groups, self.tree_channels = depth, groups, tree_channels
        self.conv_shape, self.out_shape = block_shapes(self.in_shape, self.spec)
        n_leaves = 2**depth
        self.weight = nn.Parameter(torch.empty(kernels * (n_leaves - 1), P.n_weights(options.parametrization)))
        for name in ("leaf_channel", "leaf_dy", "leaf_dx"):
            self.register_buffer(name, torch.empty(kernels, n_leaves, dtype=torch.long))
        self.reset_parameters()

    @property
    def kernels(self) -> int:
        return self.spec.kernels

    @property
    def stride(self) -> int:
        return self.spec.stride

    @property
    def n_leaves(self) -> int:
        return 2**self.depth

    @property
    def in_features(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_features(self) -> int:
        return math.prod(self.out_shape)

    @property
    def n_gates(self) -> int:
        """Tree gates of the unrolled layer (one tree per kernel and position; pooling not counted)."""
        return math.prod(self.conv_shape) * (self.n_leaves - 1)

    @property
    def n_pool_gates(self) -> int:
        """2-input OR gates of the unrolled pooling (window slots minus one per pooled output)."""
        return 0 if self.spec.pool == 1 else self.out_features * (self.spec.pool**2 - 1)

    def index_bounds(self) -> dict[str, int]:
        return {"leaf_channel": self.in_shape[0], "leaf_dy": self.spec.size, "leaf_dx": self.spec.size}

    def reset_parameters(self) -> None:
        gen = self._generator()
        leaves = random_leaves(
            self.kernels, self.in_shape[0], self.groups, self.spec.size, self.n_leaves, gen, self.tree_channels
        )
        for buf, value in zip((self.leaf_channel, self.leaf_dy, self.leaf_dx), leaves):
            buf.copy_(value)
        self._reset_weights()

    def leaf_rows(self) -> torch.Tensor:
        """(kernels, positions, leaves) input row of every leaf of the unpooled map; -1 reads 0.
        The same tensor while the wiring stays (the fused kernel's pooled table is kept for it)."""
        return self._derived("rows", _compute_rows)

    def _derived(self, name: str, compute) -> torch.Tensor:
        """Index tables computed from the wiring buffers, recomputed when they change (load, .to)."""
        bufs = (self.leaf_channel, self.leaf_dy, self.leaf_dx)
        key = tuple(b._version for b in bufs) + tuple(b.data_ptr() for b in bufs)
        cache = self.__dict__.setdefault("_index_cache", {})
        if name not in cache or cache[name][0] != key:
            cache[name] = (key, compute(self))
        return cache[name][1]

    def coefficients(self) -> torch.Tensor:
        """(kernels, gates, 4) coefficients in {1, a, b, ab} for the current mode."""
        return self._mode_coefficients().view(self.kernels, self.n_leaves - 1, 4)

    def gate_ids(self) -> torch.Tensor:
        """(kernels, gates) discrete gate ids."""
        return self._gate_ids().view(self.kernels, self.n_leaves - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[0] != self.in_features:
            raise DiffgatesError(
                f"LogicConv2d expects a feature-major map of shape ({self.in_features}, batch) "
                f"for {self.in_shape}, got {tuple(x.shape)}."
            )
        x = self._scaled_input(x)
        pool, pad = self.spec.pool, self.spec.pool_padding
        if self._on_reference():
            y = tree_reference(x, self.leaf_rows(), self.weight.to(x.dtype), self.options.parametrization)
            return y if pool == 1 else or_pool2d(y, self.conv_shape, pool, pad)
        engine = "torch" if self.options.engine == "reference" else self.options.engine
        return logic_tree_conv(x, self.leaf_rows(), self.coefficients().to(x.dtype), self.conv_shape, pool, pad, engine)

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"{self.in_shape} -> {self.out_shape}, kernels={s.kernels}, size={s.size}, stride={self.stride}, "
            f"padding={s.padding}, depth={self.depth}, groups={self.groups}, tree_channels={self.tree_channels}, "
            f"pool={s.pool}, "
            f"parametrization={self.options.parametrization!r}"
        )


def _compute_rows(layer: LogicConv2d) -> torch.Tensor:
    c, h, w = layer.in_shape
    _, ho, wo = layer.conv_shape
    dev = layer.leaf_channel.device
    oy = torch.arange(ho, device=dev) * layer.stride - layer.spec.padding
    ox = torch.arange(wo, device=dev) * layer.stride - layer.spec.padding
    iy = oy.view(1, ho, 1, 1) + layer.leaf_dy.view(-1, 1, 1, layer.n_leaves)
    ix = ox.view(1, 1, wo, 1) + layer.leaf_dx.view(-1, 1, 1, layer.n_leaves)
    inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    rows = layer.leaf_channel.view(-1, 1, 1, layer.n_leaves) * (h * w) + iy * w + ix
    return torch.where(inside, rows, -1).view(layer.kernels, ho * wo, layer.n_leaves)


class OrPool2d(nn.Module):
    """Logical OR over ``size`` x ``size`` windows (stride ``size``) of a feature-major map,
    relaxed by max with the gradient through the selected element only."""

    def __init__(self, in_shape: tuple[int, int, int], size: int = 2, padding: int = 0):
        super().__init__()
        self.in_shape = tuple(int(v) for v in in_shape)
        self.size, self.padding = size, padding
        c, h, w = self.in_shape
        self.out_shape = (c, conv_out(h, size, size, padding), conv_out(w, size, size, padding))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[0] != math.prod(self.in_shape):
            raise DiffgatesError(
                f"OrPool2d expects shape ({math.prod(self.in_shape)}, batch) for {self.in_shape}, got {tuple(x.shape)}."
            )
        return or_pool2d(x, self.in_shape, self.size, self.padding)

    def extra_repr(self) -> str:
        return f"{self.in_shape} -> {self.out_shape}, size={self.size}, padding={self.padding}"
