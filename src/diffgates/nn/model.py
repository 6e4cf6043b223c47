"""LogicNet: encoder -> logic layers -> GroupSum, built from a plain config dict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..encode import ThermometerEncoder
from .dense import LogicDense
from .groupsum import GroupSum


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model's architecture (weights come from its state_dict)."""

    n_features: int
    n_classes: int
    widths: list[int] = field(default_factory=lambda: [2000, 2000, 2000, 2000])
    encoder_bits: int = 3
    encoder_strategy: str = "uniform"
    encoder_thresholds: list[float] | None = None
    parametrization: str = "softmax16"
    connections: str = "unique"
    init: str = "residual"
    residual_strength: float | None = None
    forward: str = "relaxed"
    gumbel_scale: float = 1.0
    grad_factor: float = 1.0
    tau: float = 10.0
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class LogicNet(nn.Module):
    """A dense logic gate network with its input encoder and GroupSum head.

    ``forward`` takes raw features (batch, n_features) and returns class scores (batch, k).
    ``train()`` runs the relaxed network; ``eval()`` runs the exact discrete circuit.
    """

    def __init__(self, config: ModelConfig, engine: str = "auto"):
        super().__init__()
        self.config = config
        c = config
        self.encoder = ThermometerEncoder(c.encoder_bits, c.encoder_strategy, c.encoder_thresholds)
        in_features = c.n_features * self.encoder.n_bits
        layers = []
        for i, width in enumerate(c.widths):
            layers.append(
                LogicDense(
                    in_features,
                    width,
                    parametrization=c.parametrization,
                    connections=c.connections,
                    init=c.init,
                    residual_strength=c.residual_strength,
                    seed=c.seed * 1000 + i,
                    forward=c.forward,
                    gumbel_scale=c.gumbel_scale,
                    grad_factor=c.grad_factor,
                    engine=engine,
                )
            )
            in_features = width
        self.layers = nn.Sequential(*layers)
        self.head = GroupSum(c.n_classes, c.tau)

    @property
    def n_gates(self) -> int:
        return sum(layer.out_features for layer in self.layers)

    def set_engine(self, engine: str) -> None:
        for layer in self.layers:
            layer.engine = engine

    def forward_bits(self, bits: torch.Tensor) -> torch.Tensor:
        """Class scores from already-encoded bits (batch, n_bits)."""
        return self.head(self.layers(bits.T.contiguous()))

    def forward(self, x: torch.Tensor, encoded: bool = False) -> torch.Tensor:
        """Scores from raw features, or from input bits when ``encoded`` (the training path)."""
        return self.forward_bits(x if encoded else self.encoder(x))

    @torch.no_grad()
    def counts(self, x: torch.Tensor) -> torch.Tensor:
        """Integer class counts of the discrete network (what the circuit computes)."""
        was_training = self.training
        self.eval()
        try:
            return torch.round(self(x) * self.head.tau).long()
        finally:
            self.train(was_training)
