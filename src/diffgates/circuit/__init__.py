"""The discrete world: the Circuit IR, its graph facts, optimisation passes and execution.
Nothing here imports torch; models are lowered to a Circuit by :func:`diffgates.nn.to_circuit`."""

from .execute import predict_counts
from .ir import Circuit, encode_bits

__all__ = ["Circuit", "encode_bits", "predict_counts"]
