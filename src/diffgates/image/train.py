"""Training image-to-image logic networks (``diffgates train --task superres|denoise``).

The network is a dense logic network applied at every pixel: it reads the pixel's ``patch x
patch`` window of the input (thermometer-coded), and its last layer holds one group of gates per
output pixel (``scale x scale`` of them for super-resolution, one for denoising). An output value
is its group's count of ones over the group size, trained with the mean squared error through the
relaxed gates; the discrete network and its circuit compute the same integer counts.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import gates, native, outdir
from ..build import model_config, start_from
from ..checkpoint import STATE_FILE, keep_best, load_model, load_training_state, save_model, save_training_state
from ..config import CONFIG_FILE, TrainConfig
from ..data import holdout_indices
from ..errors import DiffgatesError, InternalError
from ..kernels import set_threads
from ..nn import parametrization as P
from ..nn import to_circuit
from ..nn.model import LogicNet
from ..outdir import write_json
from ..progress import progress_bar
from .apply import circuit_predictor, denoise_classic, psnr, reconstruct, ssim, stretch, upscale_classic
from .data import factor, load_images, pair, test_inputs, windows

#: test images scored after every epoch (all of them at the end)
WATCH_IMAGES = 300


def build_image_model(cfg: TrainConfig) -> LogicNet:
    s = factor(cfg.task, cfg.scale)
    outputs = s * s
    if cfg.widths[-1] % outputs:
        raise DiffgatesError(
            f"the last layer's width {cfg.widths[-1]} must be a multiple of the {outputs} output pixels per position."
        )
    mc = model_config(cfg, cfg.patch * cfg.patch, outputs)
    mc.tau = float(cfg.widths[-1] // outputs)  # scores = count / group size: values in [0, 1]
    mc.skip_feature = cfg.patch * cfg.patch // 2  # the output gates read the centre pixel's bits
    mc.argmax = False  # outputs are pixel values, not classes
    model = LogicNet(mc, engine=cfg.engine)
    if cfg.output_span != 1:
        start_as_nearest(model.layers[-1], model.encoder.n_bits, outputs, cfg.output_span, mc.residual_strength)
    return model


@torch.no_grad()
def start_as_nearest(layer, n_bits: int, outputs: int, span: float, strength: float | None) -> None:
    """Initialise an output layer whose values are stretched by ``span`` so that it starts as
    nearest-neighbour upscaling, as a layer without the stretch does: in each group the first
    1 / span of the gates pass input A (the centre pixel's thresholds, in turn) through, the next
    (span - 1) / (2 span) are TRUE, cancelling the stretch's offset, and the rest FALSE. Training
    then turns them into whatever the image needs."""
    per = layer.out_features // outputs
    q = torch.arange(layer.out_features) % per
    n_pass, n_true = round(per / span), round(per * (span - 1) / (2 * span))
    ids = torch.where(q < n_pass, gates.A, torch.where(q < n_pass + n_true, gates.TRUE, gates.FALSE))
    s = strength if strength is not None else P.DEFAULT_RESIDUAL[layer.options.parametrization]
    layer.weight.copy_(P.weights_for(ids, layer.options.parametrization, s))


class Windows:
    """Random training windows and their targets, drawn from images of any sizes.

    ``centred``: a ``patch x patch`` window around every pixel (edges repeated), its target the
    pixel's ``s x s`` output block. Otherwise windows lie wholly inside the image and their
    targets are the whole ``patch * s`` square they map to (training a convolutional network)."""

    def __init__(self, inputs: list[np.ndarray], truths: list[np.ndarray], patch: int, s: int, centred: bool = True):
        self.patch, self.s, self.out = patch, s, s if centred else patch * s
        r = patch // 2 if centred else 0
        shapes: dict[tuple, list[int]] = {}
        for i, img in enumerate(inputs):
            if centred or min(img.shape) >= patch:
                shapes.setdefault(img.shape, []).append(i)
        self.groups = []  # (inputs (n, H, W) padded for centred windows, truths) of same-sized images
        for idx in shapes.values():
            x = np.pad(np.stack([inputs[i] for i in idx]), ((0, 0), (r, r), (r, r)), mode="edge")
            self.groups.append((x, np.stack([truths[i] for i in idx])))
        sizes = [x.shape[0] * (x.shape[1] - patch + 1) * (x.shape[2] - patch + 1) for x, _ in self.groups]
        self.weights = np.array(sizes, dtype=np.float64) / sum(sizes)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(windows (n, patch * patch), targets (n, out * out))."""
        k, s = self.patch, self.s
        xs, ts = [], []
        for (images, truth), m in zip(self.groups, rng.multinomial(n, self.weights)):
            if not m:
                continue
            i = rng.integers(0, images.shape[0], m)
            y = rng.integers(0, images.shape[1] - k + 1, m)
            x = rng.integers(0, images.shape[2] - k + 1, m)
            xs.append(_blocks_at(images, i, y, x, k))
            ts.append(_blocks_at(truth, i, y * s, x * s, self.out))
        return np.concatenate(xs).reshape(n, k * k), np.concatenate(ts).reshape(n, self.out * self.out)


def _blocks_at(images: np.ndarray, i: np.ndarray, y: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    """The k x k blocks of ``images[i]`` whose top-left corners are (y, x): (n, k, k)."""
    d = np.arange(k)
    return images[i[:, None, None], y[:, None, None] + d[None, :, None], x[:, None, None] + d[None, None, :]]


def score(outputs: list[np.ndarray], truths: list[np.ndarray]) -> dict:
    return {
        "psnr": float(np.mean([psnr(t, o) for t, o in zip(truths, outputs)])),
        "ssim": float(np.mean([ssim(t, o) for t, o in zip(truths, outputs)])),
    }


def circuit_score(cfg: TrainConfig, predict, group: int, pairs: list) -> dict:
    """:func:`score` of the circuit (``predict``, groups of ``group`` gates) over (input, truth) pairs."""
    s = factor(cfg.task, cfg.scale)
    outputs = [reconstruct(predict, lr, cfg.patch, s, group, span=cfg.output_span) for lr, _ in pairs]
    return score(outputs, [hr for _, hr in pairs])


def baselines(cfg: TrainConfig, inputs: list[np.ndarray], truths: list[np.ndarray]) -> dict:
    """PSNR and SSIM of the classical methods on the same test images."""
    if cfg.task == "superres":
        names = ("nearest", "bilinear", "bicubic")
        methods = {m: (lambda img, m=m: upscale_classic(img, cfg.scale, m)) for m in names}
    else:
        methods = {"noisy input": lambda img: img, "median 3x3": lambda img: denoise_classic(img, "median")}
        for sigma in (0.5, 0.8, 1.2):
            methods[f"gaussian {sigma}"] = lambda img, sigma=sigma: denoise_classic(img, f"gaussian:{sigma}")
    return {name: score([f(img) for img in inputs], truths) for name, f in methods.items()}


def train_image(
    cfg: TrainConfig,
    out: str | os.PathLike,
    overwrite: bool = False,
    quiet: bool = False,
    inputs: tuple = (),
    resume: bool = False,
) -> dict:
    """Train an image network, evaluate it and its circuit on the test images against the
    classical baselines, write the run directory; returns the summary. A training state is saved
    after every epoch; ``resume=True`` continues from it exactly (the same windows, the same
    numbers). With ``cfg.validation`` whole training images are held out, and the epoch whose
    circuit has the best PSNR on them is the one kept; ``cfg.time_budget`` ends training early."""
    cfg.check()
    out = Path(out)
    # refused before any work: an --out that would lose data (a resumed run continues in place)
    replacing = not resume and outdir.check_output(out, overwrite, outdir.RUN_KINDS, [*inputs, cfg.data_dir])
    set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    native.keep_freed_memory()
    rng = np.random.default_rng(cfg.seed)
    s = factor(cfg.task, cfg.scale)
    train_imgs, test_imgs = load_images(cfg.dataset, cfg.data_dir, min_side=s)
    val_pairs = []  # with --validation: (input, truth) of the held-out training images
    if cfg.validation:
        keep, held = holdout_indices(len(train_imgs), cfg.validation, cfg.seed, "training images")
        val_rng = np.random.default_rng([cfg.seed, 1])  # their noise does not depend on the training's
        val_pairs = [pair(train_imgs[i], cfg.task, cfg.scale, cfg.noise, val_rng) for i in held]
        train_imgs = [train_imgs[i] for i in keep]
    train_pairs = [pair(img, cfg.task, cfg.scale, cfg.noise, rng) for img in train_imgs]
    test_pairs = test_inputs(cfg.task, cfg.scale, cfg.noise, cfg.seed, cfg.dataset, images=test_imgs)
    draw = Windows([p[0] for p in train_pairs], [p[1] for p in train_pairs], cfg.patch, s)
    model = build_image_model(cfg)
    model.encoder.fit(draw.sample(min(cfg.patch_samples, 100_000), np.random.default_rng(cfg.seed))[0])
    if cfg.init_from and not resume:  # weights, wiring and encoder of an earlier run of this architecture
        start_from(model, Path(cfg.init_from))
    if replacing:
        out = outdir.start_partial(out, "run")
    elif not resume:
        outdir.make_writable(out, "run")
    outdir.claim(out)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    metrics_path = out / "metrics.jsonl"
    first, elapsed = 1, 0.0
    best = {"best_val": -1.0, "best_epoch": 0}  # with --validation: the epoch kept in model.safetensors (PSNR >= 0)
    if resume:
        pos, saved = load_training_state(out / STATE_FILE, model, opt)
        first, elapsed = pos["epoch"], pos["elapsed"]
        best = {k: pos.get(k, v) for k, v in best.items()}
        rng.bit_generator.state = pos["windows_rng"]  # the training pairs above drew from it too
        torch.set_rng_state(saved["torch"])
        lines = metrics_path.read_text().splitlines()[: pos["epoch"] - 1] if metrics_path.exists() else []
        metrics_path.write_text("".join(line + "\n" for line in lines))
    else:
        cfg.save(out / CONFIG_FILE)
    group = int(model.head.tau)
    watch = test_pairs[:WATCH_IMAGES]
    steps = -(-cfg.patch_samples // cfg.batch_size)
    t_start = time.perf_counter()
    # why training ended before --epochs ("time budget" or "patience"); a resumed run that had
    # stopped so trains no further
    stopped = pos.get("stopped") if resume else None
    epoch = first - 1  # the last epoch trained
    final = epoch if stopped else cfg.epochs  # the last epoch to train
    with progress_bar(quiet) as bar:
        task = bar.add_task("train", total=cfg.epochs * steps, completed=(first - 1) * steps)
        for epoch in range(first, final + 1):
            model.train()
            t_epoch = time.perf_counter()
            x, t = draw.sample(cfg.patch_samples, rng)
            bits = model.encoder(torch.as_tensor(x)).float()
            target = torch.as_tensor(t)
            loss_sum, seen = 0.0, 0
            for step in range(steps):
                sl = slice(step * cfg.batch_size, (step + 1) * cfg.batch_size)
                pred = model(bits[sl], encoded=True)
                if cfg.output_span != 1:
                    pred = (pred - 0.5) * cfg.output_span + 0.5
                loss = F.mse_loss(pred, target[sl])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                now = elapsed + time.perf_counter() - t_start
                cfg.set_rate(opt, ((epoch - 1) * steps + step) / (cfg.epochs * steps), now)
                opt.step()
                value = float(loss.detach())
                loss_sum += value * len(target[sl])
                seen += len(target[sl])
                bar.update(task, advance=1, description=f"epoch {epoch}/{cfg.epochs} mse {value:.5f}")
                if cfg.time_budget and now >= cfg.time_budget:
                    stopped = "time budget"
                    break
            epoch_seconds = time.perf_counter() - t_epoch
            model.eval()
            predict = circuit_predictor(to_circuit(model), cfg.threads)
            row = {"epoch": epoch, "loss": loss_sum / seen, "epoch_seconds": epoch_seconds}
            row.update({f"test_{k}": v for k, v in circuit_score(cfg, predict, group, watch).items()})
            row["elapsed_seconds"] = elapsed + time.perf_counter() - t_start
            if stopped:
                row["partial"] = seen / cfg.patch_samples
            if val_pairs:
                row.update({f"val_{k}": v for k, v in circuit_score(cfg, predict, group, val_pairs).items()})
                if keep_best(best, row["val_psnr"], epoch, model, out / "model.safetensors", cfg.patience):
                    stopped = "patience"
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            progress = {"epoch": epoch + 1, "elapsed": elapsed + time.perf_counter() - t_start, "stopped": stopped}
            progress.update(best)
            progress["windows_rng"] = rng.bit_generator.state
            save_training_state(out / STATE_FILE, model, opt, progress, {"torch": torch.get_rng_state()})
            bar.console.log(
                f"epoch {epoch}: mse {row['loss']:.5f}  test PSNR {row['test_psnr']:.2f} dB  "
                f"SSIM {row['test_ssim']:.4f} (first {len(watch)} images)  "
                + (f"validation PSNR {row['val_psnr']:.2f} dB  " if val_pairs else "")
                + f"({epoch_seconds:.1f}s)"
                + (f"; stopped: {stopped}" if stopped else "")
            )
            if stopped:
                break
    train_seconds = elapsed + time.perf_counter() - t_start
    model.eval()
    if val_pairs:  # the best validation epoch, saved when it ended
        model.load_state_dict(load_model(out / "model.safetensors").state_dict())
    save_model(model, out / "model.safetensors")
    circuit = to_circuit(model)
    circuit.save(out / "circuit.npz")
    summary = evaluate_image(cfg, model, circuit, test_pairs)
    summary.update({"epochs_run": epoch, "stopped": stopped, "train_seconds": train_seconds})
    summary["seconds_per_epoch"] = train_seconds / max(epoch, 1)
    if val_pairs:
        summary.update(validation_images=len(val_pairs), val_psnr=best["best_val"], best_epoch=best["best_epoch"])
    write_json(out / "summary.json", summary)
    if summary["circuit_mismatches"]:
        raise InternalError(
            f"the extracted circuit disagrees with the model on {summary['circuit_mismatches']} output values "
            f"(the run is in {out}); this is a bug in diffgates, please report it."
        )
    summary["run_dir"] = str(outdir.finish(out))
    return summary


@torch.no_grad()
def evaluate_image(cfg: TrainConfig, model: LogicNet, circuit, test_pairs: list) -> dict:
    """The circuit's PSNR and SSIM on every test image, its counts checked against the discrete
    model's on every output value, the baselines, and the circuit's speed."""
    from ..evaluate import throughput

    s, group = factor(cfg.task, cfg.scale), circuit.group_size  # an ensemble's groups add up
    predict = circuit_predictor(circuit, cfg.threads)
    # counts compared as count / group: a stretched output's clipping could hide a difference
    unstretched = [reconstruct(predict, lr, cfg.patch, s, group) for lr, _ in test_pairs]
    outputs = [stretch(u, cfg.output_span) for u in unstretched]
    counts = lambda x: model.counts(torch.as_tensor(x)).numpy()  # noqa: E731
    mismatches = sum(
        int((reconstruct(counts, lr, cfg.patch, s, group) != o).sum()) for (lr, _), o in zip(test_pairs, unstretched)
    )
    inputs, truths = [lr for lr, _ in test_pairs], [hr for _, hr in test_pairs]
    sample = np.concatenate([windows(lr, cfg.patch) for lr in inputs[:50]])[:200_000]
    speed = throughput(circuit, sample)
    summary = {
        "task": cfg.task,
        "dataset": cfg.dataset,
        "scale": s,
        "patch": cfg.patch,
        "test_images": len(test_pairs),
        "logic": score(outputs, truths),
        "baselines": baselines(cfg, inputs, truths),
        "circuit_mismatches": mismatches,
        "group": group,
        "widths": list(cfg.widths),
        "gates": model.n_gates,
        "epochs": cfg.epochs,
    }
    if speed:
        summary.update(speed)
        summary["circuit_mpixels_per_s"] = speed["circuit_img_per_s"] * s * s / 1e6
    return summary
