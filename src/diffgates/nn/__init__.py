"""Trainable logic modules."""

from .dense import GateOptions, LogicDense
from .ensemble import Ensemble
from .groupsum import GroupSum
from .lower import to_circuit
from .model import LogicNet, ModelConfig

__all__ = ["Ensemble", "GateOptions", "LogicDense", "GroupSum", "LogicNet", "ModelConfig", "to_circuit"]
