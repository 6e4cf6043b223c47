"""Named architectures: the convolutional LogicTreeNets of Petersen et al. (NeurIPS 2024) and
presets sized for a CPU. ``diffgates train --model NAME`` starts from one; explicit options win.

Paper architectures as published: CIFAR-10 has 4 blocks of k, 4k, 16k, 32k depth-3 trees over
3 x 3 fields (padding 1), each followed by 2 x 2 OR pooling, then dense layers of 1280k, 640k and
320k gates; MNIST has 3 blocks of k, 3k, 9k trees (5 x 5 then 3 x 3 fields, no padding; the
second and third pooling padded by 1), then 1280k, 640k and 320k gates. Training: AdamW, lr 0.02
(CIFAR) or 0.01 (MNIST), weight decay 0.002 (CIFAR), batch 128, the paper's tau per model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from .errors import DiffgatesError

#: defaults chosen by the shape of the data where the options leave them out: 28 x 28 greyscale
#: images (MNIST, Fashion-MNIST, or an .npz of them) get the dense Fashion-MNIST recipe
#: (BENCHMARKS.md: 87.09 % on Fashion-MNIST) instead of the digits-sized defaults
SHAPE_DEFAULTS = {784: {"widths": [8000] * 6, "encoder_bits": 3, "tau": 20.0, "epochs": 20}}


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    options: dict
    paper_gates: int | None = None
    paper_accuracy: float | None = None
    notes: str = ""
    measured: str = ""  # our discrete test accuracy with this preset, where we trained it (BENCHMARKS.md)

    def model_config(self, **overrides):
        """The preset's architecture as a :class:`~diffgates.nn.ModelConfig` (10 classes)."""
        from .nn.model import ModelConfig

        names = {f.name for f in fields(ModelConfig)}
        options = {k: v for k, v in self.options.items() if k in names}
        n_features = math.prod(self.options["image_shape"])
        return ModelConfig(n_features=n_features, n_classes=10, **{**options, **overrides})


def _mnist(name: str, k: int, tau: float, paper_gates: int, paper_acc: float) -> Preset:
    return Preset(
        name,
        f"LogicTreeNet MNIST, k={k}",
        {
            "dataset": "mnist",
            "image_shape": [1, 28, 28],
            "conv": [f"{k}:5:0:2:0", f"{3 * k}:3:0:2:1", f"{9 * k}:3:0:2:1"],
            "widths": [1280 * k, 640 * k, 320 * k],
            "encoder_strategy": "fixed",
            "encoder_thresholds": [0.5],
            "parametrization": "softmax16",
            "tau": tau,
            "lr": 0.01,
            "batch_size": 128,
        },
        paper_gates,
        paper_acc,
    )


def _cifar(name: str, k: int, tau: float, bits: int, paper_gates: int, paper_acc: float) -> Preset:
    thresholds = [round(i / (bits + 1), 6) for i in range(1, bits + 1)]
    return Preset(
        name,
        f"LogicTreeNet CIFAR-10, k={k}, {bits} thresholds per channel",
        {
            "dataset": "cifar10",
            "image_shape": [3, 32, 32],
            "conv": [f"{k}:3:1:2:0", f"{4 * k}:3:1:2:0", f"{16 * k}:3:1:2:0", f"{32 * k}:3:1:2:0"],
            "widths": [1280 * k, 640 * k, 320 * k],
            "encoder_strategy": "fixed",
            "encoder_thresholds": thresholds,
            "parametrization": "softmax16",
            "tau": tau,
            "lr": 0.02,
            "weight_decay": 0.002,
            "batch_size": 128,
            "random_crop": 4,
            "flip": 0.5,
        },
        paper_gates,
        paper_acc,
        "B/L/G in the paper also use fixed edge detectors and a teacher network, not reproduced here"
        if bits > 3
        else "",
    )


_FASHION = {
    "dataset": "fashion-mnist",
    "image_shape": [1, 28, 28],
    "encoder_strategy": "fixed",
    "encoder_thresholds": [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875],
    "parametrization": "truth4",
    "lr": 0.05,
    "lr_schedule": "cosine",
    "tau": 8.0,
    "batch_size": 128,
    "widths": [20480, 10240, 5120],
}

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        _mnist("mnist-s", 16, 6.5, 147_000, 0.9846),
        _mnist("mnist-m", 64, 28.0, 566_000, 0.9923),
        _mnist("mnist-l", 128, 35.0, 1_270_000, 0.9935),
        _cifar("cifar10-s", 32, 20.0, 3, 400_000, 0.6038),
        _cifar("cifar10-m", 256, 40.0, 3, 3_080_000, 0.7101),
        _cifar("cifar10-b", 512, 280.0, 31, 16_000_000, 0.8017),
        _cifar("cifar10-l", 1024, 340.0, 31, 28_900_000, 0.8499),
        _cifar("cifar10-g", 2048, 450.0, 31, 61_000_000, 0.8629),
        Preset(
            "fashion-conv-s",
            "Fashion-MNIST on a CPU: the MNIST-S layout, 7 thresholds, crop and flip (~10 min on 2 cores)",
            {
                **_FASHION,
                "conv": ["16:5:0:2:0", "48:3:0:2:1", "144:3:0:2:1"],
                "random_crop": 1,
                "flip": 0.5,
                "epochs": 30,
            },
        ),
        Preset(
            "fashion-conv",
            "Fashion-MNIST on a CPU: 3 padded blocks of 32, 64, 128 trees, 7 thresholds (~25 min on 2 cores)",
            {**_FASHION, "conv": ["32:3:1:2:0", "64:3:1:2:0", "128:3:1:2:1"], "epochs": 40},
            measured="88.24%",
        ),
    ]
}


def preset(name: str) -> Preset:
    if not isinstance(name, str) or name not in PRESETS:
        raise DiffgatesError(f"unknown model {name!r}; 'diffgates models' lists: {', '.join(PRESETS)}.")
    return PRESETS[name]
