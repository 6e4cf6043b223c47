"""Training loop: data -> encoder fit -> Adam on the relaxed network -> checkpoint + circuit.

A run directory holds ``config.yaml`` (resolved options), ``model.safetensors``,
``circuit.npz``, ``metrics.jsonl`` (one line per epoch) and ``summary.json``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import native, outdir
from .build import build_model, image_shape, start_from, take_trunk, with_trunk
from .checkpoint import STATE_FILE, keep_best, load_model, load_training_state, save_model, save_training_state
from .config import CONFIG_FILE, TrainConfig
from .data import NAMED, load_dataset
from .data.augment import augment_bits
from .distill import teacher_scores
from .errors import DiffgatesError, InternalError
from .evaluate import accuracy, evaluate
from .kernels import set_threads
from .nn import to_circuit
from .nn.cost import expected_gates
from .outdir import write_json
from .progress import progress_bar


class Distributed:
    """One process of a ``torchrun`` launch (gloo on CPU, NCCL on GPU), or the single process."""

    def __init__(self, rank: int = 0, world: int = 1, device: torch.device | None = None):
        self.rank, self.world, self.device = rank, world, device

    @classmethod
    def from_env(cls, device: str) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        import torch.distributed as tdist

        cuda = device.startswith("cuda")
        tdist.init_process_group("nccl" if cuda else "gloo")
        local = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else None
        return cls(tdist.get_rank(), tdist.get_world_size(), local)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[self.device] if self.device is not None else None)

    def sum(self, *values: torch.Tensor) -> list[float]:
        """Sums over all processes (the values themselves in a single process)."""
        t = torch.stack([v.double().cpu() for v in values])
        if self.world > 1:
            import torch.distributed as tdist

            tdist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as tdist

            tdist.barrier()

    def close(self) -> None:
        """Destroy the process group while the interpreter is whole: Gloo's worker threads left to
        interpreter exit can abort the process (SIGABRT, "terminate called without an active
        exception"). Whatever still holds the group (a DistributedDataParallel wrapper, its
        reducer's cycles) is collected first."""
        if self.world > 1:
            import gc

            import torch.distributed as tdist

            gc.collect()
            tdist.barrier()
            tdist.destroy_process_group()


def inputs_of(cfg: TrainConfig) -> list[str]:
    """The files and directories a training run reads (an --out must not replace them)."""
    data = [cfg.dataset] if cfg.dataset not in NAMED else []  # a file, or a folder of images
    return [*data, cfg.data_dir, cfg.trunk, cfg.init_from, *(cfg.teacher or [])]


def train(
    cfg: TrainConfig,
    out: str | os.PathLike,
    overwrite: bool = False,
    quiet: bool = False,
    resume: bool = False,
    inputs: tuple = (),
) -> dict:
    """Train, evaluate relaxed/discrete/circuit, write the run directory; returns the summary
    (``summary["run_dir"]``: where the run is).

    A training state is saved atomically every ``cfg.checkpoint_every`` steps and after every
    epoch; ``resume=True`` continues from it exactly (same batches, same numbers). Replacing an
    existing run (``overwrite``) trains in ``.NAME.partial`` beside it and swaps it in at the end,
    so the old run survives any failure; ``--resume .NAME.partial`` finishes such a run.
    """
    cfg.check().anchor_paths()
    if cfg.task != "classify":
        from .image.train import train_image

        return train_image(cfg, out, overwrite, quiet, [*inputs, *inputs_of(cfg)], resume)
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise DiffgatesError("CUDA is not available on this machine (no GPU or a CPU-only torch); use --device cpu.")
    out = Path(out)
    if not resume:  # refused before any work: an --out that would lose data
        replacing = outdir.check_output(out, overwrite, outdir.RUN_KINDS, [*inputs, *inputs_of(cfg)])
    set_threads(cfg.threads)  # before the teachers score the training set
    ds = load_dataset(cfg.dataset, cfg.data_dir)
    val = None  # (x, y) of the validation split
    if cfg.validation:
        ds, *val = ds.holdout(cfg.validation, cfg.seed)
    trunk = None
    if cfg.trunk and not resume:  # a resumed run's state holds the trunk's blocks already
        cfg, trunk = with_trunk(cfg, ds)
    taught = None  # scored before anything is written
    if cfg.teacher:
        taught = teacher_scores(cfg.teacher, ds, image_shape(cfg, ds), cfg.random_crop, cfg.flip, quiet)
    dist = Distributed.from_env(cfg.device)
    torch.manual_seed(cfg.seed)
    native.keep_freed_memory()
    device = dist.device or torch.device(cfg.device)
    model = build_model(cfg, ds)  # before the run directory: a bad architecture leaves nothing behind
    if trunk is not None:
        take_trunk(model, trunk)
    if cfg.init_from and not resume:
        start_from(model, Path(cfg.init_from))
    if not resume and dist.rank == 0:
        if replacing:
            out = outdir.start_partial(out, "run")
            if not quiet:
                print(f"training in {out}; it replaces {out.parent / outdir.marker(out)['replaces']} when complete")
        else:
            outdir.make_writable(out, "run")
    if dist.rank == 0:
        outdir.claim(out)
    dist.barrier()
    model = model.to(device)
    net = dist.wrap(model)  # the module that trains: DistributedDataParallel when launched by torchrun
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    gen = torch.Generator().manual_seed(cfg.seed)
    metrics_path = out / "metrics.jsonl"
    pos = {"epoch": 1, "step": 0, "loss_sum": 0.0, "correct": 0, "elapsed": 0.0, "metrics_lines": 0}
    best = {"best_val": -1.0, "best_epoch": 0}  # with --validation: the epoch kept in model.safetensors
    epoch_gen_state = gen.get_state()
    if resume:
        pos, rng = load_training_state(out / STATE_FILE, model, opt)
        best = {k: pos.get(k, v) for k, v in best.items()}
        epoch_gen_state = rng["epoch_gen"]
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and device.type == "cuda":  # Gumbel noise is drawn on the GPU there
            torch.cuda.set_rng_state(rng["cuda"], device)
        lines = metrics_path.read_text().splitlines()[: pos["metrics_lines"]] if metrics_path.exists() else []
        metrics_path.write_text("".join(line + "\n" for line in lines))
    elif dist.rank == 0:
        cfg.save(out / CONFIG_FILE)

    def checkpoint(next_pos: dict, gen_state: torch.Tensor) -> None:
        if dist.rank != 0:
            return
        next_pos.update({"elapsed": elapsed + time.perf_counter() - t_start, **best})
        rng = {"epoch_gen": gen_state, "torch": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        save_training_state(out / STATE_FILE, model, opt, next_pos, rng)

    encode = lambda x: model.encoder(torch.as_tensor(x, device=device)).to(torch.uint8)  # noqa: E731
    xtr, xte = encode(ds.x_train), encode(ds.x_test)
    ytr = torch.as_tensor(ds.y_train, device=device)
    soft = None if taught is None else torch.softmax(taught / cfg.teacher_temperature, -1).to(device)
    yte = torch.as_tensor(ds.y_test, device=device)
    if val is not None:
        xva, yva = encode(val[0]), torch.as_tensor(val[1], device=device)
    n = len(ytr)
    steps = -(-n // cfg.batch_size)
    elapsed, t_start = pos["elapsed"], time.perf_counter()
    # why training ended before --epochs ("time budget" or "patience"); a resumed run that had
    # stopped so trains no further
    stopped = pos.get("stopped")
    epoch = pos["epoch"] - 1  # the last epoch trained
    final = epoch if stopped else cfg.epochs  # the last epoch to train
    with progress_bar(quiet or dist.rank != 0) as bar:
        task = bar.add_task("train", total=cfg.epochs * steps, completed=(pos["epoch"] - 1) * steps + pos["step"])
        for epoch in range(pos["epoch"], final + 1):
            model.train()
            t_epoch = time.perf_counter()
            gen.set_state(epoch_gen_state)
            perm = torch.randperm(n, generator=gen).to(device)
            first = pos["step"] if epoch == pos["epoch"] else 0
            loss_sum, correct = (pos["loss_sum"], pos["correct"]) if first else (0.0, 0)
            for s in range(first, steps):
                batch = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
                idx = batch[dist.rank :: dist.world]  # this process's share of the global batch
                bits = xtr[idx]
                target = idx
                if cfg.random_crop or cfg.flip:
                    shape = model.config.image_shape
                    bits, v = augment_bits(bits, shape, model.encoder.n_bits, cfg.random_crop, cfg.flip, True)
                    target = (idx, v)  # the teacher's scores of the variant the student sees
                scores = net(bits.float(), encoded=True)
                # sum over the share / global batch size, times world: DDP's gradient average is
                # then exactly the gradient of the mean loss over the whole global batch
                loss = F.cross_entropy(scores, ytr[idx], reduction="sum")
                if soft is not None:  # cross-entropy against the teacher's probabilities (KL + a constant)
                    w = cfg.distill_weight
                    loss = (1 - w) * loss + w * F.cross_entropy(scores, soft[target], reduction="sum")
                loss = loss * (dist.world / len(batch))
                objective = loss
                if cfg.gate_cost:  # the same on every process, so DDP's average keeps it
                    objective = loss + cfg.gate_cost * expected_gates(model) / model.n_gates
                opt.zero_grad(set_to_none=True)
                objective.backward()
                now = None
                if cfg.time_budget:  # the processes' mean time, so all of them stop at the same step
                    now = dist.sum(torch.tensor(elapsed + time.perf_counter() - t_start))[0] / dist.world
                cfg.set_rate(opt, ((epoch - 1) * steps + s) / (cfg.epochs * steps), now)
                opt.step()
                step_loss, step_correct = dist.sum(
                    loss.detach() / dist.world * len(batch), (scores.argmax(1) == ytr[idx]).sum()
                )
                loss_sum += step_loss
                correct += int(step_correct)
                bar.update(task, advance=1, description=f"epoch {epoch}/{cfg.epochs} loss {step_loss / len(batch):.3f}")
                if cfg.time_budget and now >= cfg.time_budget:
                    stopped, steps_done = "time budget", s + 1
                    break
                if cfg.checkpoint_every and (s + 1) % cfg.checkpoint_every == 0 and s + 1 < steps:
                    mid = {"epoch": epoch, "step": s + 1, "loss_sum": loss_sum, "correct": correct}
                    checkpoint({**mid, "metrics_lines": epoch - 1}, epoch_gen_state)
            else:
                steps_done = steps
            epoch_seconds = time.perf_counter() - t_epoch
            epoch_gen_state = gen.get_state()
            if dist.rank != 0:  # only the first process evaluates and writes
                dist.barrier()
                if stopped:
                    break
                continue
            seen = min(n, steps_done * cfg.batch_size)
            row = {
                "epoch": epoch,
                "loss": loss_sum / seen,
                "train_acc": correct / seen,
                "test_acc_relaxed": accuracy(model, xte, yte, training=True),
                "test_acc_discrete": accuracy(model, xte, yte, training=False),
                "live_gates": round(float(expected_gates(model, discrete=True))),
                "epoch_seconds": epoch_seconds,
                "elapsed_seconds": elapsed + time.perf_counter() - t_start,
            }
            if stopped:
                row["partial"] = seen / n
            if val is not None:
                row["val_acc_discrete"] = accuracy(model, xva, yva, training=False)
                if keep_best(best, row["val_acc_discrete"], epoch, model, out / "model.safetensors", cfg.patience):
                    stopped = "patience"
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            done = {"epoch": epoch + 1, "step": 0, "loss_sum": 0.0, "correct": 0, "metrics_lines": epoch}
            checkpoint({**done, "stopped": stopped}, epoch_gen_state)
            bar.console.log(
                f"epoch {epoch}: loss {row['loss']:.4f}  train {row['train_acc']:.4f}  "
                f"test relaxed {row['test_acc_relaxed']:.4f}  discrete {row['test_acc_discrete']:.4f}  "
                + (f"validation {row['val_acc_discrete']:.4f}  " if val is not None else "")
                + f"({epoch_seconds:.1f}s)"
                + (f"; stopped: {stopped}" if stopped else "")
            )
            dist.barrier()
            if stopped:
                break
    train_seconds = elapsed + time.perf_counter() - t_start
    del net  # DistributedDataParallel holds the process group: released before it is destroyed
    dist.close()
    if dist.rank != 0:
        return {}
    model.eval()
    if val is not None:  # the best validation epoch, saved when it ended
        model.load_state_dict(load_model(out / "model.safetensors").state_dict())
    save_model(model.cpu(), out / "model.safetensors")
    circuit = to_circuit(model)
    circuit.save(out / "circuit.npz")
    summary = evaluate(model, circuit, ds)
    summary.update(
        {
            "dataset": ds.name,
            "parametrization": cfg.parametrization,
            "forward": cfg.forward,
            "widths": list(cfg.widths),
            "conv": list(cfg.conv),
            "gates": model.n_gates,
            "epochs": cfg.epochs,
            "epochs_run": epoch,
            "stopped": stopped,
            "train_seconds": train_seconds,
            "seconds_per_epoch": train_seconds / max(epoch, 1),
        }
    )
    if val is not None:
        summary.update(validation_samples=len(val[1]), val_acc_discrete=best["best_val"], best_epoch=best["best_epoch"])
    write_json(out / "summary.json", summary)
    if summary["circuit_mismatches"]:  # a run that failed its proof does not replace a good one
        raise InternalError(
            f"the extracted circuit disagrees with the model on {summary['circuit_mismatches']} test samples "
            f"(the run is in {out}); this is a bug in diffgates, please report it."
        )
    summary["run_dir"] = str(outdir.finish(out))
    return summary
