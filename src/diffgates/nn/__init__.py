"""Trainable logic modules."""

from .dense import LogicDense
from .ensemble import Ensemble
from .groupsum import GroupSum
from .lower import to_circuit
from .model import LogicNet, ModelConfig

__all__ = ["Ensemble", "LogicDense", "GroupSum", "LogicNet", "ModelConfig", "to_circuit"]
