"""Model checkpoints: safetensors tensors + the JSON model config in the file's metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import DiffgatesError
from .nn.ensemble import Ensemble
from .nn.model import LogicNet, ModelConfig

FORMAT = "diffgates-model"
ENSEMBLE_FORMAT = "diffgates-ensemble"  # every member's config in the metadata, tensors "members.i.*"
ENSEMBLE_FILE = "ensemble.json"  # marks a directory 'diffgates merge' wrote: dataset and member runs
VERSION = 1


def save_model(model: LogicNet | Ensemble, path: str | os.PathLike) -> None:
    """Write the model (or ensemble of models) atomically (temporary file, fsync, rename)."""
    if isinstance(model, Ensemble):
        configs = [m.config.to_dict() for m in model.members]
        meta = {"format": ENSEMBLE_FORMAT, "version": str(VERSION), "configs": json.dumps(configs)}
    else:
        meta = {"format": FORMAT, "version": str(VERSION), "config": json.dumps(model.config.to_dict())}
    _atomic_save({k: _narrow(v) for k, v in model.state_dict().items()}, Path(path), meta)


def _narrow(t: torch.Tensor) -> torch.Tensor:
    """Wiring indices as int32 (half the file; loading widens them back to the model's int64)."""
    if t.dtype == torch.int64 and (t.numel() == 0 or (t.min() >= -(2**31) and t.max() < 2**31)):
        return t.to(torch.int32)
    return t


def read_metadata(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def _read(path: Path, fmt: str | tuple[str, ...], what: str, missing: str) -> tuple[dict, dict]:
    """(metadata, tensors) of a safetensors file of format ``fmt`` (or one of several), with errors
    a user can act on."""
    if not path.is_file():
        raise DiffgatesError(f"no {what} at {path}; {missing}.")
    try:
        meta = read_metadata(path)
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise DiffgatesError(f"{path} is not a readable {what} (corrupt or truncated): {e}.") from e
    if meta.get("format") not in ((fmt,) if isinstance(fmt, str) else fmt):
        raise DiffgatesError(f"{path} is not a {what}.")
    version = meta.get("version", "0")
    if not version.isdigit():
        raise DiffgatesError(f"{path} is not a readable {what} (corrupt: its format version is {version!r}).")
    if int(version) > VERSION:
        raise DiffgatesError(f"{path} has format version {version}; upgrade diffgates to read it.")
    return meta, tensors


def load_model(path: str | os.PathLike, engine: str = "auto") -> LogicNet | Ensemble:
    """Rebuild a model (or an ensemble, as ``diffgates merge`` writes) from its checkpoint; never
    unpickles anything."""
    meta, state = _read(
        Path(path), (FORMAT, ENSEMBLE_FORMAT), "diffgates checkpoint", "train one with 'diffgates train'"
    )
    try:
        if meta["format"] == ENSEMBLE_FORMAT:
            model = Ensemble([LogicNet(ModelConfig(**c), engine=engine) for c in json.loads(meta["configs"])])
        else:
            model = LogicNet(ModelConfig(**json.loads(meta["config"])), engine=engine)
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DiffgatesError(f"{path} is not a valid diffgates checkpoint ({first.rstrip('.')}).") from e
    model.eval()
    return model


STATE_FORMAT = "diffgates-train-state"
STATE_FILE = "train_state.safetensors"  # a run's training state, beside its other files


def _atomic_save(tensors: dict, path: Path, meta: dict) -> None:
    """Temporary file, fsync, rename: a crash or a full disk never leaves a half-written file
    (the temporary name is the process's own, so two runs writing one file do not mix)."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_training_state(path: str | os.PathLike, model: LogicNet, opt, progress: dict, rng: dict) -> None:
    """Everything needed to continue a run exactly: weights, optimiser, RNG states, position."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_state = opt.state_dict()
    for pid, state in opt_state["state"].items():
        for name, value in state.items():
            tensors[f"opt.{pid}.{name}"] = torch.as_tensor(value)
    tensors.update({f"rng.{k}": v for k, v in rng.items()})
    meta = {
        "format": STATE_FORMAT,
        "version": str(VERSION),
        "config": json.dumps(model.config.to_dict()),
        "param_groups": json.dumps(opt_state["param_groups"]),
        "progress": json.dumps(progress),
    }
    _atomic_save(tensors, Path(path), meta)


def load_training_state(path: str | os.PathLike, model: LogicNet, opt) -> tuple[dict, dict]:
    """Restore model and optimiser in place; return (progress, rng tensors)."""
    meta, tensors = _read(
        Path(path), STATE_FORMAT, "diffgates training state", "the run has no checkpoint to resume from"
    )
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    return json.loads(meta["progress"]), rng


def keep_best(best: dict, score: float, epoch: int, model: LogicNet, path: Path, patience: int) -> bool:
    """With a validation split: save ``model`` to ``path`` when ``score`` beats ``best["best_val"]``
    (and note the epoch in ``best``); True when ``patience`` epochs (0: no limit) have passed
    since the best one."""
    if score > best["best_val"]:
        best.update(best_val=score, best_epoch=epoch)
        save_model(model, path)  # the best so far, kept at the end
        return False
    return bool(patience) and epoch - best["best_epoch"] >= patience
