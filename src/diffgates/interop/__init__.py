"""Networks trained with torchlogix or difflogic, brought in as diffgates runs.

``import_network`` reads a checkpoint without running the other library's code
(:mod:`.pickles`), works out each discrete gate from that library's arithmetic (:mod:`.sources`),
and writes a normal run directory: the same network as a diffgates model (truth4 weights that
select exactly those gates, the same wiring, the binarisation as its encoder), its circuit and a
summary scored on a dataset, so ``eval``, ``compile``, ``verify``, ``synth`` and ``fpga`` work on it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import save_model
from ..config import TrainConfig
from ..data import load_dataset
from ..errors import DiffgatesError, InternalError
from ..evaluate import evaluate
from ..nn import LogicNet, ModelConfig, to_circuit
from ..nn.parametrization import DEFAULT_RESIDUAL, weights_for
from ..outdir import staged, write_json
from .pickles import read
from .sources import PARAMETRIZATIONS, SOURCES, Network, read_network

__all__ = ["PARAMETRIZATIONS", "SOURCES", "import_network", "read_network", "to_model"]


def import_network(
    source: str,
    checkpoint: str | os.PathLike,
    dataset: str,
    out: str | os.PathLike,
    overwrite: bool = False,
    threshold: float = 0.5,
    classes: int | None = None,
    tau: float | None = None,
    parametrization: str | None = None,
    data_dir: str | None = None,
) -> dict:
    """Write the run directory ``out`` for the network in ``checkpoint``; returns its summary.

    ``threshold`` binarises the dataset's features (``x > threshold``) for a model without its own
    binarisation layer, which the source library expects to be fed bits."""
    net = read_network(source, read(checkpoint), classes, tau, parametrization)
    ds = load_dataset(dataset, data_dir)
    model = to_model(net, ds.n_features, threshold)
    cfg = _run_config(model.config, dataset, data_dir)
    with staged(out, overwrite, "run", inputs=[checkpoint, dataset if dataset.endswith(".npz") else None]) as work:
        cfg.save(work / "config.yaml")
        save_model(model, work / "model.safetensors")
        circuit = to_circuit(model)
        circuit.save(work / "circuit.npz")
        summary = evaluate(model, circuit, ds)
        summary.update(
            {
                "dataset": ds.name,
                "imported_from": source,
                "checkpoint": str(Path(checkpoint).resolve()),
                "widths": cfg.widths,
                "gates": model.n_gates,
            }
        )
        write_json(work / "summary.json", summary)
        if summary["circuit_mismatches"]:
            raise InternalError(
                f"the imported network's circuit disagrees with its model on {summary['circuit_mismatches']} test "
                "samples; this is a bug in diffgates, please report it."
            )
    return {**summary, "run_dir": str(out)}


def to_model(net: Network, n_features: int, threshold: float = 0.5) -> LogicNet:
    """A diffgates model computing exactly ``net`` on ``n_features`` real features (eval mode)."""
    thresholds = np.array([[threshold]], np.float32) if net.thresholds is None else net.thresholds
    if thresholds.ndim == 1:
        thresholds = thresholds[None, :]
    rows = (1, net.image[0]) if net.image else (1, n_features)  # per channel of an image, or per feature
    if thresholds.ndim != 2 or thresholds.shape[0] not in rows:
        raise DiffgatesError(
            f"the binarisation's thresholds have shape {thresholds.shape}; one row for all features or one "
            f"per {'channel' if net.image else 'feature'} ({rows[1]}) is supported."
        )
    bits = thresholds.shape[1]
    if net.image:
        if math.prod(net.image) != n_features:
            raise DiffgatesError(
                f"the network's first convolution reads {net.image[0]} x {net.image[1]} x {net.image[2]} images, "
                f"but the dataset gives {n_features} features."
            )
        thresholds = np.repeat(thresholds, n_features // thresholds.shape[0], axis=0)  # channel-major features
    else:
        _check_reads(net.layers[0], n_features, bits)
    config = ModelConfig(
        n_features=n_features,
        n_classes=net.n_classes,
        widths=[len(layer.gates) for layer in net.layers],
        encoder_bits=bits,
        encoder_strategy="quantile",  # the thresholds themselves are state, set below
        parametrization="truth4",
        connections="random",
        tau=net.tau,
        image_shape=list(net.image) if net.image else None,
        conv=[block.spec for block in net.convs],
        tree_depth=net.convs[0].depth if net.convs else ModelConfig.tree_depth,
    )
    model = LogicNet(config)
    with torch.no_grad():
        model.encoder.thresholds_ = torch.as_tensor(np.broadcast_to(thresholds, (n_features, bits)).copy())
        for conv, src in zip(model.convs, net.convs):
            conv.weight.copy_(_truth4(src.gates.reshape(-1)))
            for name, value in (("leaf_channel", src.channel), ("leaf_dy", src.dy), ("leaf_dx", src.dx)):
                getattr(conv, name).copy_(torch.as_tensor(value))
        for layer, src in zip(model.layers, net.layers):
            layer.weight.copy_(_truth4(src.gates))
            layer.ia.copy_(torch.as_tensor(src.ia))
            layer.ib.copy_(torch.as_tensor(src.ib))
    if net.convs:
        _check_reads(net.layers[0], model.convs[-1].out_features, 1)
    return model.eval()


def _truth4(ids: np.ndarray) -> torch.Tensor:
    """truth4 weights selecting the gates ``ids`` with the residual initialisation's strength
    (sigmoid(+-3) is each table entry), and exactly those gates once discrete."""
    return weights_for(ids, "truth4", DEFAULT_RESIDUAL["truth4"])


def _check_reads(first, n_features: int, bits: int) -> None:
    low, top = first.reads()
    reads = top + 1
    if reads > n_features * bits or low < 0:
        raise DiffgatesError(
            f"the network's first dense layer reads {reads} inputs, but it is given {n_features} "
            f"feature{'s' if n_features > 1 else ''} x {bits} threshold{'s' if bits > 1 else ''} = {n_features * bits}."
        )


def _run_config(model: ModelConfig, dataset: str, data_dir: str | None) -> TrainConfig:
    """Options recording the imported architecture (``diffgates train --config`` would retrain it)."""
    keys = ("widths", "encoder_bits", "encoder_strategy", "parametrization", "connections", "image_shape", "conv")
    keys += ("tree_depth",) if model.conv else ()
    return TrainConfig.from_dict(
        {"dataset": dataset, "data_dir": data_dir, "tau": model.tau, **{k: getattr(model, k) for k in keys}},
        strict=False,
    )
