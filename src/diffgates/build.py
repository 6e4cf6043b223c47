"""Building the model a training run starts from: architecture from the options and the data, a
trained trunk's blocks, or another run's weights."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from .config import TrainConfig
from .data import Dataset, image_shape_of
from .errors import DiffgatesError
from .nn.model import LogicNet, ModelConfig


def image_shape(cfg: TrainConfig, ds: Dataset) -> list[int] | None:
    """The images' (channels, height, width): given, or known for the dataset when convolutions
    or augmentation need it."""
    if cfg.image_shape or not (cfg.conv or cfg.random_crop or cfg.flip):
        return cfg.image_shape
    shape = image_shape_of(cfg.dataset)
    if shape is None:
        raise DiffgatesError(f"convolutions and augmentation need --image-shape C,H,W for dataset {ds.name}.")
    return list(shape)


def model_config(cfg: TrainConfig, n_features: int, n_classes: int) -> ModelConfig:
    """The architecture the training options describe, for this many features and outputs."""
    shared = {f.name for f in fields(ModelConfig)} & set(cfg.to_dict())  # architecture options
    return ModelConfig(n_features=n_features, n_classes=n_classes, **{k: getattr(cfg, k) for k in shared})


def build_model(cfg: TrainConfig, ds: Dataset) -> LogicNet:
    mc = model_config(cfg, ds.n_features, ds.n_classes)
    mc.image_shape = image_shape(cfg, ds)
    mc.frozen_blocks = cfg.trunk_blocks if cfg.trunk else 0
    model = LogicNet(mc, engine=cfg.engine)  # refuses a last width that is no multiple of the classes
    model.encoder.fit(ds.x_train)
    return model


#: what a trunk's blocks and encoder are made of: taken from the trunk run, whatever the options say
TRUNK_OPTIONS = (
    "image_shape",
    "tree_depth",
    "conv_groups",
    "tree_channels",
    "encoder_bits",
    "encoder_strategy",
    "encoder_thresholds",
    "parametrization",
)


def with_trunk(cfg: TrainConfig, ds: Dataset) -> tuple[TrainConfig, LogicNet]:
    """``cfg`` with the architecture of its ``--trunk`` run's first ``trunk_blocks`` convolution
    blocks and encoder, and that run's model (whose blocks :func:`take_trunk` copies)."""
    from .checkpoint import load_model

    path = Path(cfg.trunk) / "model.safetensors"
    if not path.is_file():
        raise DiffgatesError(f"--trunk {cfg.trunk} is not a finished run directory (no model.safetensors).")
    trunk = load_model(path)
    mc = trunk.config
    if not mc.conv:
        raise DiffgatesError(f"--trunk {cfg.trunk} has no convolution blocks to keep.")
    n = cfg.trunk_blocks or len(mc.conv)
    if n > len(mc.conv):
        raise DiffgatesError(f"--trunk-blocks {n}: {cfg.trunk} has {len(mc.conv)} convolution blocks.")
    if mc.n_features != ds.n_features:
        raise DiffgatesError(f"--trunk {cfg.trunk} reads {mc.n_features} features, but {ds.name} has {ds.n_features}.")
    taken = {k: getattr(mc, k) for k in TRUNK_OPTIONS}
    return TrainConfig.from_dict({**cfg.to_dict(), **taken, "conv": list(mc.conv[:n]), "trunk_blocks": n}), trunk


def take_trunk(model: LogicNet, trunk: LogicNet) -> None:
    """Copy the encoder and the first ``model.config.frozen_blocks`` convolution blocks of ``trunk``."""
    model.encoder.load_state_dict(trunk.encoder.state_dict())
    for ours, theirs in zip(model.convs[: model.config.frozen_blocks], trunk.convs):
        ours.load_state_dict(theirs.state_dict())


def start_from(model: LogicNet, run: Path) -> None:
    """Copy another run's weights, wiring and encoder into ``model`` (the shapes must match)."""
    from .checkpoint import load_model

    state = load_model(run / "model.safetensors").state_dict()
    ours = model.state_dict()
    if state.keys() != ours.keys() or any(state[k].shape != ours[k].shape for k in ours):
        raise DiffgatesError(f"--init-from {run}: its model has another architecture; give the same layers.")
    model.load_state_dict(state)
