"""Ensemble: trained LogicNets whose class counts add up, one circuit in hardware."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import DiffgatesError
from .model import LogicNet


class Ensemble(nn.Module):
    """Several trained :class:`LogicNet` members reading the same raw features, each with its own
    encoder and wiring. ``counts`` is the sum of the members' discrete class counts (what the
    merged circuit computes); ``forward`` the sum of their scores (relaxed in ``train()``)."""

    def __init__(self, members: list[LogicNet]):
        super().__init__()
        if not members:
            raise DiffgatesError("an ensemble needs at least one member.")
        first = members[0].config
        for m in members[1:]:
            if (m.config.n_features, m.config.n_classes) != (first.n_features, first.n_classes):
                raise DiffgatesError(
                    f"ensemble members must share their features and classes: one takes {m.config.n_features} "
                    f"features into {m.config.n_classes} classes, another {first.n_features} into {first.n_classes}."
                )
        self.members = nn.ModuleList(members)

    @property
    def n_features(self) -> int:
        return self.members[0].config.n_features

    @property
    def n_classes(self) -> int:
        return self.members[0].config.n_classes

    @property
    def n_gates(self) -> int:
        return sum(m.n_gates for m in self.members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Summed scores (batch, classes) from raw features."""
        return sum(m(x) for m in self.members)

    @torch.no_grad()
    def counts(self, x: torch.Tensor, batch: int = 4096) -> torch.Tensor:
        """Summed integer class counts of the discrete members (what the merged circuit computes)."""
        return sum(m.counts(x, batch) for m in self.members)
