"""Trainable logic modules."""

from .dense import LogicDense
from .groupsum import GroupSum
from .model import LogicNet, ModelConfig

__all__ = ["LogicDense", "GroupSum", "LogicNet", "ModelConfig"]
