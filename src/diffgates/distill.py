"""Knowledge distillation: the teachers' class scores on the training set (logic runs through
their circuits, CNN teachers through their logits), cached between runs."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from .checkpoint import _atomic_save
from .circuit import Circuit, predict_counts
from .data import Dataset
from .data.augment import n_variants, variants
from .errors import DiffgatesError
from .paths import cache_dir
from .progress import progress_bar


def _teacher(run: str):
    """(features, classes, scores of raw features, weights file) of one teacher run: a logic
    run's circuit (counts / tau) or a ``diffgates teacher`` CNN (logits)."""
    from .teacher import TEACHER_FILE, load_teacher

    if (Path(run) / TEACHER_FILE).is_file():
        cnn = load_teacher(Path(run) / TEACHER_FILE)
        return math.prod(cnn.config.image_shape), cnn.config.n_classes, cnn.logits, Path(run) / TEACHER_FILE
    path = Path(run) / "circuit.npz"
    if not path.is_file():
        raise DiffgatesError(f"teacher {run} is neither a finished run (no circuit.npz) nor a 'diffgates teacher' run.")
    circuit = Circuit.load(path)
    score = lambda x: torch.as_tensor(predict_counts(circuit, x), dtype=torch.float32) / circuit.tau  # noqa: E731
    return circuit.n_features, circuit.n_classes, score, path


def teacher_scores(
    runs: list[str], ds: Dataset, image_shape=None, crop: int = 0, flip: float = 0.0, quiet: bool = True
) -> torch.Tensor:
    """float32 class scores of the teachers on the training set, averaged over the runs: the soft
    targets of knowledge distillation. (n_train, classes) without augmentation; with a crop or
    flip (n_train, n_variants, classes), every image scored in every variant of
    :mod:`diffgates.data.augment`, so the student learns the scores of the image it sees.

    Scoring every variant takes minutes for a CNN, so the table is cached (:func:`cache_dir`)
    under a hash of the teachers' files, the training images and the augmentation."""
    teachers = [_teacher(run) for run in runs]  # every run is checked before any is scored
    for run, (n_features, n_classes, _, _) in zip(runs, teachers):
        if n_features != ds.n_features or n_classes != ds.n_classes:
            raise DiffgatesError(
                f"teacher {run} takes {n_features} features into {n_classes} classes, "
                f"but {ds.name} has {ds.n_features} and {ds.n_classes}."
            )
    augmented = bool(crop or flip)
    x = np.ascontiguousarray(ds.x_train, dtype=np.float32)
    key = hashlib.sha256(repr((augmented and tuple(image_shape), crop, bool(flip))).encode())
    for *_, path in teachers:
        key.update(hashlib.sha256(path.read_bytes()).digest())
    key.update(x)  # the array's buffer, without a copy
    where = cache_dir()
    cached = where and where / "teacher-scores" / f"{key.hexdigest()[:32]}.safetensors"
    if cached and cached.is_file():
        return load_file(str(cached))["scores"]
    if not augmented:
        table = sum(score(x) for _, _, score, _ in teachers) / len(teachers)
    else:
        table = torch.empty(len(x), n_variants(crop, flip), ds.n_classes)
        with progress_bar(quiet) as bar:
            task = bar.add_task("teacher scores", total=n_variants(crop, flip))
            for v, xv in variants(torch.from_numpy(x), image_shape, crop, flip):
                table[:, v] = sum(score(xv.numpy()) for _, _, score, _ in teachers) / len(teachers)
                bar.update(task, advance=1)
    if cached:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            _atomic_save({"scores": table}, cached, {"format": "diffgates-teacher-scores"})
        except OSError:  # a read-only cache only costs the time to score again
            pass
    return table
