"""Training loop: data -> encoder fit -> Adam on the relaxed network -> checkpoint + circuit.

A run directory holds ``config.yaml`` (resolved options), ``model.safetensors``,
``circuit.npz``, ``metrics.jsonl`` (one line per epoch) and ``summary.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import native
from .checkpoint import load_training_state, save_model, save_training_state
from .circuit import Circuit
from .circuit.execute import predict_counts
from .config import CONFIG_FILE, TrainConfig
from .data import Dataset, load_dataset
from .errors import DiffgatesError
from .nn.model import LogicNet, ModelConfig
from .progress import progress_bar


def build_model(cfg: TrainConfig, ds: Dataset) -> LogicNet:
    shared = {f.name for f in fields(ModelConfig)} & set(cfg.to_dict())  # architecture options
    mc = ModelConfig(n_features=ds.n_features, n_classes=ds.n_classes, **{k: getattr(cfg, k) for k in shared})
    if cfg.widths[-1] % ds.n_classes:
        raise DiffgatesError(
            f"the last layer's width {cfg.widths[-1]} must be a multiple of the {ds.n_classes} classes."
        )
    model = LogicNet(mc, engine=cfg.engine)
    model.encoder.fit(ds.x_train)
    return model


@torch.no_grad()
def accuracy(model: LogicNet, bits: torch.Tensor, y: torch.Tensor, training: bool, batch: int = 2048) -> float:
    """Accuracy in training mode (the network being optimised) or eval mode (discrete)."""
    was = model.training
    model.train(training)
    correct = 0
    for i in range(0, len(y), batch):
        scores = model.forward_bits(bits[i : i + batch].float())
        correct += int((scores.argmax(1) == y[i : i + batch]).sum())
    model.train(was)
    return correct / len(y)


def prepare_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DiffgatesError(
                f"run directory {out} already exists and is not empty; pick another --out or pass --overwrite."
            )
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise DiffgatesError(f"cannot write to run directory {out}: {e.strerror}.") from e


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


STATE_FILE = "train_state.safetensors"


def train(
    cfg: TrainConfig, out: str | os.PathLike, overwrite: bool = False, quiet: bool = False, resume: bool = False
) -> dict:
    """Train, evaluate relaxed/discrete/circuit, write the run directory; returns the summary.

    A training state is saved atomically every ``cfg.checkpoint_every`` steps and after every
    epoch; ``resume=True`` continues from it exactly (same batches, same numbers).
    """
    cfg.check()
    out = Path(out)
    ds = load_dataset(cfg.dataset, cfg.data_dir)
    if not resume:
        prepare_out_dir(out, overwrite)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise DiffgatesError("CUDA is not available on this machine (no GPU or a CPU-only torch); use --device cpu.")
    torch.manual_seed(cfg.seed)
    native.keep_freed_memory()
    device = torch.device(cfg.device)
    model = build_model(cfg, ds).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    gen = torch.Generator().manual_seed(cfg.seed)
    metrics_path = out / "metrics.jsonl"
    pos = {"epoch": 1, "step": 0, "loss_sum": 0.0, "correct": 0, "elapsed": 0.0, "metrics_lines": 0}
    epoch_gen_state = gen.get_state()
    if resume:
        pos, rng = load_training_state(out / STATE_FILE, model, opt)
        epoch_gen_state = rng["epoch_gen"]
        torch.set_rng_state(rng["torch"])
        lines = metrics_path.read_text().splitlines()[: pos["metrics_lines"]] if metrics_path.exists() else []
        metrics_path.write_text("".join(line + "\n" for line in lines))
    else:
        cfg.save(out / CONFIG_FILE)

    def checkpoint(next_pos: dict, gen_state: torch.Tensor) -> None:
        next_pos["elapsed"] = elapsed + time.perf_counter() - t_start
        rng = {"epoch_gen": gen_state, "torch": torch.get_rng_state()}
        save_training_state(out / STATE_FILE, model, opt, next_pos, rng)

    encode = lambda x: model.encoder(torch.as_tensor(x, device=device)).to(torch.uint8)  # noqa: E731
    xtr, xte = encode(ds.x_train), encode(ds.x_test)
    ytr = torch.as_tensor(ds.y_train, device=device)
    yte = torch.as_tensor(ds.y_test, device=device)
    n = len(ytr)
    steps = -(-n // cfg.batch_size)
    elapsed, t_start = pos["elapsed"], time.perf_counter()
    with progress_bar(quiet) as bar:
        task = bar.add_task("train", total=cfg.epochs * steps, completed=(pos["epoch"] - 1) * steps + pos["step"])
        for epoch in range(pos["epoch"], cfg.epochs + 1):
            model.train()
            t_epoch = time.perf_counter()
            gen.set_state(epoch_gen_state)
            perm = torch.randperm(n, generator=gen).to(device)
            first = pos["step"] if epoch == pos["epoch"] else 0
            loss_sum, correct = (pos["loss_sum"], pos["correct"]) if first else (0.0, 0)
            for s in range(first, steps):
                idx = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
                scores = model.forward_bits(xtr[idx].float())
                loss = F.cross_entropy(scores, ytr[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.item() * len(idx)
                correct += int((scores.argmax(1) == ytr[idx]).sum())
                bar.update(task, advance=1, description=f"epoch {epoch}/{cfg.epochs} loss {loss.item():.3f}")
                if cfg.checkpoint_every and (s + 1) % cfg.checkpoint_every == 0 and s + 1 < steps:
                    mid = {"epoch": epoch, "step": s + 1, "loss_sum": loss_sum, "correct": correct}
                    checkpoint({**mid, "metrics_lines": epoch - 1}, epoch_gen_state)
            epoch_seconds = time.perf_counter() - t_epoch
            row = {
                "epoch": epoch,
                "loss": loss_sum / n,
                "train_acc": correct / n,
                "test_acc_relaxed": accuracy(model, xte, yte, training=True),
                "test_acc_discrete": accuracy(model, xte, yte, training=False),
                "epoch_seconds": epoch_seconds,
            }
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            epoch_gen_state = gen.get_state()
            checkpoint(
                {"epoch": epoch + 1, "step": 0, "loss_sum": 0.0, "correct": 0, "metrics_lines": epoch}, epoch_gen_state
            )
            bar.console.log(
                f"epoch {epoch}: loss {row['loss']:.4f}  train {row['train_acc']:.4f}  "
                f"test relaxed {row['test_acc_relaxed']:.4f}  discrete {row['test_acc_discrete']:.4f}  "
                f"({epoch_seconds:.1f}s)"
            )
    train_seconds = elapsed + time.perf_counter() - t_start
    model.eval()
    save_model(model.cpu(), out / "model.safetensors")
    circuit = Circuit.from_model(model)
    circuit.save(out / "circuit.npz")
    summary = evaluate(model, circuit, ds)
    summary.update(
        {
            "dataset": ds.name,
            "parametrization": cfg.parametrization,
            "forward": cfg.forward,
            "widths": list(cfg.widths),
            "gates": model.n_gates,
            "epochs": cfg.epochs,
            "train_seconds": train_seconds,
            "seconds_per_epoch": train_seconds / cfg.epochs,
        }
    )
    write_json(out / "summary.json", summary)
    return summary


def throughput(circuit: Circuit, bits: np.ndarray, samples: int = 200_000) -> dict:
    """Circuit size after optimisation and executor speed (images/s, one thread, from input bits)."""
    from .circuit import program

    if not program.available():
        return {}
    t0 = time.perf_counter()
    ex = program.Executor(circuit, threads=1)
    prepare_s = time.perf_counter() - t0
    key = {(int(f), float(t)): j for j, (f, t) in enumerate(zip(circuit.in_feature, circuit.in_threshold))}
    used = np.array(
        [key[(int(f), float(t))] for f, t in zip(ex.circuit.in_feature, ex.circuit.in_threshold)], dtype=np.int64
    )
    tiled = np.ascontiguousarray(np.resize(bits[:, used], (samples, len(used))))
    best = min(_timed(lambda: ex.counts_from_bits(tiled)) for _ in range(3))
    return {"gates_optimised": ex.circuit.n_gates, "circuit_prepare_s": prepare_s, "circuit_img_per_s": samples / best}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@torch.no_grad()
def evaluate(model: LogicNet, circuit: Circuit, ds: Dataset) -> dict:
    """Test accuracy of the relaxed model, the discrete model and the circuit, plus agreement."""
    model = model.cpu()
    x = torch.as_tensor(ds.x_test)
    bits = model.encoder(x)
    y = torch.as_tensor(ds.y_test)
    model_counts = model.counts(x).numpy()
    circuit_counts = predict_counts(circuit, ds.x_test)
    mismatches = int((model_counts != circuit_counts).any(axis=1).sum())
    return {
        "test_acc_relaxed": accuracy(model, bits, y, training=True),
        "test_acc_discrete": float((model_counts.argmax(1) == ds.y_test).mean()),
        "test_acc_circuit": float((circuit_counts.argmax(1) == ds.y_test).mean()),
        "circuit_mismatches": mismatches,
        **throughput(circuit, bits.numpy().astype(np.uint8)),
        "test_samples": len(x),
    }
