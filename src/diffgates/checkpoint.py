"""Model checkpoints: safetensors tensors + the JSON model config in the file's metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import DiffgatesError
from .nn.model import LogicNet, ModelConfig

FORMAT = "diffgates-model"
VERSION = 1


def save_model(model: LogicNet, path: str | os.PathLike) -> None:
    """Write the model atomically (temporary file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "version": str(VERSION), "config": json.dumps(model.config.to_dict())}
    save_file(state, str(tmp), metadata=meta)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_metadata(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def load_model(path: str | os.PathLike, engine: str = "auto") -> LogicNet:
    """Rebuild a model from its checkpoint; never unpickles anything."""
    path = Path(path)
    if not path.is_file():
        raise DiffgatesError(f"no model checkpoint at {path}; train one with 'diffgates train'.")
    try:
        meta = read_metadata(path)
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise DiffgatesError(f"{path} is not a readable diffgates checkpoint (corrupt or truncated): {e}.") from e
    if meta.get("format") != FORMAT:
        raise DiffgatesError(f"{path} is not a diffgates model checkpoint.")
    if int(meta.get("version", "0")) > VERSION:
        raise DiffgatesError(f"{path} has format version {meta['version']}; upgrade diffgates to read it.")
    model = LogicNet(ModelConfig(**json.loads(meta["config"])), engine=engine)
    model.load_state_dict(state)
    model.eval()
    return model
