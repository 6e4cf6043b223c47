"""diffgates: train logic gate networks by gradient descent and ship them as circuits."""

from .checkpoint import load_model, save_model
from .circuit import Circuit
from .encode import ThermometerEncoder
from .errors import DiffgatesError
from .nn import Ensemble, GroupSum, LogicDense, LogicNet, ModelConfig, to_circuit

__version__ = "0.1.0"

__all__ = [
    "Circuit",
    "DiffgatesError",
    "Ensemble",
    "GroupSum",
    "LogicDense",
    "LogicNet",
    "ModelConfig",
    "ThermometerEncoder",
    "load_model",
    "save_model",
    "to_circuit",
]
