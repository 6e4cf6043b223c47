"""The discrete world: the Circuit IR, extraction from a model, execution."""

from .execute import predict_counts
from .extract import from_model
from .ir import Circuit

__all__ = ["Circuit", "from_model", "predict_counts"]
