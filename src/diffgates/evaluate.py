"""Scoring a trained model and its circuit on the test set: relaxed, discrete and circuit accuracy,
their agreement, and the circuit's size and speed after optimisation."""

from __future__ import annotations

import time

import numpy as np
import torch

from .circuit import Circuit, encode_bits, predict_counts
from .data import Dataset
from .nn.ensemble import Ensemble
from .nn.model import LogicNet


@torch.no_grad()
def accuracy(
    model: LogicNet | Ensemble, bits: torch.Tensor, y: torch.Tensor, training: bool, batch: int = 2048, forward=None
) -> float:
    """Accuracy in training mode (the network being optimised) or eval mode (discrete), of
    ``forward`` (default: ``model.forward_bits`` on encoded bits; ``model`` itself on raw features)."""
    forward = forward or model.forward_bits
    was = model.training
    model.train(training)
    correct = 0
    for i in range(0, len(y), batch):
        scores = forward(bits[i : i + batch].float())
        correct += int((scores.argmax(1) == y[i : i + batch]).sum())
    model.train(was)
    return correct / len(y)


def throughput(circuit: Circuit, x: np.ndarray, samples: int = 200_000) -> dict:
    """Circuit size after optimisation and executor speed on one thread: images/s from input bits
    (a byte each, and packed eight a byte), and from the raw features ``x`` (float32, encoded
    inside the executor) on a tenth as many."""
    from .circuit import program

    if not program.available():
        return {}
    t0 = time.perf_counter()
    ex = program.Executor(circuit.on_bits(), threads=1)
    prepare_s = time.perf_counter() - t0
    used = ex.circuit.in_feature  # the input bits the optimised circuit still reads
    tiled = np.ascontiguousarray(np.resize(encode_bits(circuit, x)[:, used], (samples, len(used))))
    best = min(_timed(lambda: ex.counts_from_bits(tiled)) for _ in range(3))
    packed = np.packbits(tiled, axis=1, bitorder="little")
    best_packed = min(_timed(lambda: ex.counts_from_packed_bits(packed)) for _ in range(3))
    raw = program.Executor(circuit, threads=1)
    features = np.resize(np.asarray(x, dtype=np.float32), (samples // 10, circuit.n_features))
    best_raw = min(_timed(lambda: raw.counts(features)) for _ in range(3))
    return {
        "gates_optimised": ex.circuit.n_gates,
        "circuit_prepare_s": prepare_s,
        "circuit_img_per_s": samples / best,
        "circuit_img_per_s_packed": samples / best_packed,
        "circuit_img_per_s_features": len(features) / best_raw,
    }


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@torch.no_grad()
def evaluate(model: LogicNet | Ensemble, circuit: Circuit, ds: Dataset) -> dict:
    """Test accuracy of the relaxed model, the discrete model and the circuit, plus agreement (and
    the dataset's class names, where it has them, for the run's summary)."""
    model = model.cpu()
    x = torch.as_tensor(ds.x_test)
    relaxed = accuracy(model, x, torch.as_tensor(ds.y_test), training=True, forward=model)
    model_counts = model.counts(x).numpy()
    circuit_counts = predict_counts(circuit, ds.x_test)
    mismatches = int((model_counts != circuit_counts).any(axis=1).sum())
    return {
        "test_acc_relaxed": relaxed,
        "test_acc_discrete": float((model_counts.argmax(1) == ds.y_test).mean()),
        "test_acc_circuit": float((circuit_counts.argmax(1) == ds.y_test).mean()),
        "circuit_mismatches": mismatches,
        **throughput(circuit, ds.x_test),
        "test_samples": len(x),
        **({"class_names": list(ds.class_names)} if ds.class_names else {}),
    }
