"""A float CNN teacher for knowledge distillation: ``diffgates teacher`` trains one in minutes.

The paper's large CIFAR-10 models learn from a teacher network (Petersen et al., 2024). A small
conventional CNN is a far stronger teacher than the logic networks themselves (on Fashion-MNIST
it reaches about 93-94 % against their 88-89 %) and costs one short run instead of several logic
runs. Its run directory holds ``teacher.safetensors`` (weights and the architecture in the file's
metadata) and ``summary.json``; ``diffgates train --teacher RUN`` reads it like a logic run and
distils its logits (divided by ``--teacher-temperature``).

The network: per stage two 3 x 3 convolutions with batch norm and ReLU, then 2 x 2 max pooling;
then dropout, a hidden linear layer and the class scores. Trained with AdamW under a one-cycle
schedule, with random shifts and (optionally) horizontal flips of the images.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import VERSION, _atomic_save, _read
from .errors import DiffgatesError

FORMAT = "diffgates-teacher"
TEACHER_FILE = "teacher.safetensors"


@dataclass
class TeacherConfig:
    """The teacher's architecture and training options (stored with its weights)."""

    image_shape: list[int]
    n_classes: int
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    hidden: int = 256
    dropout: float = 0.3
    epochs: int = 15
    lr: float = 0.004
    weight_decay: float = 5e-4
    batch_size: int = 128
    shift: int = 2
    flip: float = 0.5
    seed: int = 0

    def check(self) -> TeacherConfig:
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise DiffgatesError(
                f"a teacher needs images: image_shape = channels,height,width, got {self.image_shape}."
            )
        if not self.channels or min(self.channels) < 1:
            raise DiffgatesError(f"teacher channels must be positive stage widths, got {self.channels}.")
        if min(self.epochs, self.batch_size, self.hidden) < 1 or self.lr <= 0:
            raise DiffgatesError("teacher epochs, batch size and hidden width must be positive, and lr > 0.")
        if self.shift < 0 or not 0 <= self.flip <= 1 or not 0 <= self.dropout < 1:
            raise DiffgatesError("teacher shift must be >= 0, flip a probability and dropout in [0, 1).")
        if min(self.image_shape[1:]) >> len(self.channels) < 1:
            raise DiffgatesError(
                f"{len(self.channels)} pooling stages do not fit a {self.image_shape[1]} x {self.image_shape[2]} image."
            )
        return self


class TeacherCNN(nn.Module):
    """Conventional CNN on raw features (batch, channels * height * width) -> class logits."""

    def __init__(self, config: TeacherConfig):
        super().__init__()
        self.config = config.check()
        c, h, w = config.image_shape
        layers: list[nn.Module] = []
        for width in config.channels:
            for _ in range(2):
                layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
                c = width
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(config.dropout),
            nn.Linear(c * h * w, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x.view(len(x), *self.config.image_shape)))

    @torch.no_grad()
    def logits(self, x: np.ndarray, batch: int = 2000) -> torch.Tensor:
        """(samples, classes) float32 logits in eval mode."""
        was = self.training
        self.eval()
        try:
            parts = [self(torch.as_tensor(x[i : i + batch], dtype=torch.float32)) for i in range(0, len(x), batch)]
            return torch.cat(parts) if parts else torch.zeros(0, self.config.n_classes)
        finally:
            self.train(was)


def augment_images(x: torch.Tensor, image_shape, shift: int, flip: float) -> torch.Tensor:
    """A random shift of up to ``shift`` pixels (zero fill) per batch and per-image flips."""
    n = len(x)
    img = x.view(n, *image_shape)
    if shift:
        dy, dx = (int(v) for v in torch.randint(-shift, shift + 1, (2,)))
        img = torch.roll(F.pad(img, (shift, shift, shift, shift)), (dy, dx), (2, 3))
        img = img[:, :, shift:-shift, shift:-shift]
    if flip:
        mask = torch.rand(n) < flip
        img = torch.where(mask.view(n, 1, 1, 1), img.flip(3), img)
    return img.reshape(n, -1)


def save_teacher(model: TeacherCNN, path: str | os.PathLike) -> None:
    meta = {"format": FORMAT, "version": str(VERSION), "config": json.dumps(asdict(model.config))}
    _atomic_save(model.state_dict(), Path(path), meta)


def load_teacher(path: str | os.PathLike) -> TeacherCNN:
    meta, state = _read(Path(path), FORMAT, "diffgates teacher", "train one with 'diffgates teacher'")
    model = TeacherCNN(TeacherConfig(**json.loads(meta["config"])))
    model.load_state_dict(state)
    return model.eval()


def accuracy(model: TeacherCNN, x: np.ndarray, y: np.ndarray) -> float:
    return float((model.logits(x).argmax(1).numpy() == y).mean())


def run_teacher(
    dataset: str,
    out: Path,
    overwrite: bool = False,
    quiet: bool = False,
    data_dir: str | None = None,
    image_shape: list[int] | None = None,
    **options,
) -> dict:
    """``diffgates teacher``: train a CNN teacher on ``dataset`` into the run directory ``out``
    (``options``: the TeacherConfig fields); returns its summary."""
    from .data import NAMED, image_shape_of, load_dataset
    from .outdir import staged

    ds = load_dataset(dataset, data_dir)
    shape = image_shape or image_shape_of(dataset)
    if shape is None:
        raise DiffgatesError(f"a CNN teacher needs images: give --image-shape C,H,W for dataset {ds.name}.")
    try:
        cfg = TeacherConfig(image_shape=list(shape), n_classes=ds.n_classes, **options).check()
    except TypeError as e:
        raise DiffgatesError(f"unknown teacher options: {e}.") from None
    data = [dataset] if dataset not in NAMED else []  # a file, or a folder of class folders
    with staged(out, overwrite, "teacher", inputs=[*data, data_dir]) as work:
        summary = train_teacher(cfg, ds, work, quiet=quiet)
    return {**summary, "dataset": ds.name}


def train_teacher(config: TeacherConfig, ds, out: Path, quiet: bool = False) -> dict:
    """Train on ``ds`` (a :class:`~diffgates.data.Dataset`), write ``out``; returns the summary."""
    from .outdir import write_json
    from .progress import progress_bar

    config.check()
    if math.prod(config.image_shape) != ds.n_features:
        raise DiffgatesError(
            f"image shape {config.image_shape} has {math.prod(config.image_shape)} values, "
            f"but {ds.name} has {ds.n_features} features."
        )
    torch.manual_seed(config.seed)
    model = TeacherCNN(config)
    x = torch.as_tensor(ds.x_train, dtype=torch.float32)
    y = torch.as_tensor(ds.y_train)
    steps = -(-len(y) // config.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr / 2, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.epochs * steps)
    metrics, t0 = [], time.perf_counter()
    with progress_bar(quiet) as bar:
        task = bar.add_task("teacher", total=config.epochs * steps)
        for epoch in range(1, config.epochs + 1):
            model.train()
            loss_sum = 0.0
            for idx in torch.randperm(len(y)).split(config.batch_size):
                batch = augment_images(x[idx], config.image_shape, config.shift, config.flip)
                loss = F.cross_entropy(model(batch), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedule.step()
                loss_sum += float(loss.detach()) * len(idx)
                bar.update(
                    task,
                    advance=1,
                    description=f"teacher epoch {epoch}/{config.epochs} loss {float(loss.detach()):.3f}",
                )
            row = {"epoch": epoch, "loss": loss_sum / len(y), "test_acc": accuracy(model, ds.x_test, ds.y_test)}
            metrics.append(row)
            bar.console.log(f"teacher epoch {epoch}: loss {row['loss']:.4f}  test {row['test_acc']:.4f}")
    save_teacher(model, out / TEACHER_FILE)
    summary = {
        "dataset": ds.name,
        "test_acc": metrics[-1]["test_acc"],
        "train_acc": accuracy(model, ds.x_train, ds.y_train),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": time.perf_counter() - t0,
        "metrics": metrics,
        **asdict(config),
    }
    write_json(out / "summary.json", summary)
    return summary
