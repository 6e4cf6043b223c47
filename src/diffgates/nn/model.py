"""LogicNet: encoder -> [logic-tree convolutions] -> dense logic layers -> GroupSum, from a config."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

import torch
from torch import nn

from ..encode import ThermometerEncoder
from ..errors import DiffgatesError
from .conv import ConvSpec, LogicConv2d, block_shapes
from .dense import GateOptions, LogicDense, sort_wiring, stacked_scores, wire_skip
from .groupsum import GroupSum

# dtype the dense layers store activations (and their gradients) in; None: the input's own
ACTIVATIONS = {"float32": None, "bfloat16": torch.bfloat16}


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model's architecture (weights come from its state_dict).
    Its defaults are the defaults of ``diffgates train`` (TrainConfig takes them from here)."""

    n_features: int
    n_classes: int
    widths: list[int] = field(default_factory=lambda: [4000, 4000, 4000])
    encoder_bits: int = 4
    encoder_strategy: str = "uniform"
    encoder_thresholds: list[float] | None = None
    parametrization: str = "truth4"
    connections: str = "unique"
    candidates: int = 8
    window: int = 64  # --connections local: how many neighbouring inputs a gate reads from
    init: str = GateOptions.init  # the gates' options default as a layer's (parametrization aside)
    residual_strength: float | None = GateOptions.residual_strength
    forward: str = GateOptions.forward
    gumbel_scale: float = GateOptions.gumbel_scale
    grad_factor: float = GateOptions.grad_factor
    activations: str = "float32"
    tau: float = 10.0
    seed: int = 0
    image_shape: list[int] | None = None
    conv: list[str] = field(default_factory=list)
    tree_depth: int = 3
    conv_groups: int = 1
    tree_channels: int = 2
    head_blocks: int = 1
    head_input: str = "blocks"  # "blocks+bits": the dense layers also read the encoder's bits
    frozen_blocks: int = 0  # the first N conv blocks are fixed: discrete in training too, no gradient
    # the output layer also reads the encoder's bits, its gates input A from this feature's (dense
    # models): an image network's centre pixel, so that pass-through gates start it as
    # nearest-neighbour upscaling; see dense.wire_skip
    skip_feature: int | None = None
    # the outputs are classes (their circuit gives the argmax too); false for an image network,
    # whose outputs are pixel values
    argmax: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def gate_options(self, engine: str = "auto") -> GateOptions:
        """The options every layer's gates take from this config (its fields of the same names),
        run on ``engine``."""
        named = {f.name: getattr(self, f.name) for f in fields(GateOptions) if f.name != "engine"}
        return GateOptions(**named, engine=engine)

    def conv_input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) the first convolution sees: each image channel's thermometer
        bits become channels of their own."""
        if not self.image_shape or len(self.image_shape) != 3:
            raise DiffgatesError("convolutional models need image_shape = [channels, height, width].")
        c, h, w = self.image_shape
        if c * h * w != self.n_features:
            raise DiffgatesError(
                f"image_shape {list(self.image_shape)} has {c * h * w} values, "
                f"but the data has {self.n_features} features."
            )
        bits = len(self.encoder_thresholds) if self.encoder_strategy == "fixed" else self.encoder_bits
        return (c * bits, h, w)

    def gate_counts(self) -> dict:
        """Gates of the unrolled network by kind, from the shapes alone (nothing is built)."""
        shape, tree, pool = None, 0, 0
        if self.conv:
            shape = self.conv_input_shape()
            for spec in map(ConvSpec.parse, self.conv):
                conv_shape, shape = block_shapes(shape, spec)
                tree += math.prod(conv_shape) * (2 ** (spec.depth or self.tree_depth) - 1)
                pool += 0 if spec.pool == 1 else math.prod(shape) * (spec.pool**2 - 1)
        return {"conv": tree, "pool": pool, "dense": sum(self.widths)}


class LogicNet(nn.Module):
    """A logic gate network with its input encoder and GroupSum head: optional logic-tree
    convolutions (``config.conv``, on ``config.image_shape`` images), then dense logic layers.

    ``forward`` takes raw features (batch, n_features) and returns class scores (batch, k).
    ``train()`` runs the relaxed network; ``eval()`` runs the exact discrete circuit.
    """

    def __init__(self, config: ModelConfig, engine: str = "auto"):
        super().__init__()
        self.config = config
        c = config
        if c.activations not in ACTIVATIONS:
            raise DiffgatesError(f"activations must be one of {', '.join(ACTIVATIONS)}, got {c.activations!r}.")
        self.activation_dtype = ACTIVATIONS[c.activations]
        if not c.widths:
            raise DiffgatesError("widths is empty; a model needs at least one dense layer (its last one: GroupSum).")
        if c.n_classes < 1:
            raise DiffgatesError(f"n_classes must be at least 1, got {c.n_classes}.")
        if c.widths[-1] % c.n_classes:  # GroupSum: an equal group of gates per output
            what = "classes" if c.argmax else "outputs"
            raise DiffgatesError(
                f"the last layer's width {c.widths[-1]} must be a multiple of the {c.n_classes} {what}, "
                f"such as {max(c.widths[-1] - c.widths[-1] % c.n_classes, c.n_classes)}."
            )
        # in training, the dense layers run in one tiled pass of the C kernels where they can
        # (nn.dense.stacked_scores); False keeps them layer by layer (to compare the two)
        self.stacked = True
        options = c.gate_options(engine)
        self.encoder = ThermometerEncoder(c.encoder_bits, c.encoder_strategy, c.encoder_thresholds)
        in_features = c.n_features * self.encoder.n_bits
        convs = []
        if c.conv:
            shape = c.conv_input_shape()
            for i, spec in enumerate(map(ConvSpec.parse, c.conv)):
                conv = LogicConv2d(
                    shape,
                    spec.kernels,
                    spec.size,
                    stride=spec.stride,
                    padding=spec.padding,
                    depth=spec.depth or c.tree_depth,
                    groups=c.conv_groups if i else 1,
                    tree_channels=c.tree_channels,
                    pool=spec.pool,
                    pool_padding=spec.pool_padding,
                    options=options,
                    seed=c.seed * 1000 + 500 + i,
                )
                convs.append(conv)
                shape = conv.out_shape
            if not 1 <= c.head_blocks <= len(convs):
                raise DiffgatesError(
                    f"head_blocks must be 1 to the {len(convs)} convolution blocks, got {c.head_blocks}."
                )
            in_features = sum(conv.out_features for conv in convs[-c.head_blocks :])
            if c.head_input == "blocks+bits":
                in_features += c.n_features * self.encoder.n_bits
        elif c.head_input != "blocks":
            raise DiffgatesError(f"head_input {c.head_input!r} needs convolution blocks to read beside the bits.")
        if not 0 <= c.frozen_blocks <= len(convs):
            raise DiffgatesError(
                f"frozen_blocks must be 0 to the {len(convs)} convolution blocks, got {c.frozen_blocks}."
            )
        for conv in convs[: c.frozen_blocks]:
            conv.requires_grad_(False)
        self.convs = nn.Sequential(*convs)
        # local windows of the first dense layer run over the maps' positions, all channels of one
        # position together, so that a gate reads neighbouring cells of the circuit
        head_order = self.position_major(convs) if convs and c.connections == "local" else None
        skip = self.skip_bits()
        layers = []
        for i, width in enumerate(c.widths):
            last = i == len(c.widths) - 1
            layers.append(
                LogicDense(
                    in_features + (len(skip) if last else 0),
                    width,
                    options,
                    connections=c.connections,
                    candidates=c.candidates,
                    window=c.window,
                    groups=c.n_classes if i == len(c.widths) - 1 else 1,  # every class sees all inputs
                    window_order=head_order if i == 0 else None,
                    seed=c.seed * 1000 + i,
                )
            )
            in_features = width
        if len(skip):
            n = self.encoder.n_bits
            wire_skip(layers[-1], layers[-1].in_features - len(skip), c.n_features, n, c.skip_feature, c.n_classes)
        if c.connections != "learned":  # learned wiring moves in training; the kernels gather it anyway
            sort_wiring(layers, c.n_classes)
        self.layers = nn.Sequential(*layers)
        self.head = GroupSum(c.n_classes, c.tau)

    def position_major(self, convs: list) -> torch.Tensor:
        """The dense layers' inputs (channel-major maps, one after the other) ordered by position:
        entry k is the input index of the k-th (map, position, channel)."""
        shapes = self.head_sources(self.config.conv_input_shape(), [conv.out_shape for conv in convs])
        order, offset = [], 0
        for ch, h, w in shapes:
            order.append(offset + torch.arange(ch * h * w).reshape(ch, h * w).T.flatten())
            offset += ch * h * w
        return torch.cat(order)

    def skip_bits(self) -> torch.Tensor:
        """The encoder bits the output layer reads beside the previous layer: all of them, with
        ``skip_feature`` set."""
        c, f = self.config, self.config.skip_feature
        if f is None:
            return torch.zeros(0, dtype=torch.long)
        if c.conv or not 0 <= f < c.n_features:
            raise DiffgatesError(f"skip_feature needs a dense model and a feature 0..{c.n_features - 1}, got {f}.")
        return torch.arange(c.n_features * self.encoder.n_bits)

    def train(self, mode: bool = True) -> LogicNet:
        """Training mode for every layer except the frozen convolution blocks, which stay discrete."""
        super().train(mode)
        for conv in self.convs[: self.config.frozen_blocks]:
            conv.train(False)
        return self

    @property
    def n_gates(self) -> int:
        """Gates of the unrolled network: trees at every position, OR pooling, dense layers."""
        conv = sum(layer.n_gates + layer.n_pool_gates for layer in self.convs)
        return conv + sum(layer.n_gates for layer in self.layers)

    def set_engine(self, engine: str) -> None:
        for layer in (*self.convs, *self.layers):
            layer.options = replace(layer.options, engine=engine)

    def first_layer_input(self, bits: torch.Tensor) -> torch.Tensor:
        """Encoded bits (batch, n_bits) -> the first layer's feature-major input (rows, batch).

        The encoder writes bit ``f * n_bits + j`` for feature ``f`` and threshold ``j``; a
        convolution wants channel-major maps, channel ``c * n_bits + j`` for image channel ``c``.
        """
        if not len(self.convs):
            return bits.T.contiguous()
        c, nb = self.config.image_shape[0], self.encoder.n_bits
        return bits.reshape(bits.shape[0], c, -1, nb).permute(1, 3, 2, 0).reshape(bits.shape[1], -1).contiguous()

    def input_order(self) -> torch.Tensor:
        """Encoder bit feeding each row of the first layer's input (identity for dense models)."""
        return self.first_layer_input(torch.arange(self.encoder.out_features).view(1, -1))[:, 0]

    def head_input(self, bits: torch.Tensor) -> torch.Tensor:
        """The dense layers' feature-major input from encoded bits: the encoder's bits, or the
        outputs of the last ``config.head_blocks`` convolution blocks one after the other, after
        the encoder's bits when ``config.head_input`` is "blocks+bits"."""
        h = given = self.first_layer_input(bits)
        outputs = []
        for conv in self.convs:
            h = conv(h)
            outputs.append(h)
        if not len(self.convs):
            return h
        read = self.head_sources(given, outputs)
        return read[0] if len(read) == 1 else torch.cat(read)

    def head_sources(self, given, outputs: list) -> list:
        """What the dense layers read, in order: of the first convolution's input ``given`` and the
        convolution blocks' ``outputs`` (one item per block: tensors, signal arrays or indices)."""
        read = outputs[-self.config.head_blocks :]
        return [given, *read] if self.config.head_input == "blocks+bits" else read

    def forward_bits(self, bits: torch.Tensor) -> torch.Tensor:
        """Class scores from already-encoded bits (batch, n_bits)."""
        if len(bits) == 0:  # one zero row through the layers, none of it kept: shapes and autograd as usual
            return self.forward_bits(bits.new_zeros((1, *bits.shape[1:])))[:0]
        h = self.head_input(bits)
        if self.activation_dtype is not None:
            h = h.to(self.activation_dtype)
        skip = self.skip_bits()
        if self.stacked and not len(skip):
            scores = stacked_scores(list(self.layers), h, self.head)
            if scores is not None:
                return scores
        *hidden, last = self.layers
        for layer in hidden:
            h = layer(h)
        if len(skip):
            h = torch.cat([h, bits[:, skip].T.to(h.dtype)])
        return last.grouped(h, self.head)

    def forward(self, x: torch.Tensor, encoded: bool = False) -> torch.Tensor:
        """Scores from raw features, or from input bits when ``encoded`` (the training path)."""
        return self.forward_bits(x if encoded else self.encoder(x))

    @torch.no_grad()
    def counts(self, x: torch.Tensor, batch: int = 4096) -> torch.Tensor:
        """Integer class counts of the discrete network (what the circuit computes), in batches."""
        was_training = self.training
        self.eval()
        try:
            parts = [torch.round(self(x[i : i + batch]) * self.head.tau).long() for i in range(0, len(x), batch)]
            return torch.cat(parts) if parts else torch.zeros(0, self.head.k, dtype=torch.long)
        finally:
            self.train(was_training)
