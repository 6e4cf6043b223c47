"""The ``diffgates`` command line: train, eval, info (and the later stages as they land)."""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import shlex
import signal
import sys
import threading
from dataclasses import fields
from pathlib import Path

from . import __version__
from .bench import INFER_IMPLS, TRAIN_IMPLS
from .config import TrainConfig
from .errors import DiffgatesError, InternalError
from .interop.sources import SOURCES
from .kernels import ENGINES
from .native import MAX_THREADS


def _parse_list(kind, **limits):
    item = _number(kind, **limits) if kind is not str else kind

    def parse(text: str):
        try:
            return [item(v) for v in text.split(",") if v.strip()]
        except ValueError as e:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {kind.__name__}s, got {text!r}"
            ) from e

    return parse


def _frame_size(text: str) -> tuple[int, int]:
    """argparse type for WIDTHxHEIGHT, each 1 .. 65536."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and 1 <= int(p) <= 65536 for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT in pixels (each 1 to 65536), e.g. 320x240, got {text!r}"
        )
    return int(parts[0]), int(parts[1])


def _number(kind, low=None, above=None, high=None):
    """argparse type for an int or a finite float in a range; out of range is one clear line."""

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        for bad, words in (
            (low is not None and v < low, f"at least {low}"),
            (above is not None and v <= above, f"greater than {above}"),
            (high is not None and v > high, f"at most {high}"),
        ):
            if bad:
                raise argparse.ArgumentTypeError(f"must be {words}, got {text}")
        return v

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _arg_type(f):
    """argparse type for a TrainConfig field: its annotation's kind, checked against the range in
    its metadata (so a bad value is refused before anything runs)."""
    text = str(f.type)
    limits = {k: f.metadata[k] for k in ("low", "above", "high") if f.metadata.get(k) is not None}
    for name, kind in (("list[int]", int), ("list[float]", float), ("list[str]", str)):
        if name in text:
            return _parse_list(kind, **limits)
    for name, kind in (("int", int), ("float", float)):
        if text.startswith(name):
            return _number(kind, **limits)
    return str


def add_train_options(p: argparse.ArgumentParser) -> None:
    for f in fields(TrainConfig):
        default = f.default if not callable(f.default_factory) else f.default_factory()
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        text = f.metadata["help"]  # an option without a default, or whose help says it, gets no "(default: ...)"
        p.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=_arg_type(f),
            choices=f.metadata.get("choices"),
            default=argparse.SUPPRESS,
            help=text if default is None or "default" in text else f"{text} (default: {shown})",
        )


def cmd_train(args) -> int:
    from .train import train

    options = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    shaped = {}  # options chosen from the data's shape
    if args.resume:
        if set(options) - {"threads"} or args.out or args.overwrite or args.config:
            raise DiffgatesError(
                "--resume continues a run with its saved options; give no other training options (--threads aside)."
            )
        cfg, out = TrainConfig.from_run(args.resume), Path(args.resume)
        cfg.threads = options.get("threads", cfg.threads)  # where it runs, not what it computes
    else:
        if not args.config and "model" not in options and options.get("task", "classify") == "classify":
            shaped = _shape_defaults(options)
            options = {**shaped, **options}
        cfg = TrainConfig.load(args.config, **options) if args.config else TrainConfig.from_dict(options)
        out = args.out or f"runs/{Path(cfg.dataset).stem}"
    inputs = [args.config] if args.config else []
    s = train(cfg, out, overwrite=args.overwrite, quiet=args.quiet, resume=bool(args.resume), inputs=inputs)
    if not s:  # a torchrun process other than the first: rank 0 reports
        return 0
    if "task" in s:
        _print_image_summary(s)
        return 0
    print(f"{s['dataset']}: {s['gates']} gates ({s['parametrization']}), {s['train_seconds']:.1f} s of training")
    print(
        f"test accuracy  relaxed {s['test_acc_relaxed']:.4f}  discrete {s['test_acc_discrete']:.4f}  "
        f"circuit {s['test_acc_circuit']:.4f}  ({s['circuit_mismatches']} circuit/model mismatches)"
    )
    if "circuit_img_per_s" in s:
        print(
            f"circuit: {s['gates_optimised']} gates after optimisation, "
            f"{s['circuit_img_per_s'] / 1e6:.2f} M images/s on one thread from input bits"
            + (f" ({s['circuit_img_per_s_packed'] / 1e6:.2f} M packed)" if "circuit_img_per_s_packed" in s else "")
            + (
                f", {s['circuit_img_per_s_features'] / 1e6:.2f} M from raw features"
                if "circuit_img_per_s_features" in s
                else ""
            )
            + f" (prepared in {s['circuit_prepare_s']:.2f} s)"
        )
    _print_epochs(s, f"validation accuracy {s['val_acc_discrete']:.4f}" if "best_epoch" in s else "")
    print(f"run written to {s['run_dir']} (summary.json, metrics.jsonl, model.safetensors, circuit.npz)")
    if shaped:
        print(f"(28 x 28 images: the Fashion-MNIST recipe set {_said(shaped)}; options given win)")
    return 0


def _shape_defaults(options: dict) -> dict:
    """The recipe for the data's shape (``zoo.SHAPE_DEFAULTS``) for the options not given."""
    from .data import feature_count
    from .zoo import SHAPE_DEFAULTS

    n = feature_count(options.get("dataset", TrainConfig.dataset))
    return {k: v for k, v in SHAPE_DEFAULTS.get(n, {}).items() if k not in options}


def _said(chosen: dict) -> str:
    return " ".join(
        f"--{k.replace('_', '-')} {','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in chosen.items()
    )


def _print_epochs(s: dict, validation: str) -> None:
    """Why training ended early, and which epoch the run kept (with --validation: ``validation``
    names its score)."""
    if s.get("stopped"):
        print(f"stopped early ({s['stopped']}) after {s['epochs_run']} of {s['epochs']} epochs")
    if validation:
        print(f"kept epoch {s['best_epoch']}, the best on the validation split ({validation})")


def _print_image_summary(s: dict) -> None:
    what = f"x{s['scale']} super-resolution" if s["task"] == "superres" else "denoising"
    print(f"{s['dataset']} {what}: {s['gates']} gates, {s['train_seconds']:.1f} s of training")
    print(f"{s['test_images']} test images   PSNR      SSIM")
    for name, m in {"logic network (circuit)": s["logic"], **s["baselines"]}.items():
        print(f"  {name:24s}{m['psnr']:7.2f} dB  {m['ssim']:.4f}")
    print(f"circuit == model on every output value ({s['circuit_mismatches']} mismatches)")
    if "circuit_mpixels_per_s" in s:
        print(
            f"circuit: {s['gates_optimised']} gates after optimisation, "
            f"{s['circuit_mpixels_per_s']:.1f} M output pixels/s on one thread"
        )
    _print_epochs(s, f"PSNR {s['val_psnr']:.2f} dB" if "best_epoch" in s else "")
    print(f"run written to {s['run_dir']} (summary.json, metrics.jsonl, model.safetensors, circuit.npz)")


def cmd_image(args) -> int:
    """``diffgates upscale`` / ``diffgates denoise``: a trained image network over image files."""
    from .circuit.ir import Circuit
    from .data.folders import image_inputs
    from .image.apply import circuit_predictor
    from .image.data import factor
    from .image.io import check_size, opened, output_format, shape_of
    from .runs import run_config

    task = "superres" if args.command == "upscale" else "denoise"
    run = Path(args.run)
    cfg = run_config(run)  # a run, or image runs merged into one circuit
    if cfg.task != task:
        use = {"classify": "diffgates eval", "superres": "diffgates upscale", "denoise": "diffgates denoise"}[cfg.task]
        raise DiffgatesError(f"{run} was trained with --task {cfg.task}; use '{use}'.")
    sources = image_inputs(args.inputs)
    folders = any(Path(i).is_dir() for i in args.inputs)
    pairs = _image_outputs(sources, Path(args.output), args.overwrite, folders)
    s = factor(cfg.task, cfg.scale)
    for src, dst in pairs:  # before any pixel is read: every input opens, fits in memory, fits its output
        with opened(src) as im:
            frames = getattr(im, "n_frames", 1)
            check_size(shape_of(im, src), s, src, frames)
            output_format(dst, frames)
    try:
        pairs[0][1].parent.mkdir(parents=True, exist_ok=True)  # the folder -o names for several outputs
    except OSError as e:
        raise DiffgatesError(f"cannot create {pairs[0][1].parent}: {e.strerror or e}.") from e
    circuit = Circuit.load(run / "circuit.npz")
    predict = circuit_predictor(circuit, args.threads)
    for src, dst in pairs:
        _apply_image(cfg, s, circuit, predict, src, dst, args.overwrite)
    return 0


def _image_outputs(sources: list[Path], output: Path, overwrite: bool, folders: bool) -> list[tuple[Path, Path]]:
    """(input, output file) pairs for ``upscale`` / ``denoise``: ``output`` itself for one input
    file, else (or where it is a folder, or the inputs came from ``folders``) the inputs' names in
    that folder (which the caller creates if missing); refused before any work where an output
    would be lost or two inputs share a name."""
    from .outdir import check_output_file

    if len(sources) == 1 and not output.is_dir() and not folders:
        return [(sources[0], check_output_file(output, overwrite, sources))]
    names = [src.name for src in sources]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DiffgatesError(f"two inputs are named {twice[0]}, and their outputs in {output} would be one file.")
    if output.exists() and not output.is_dir():
        raise DiffgatesError(
            f"{output} is a file; with several inputs or a folder of them -o names the folder to write them into."
        )
    pairs = [(src, output / src.name) for src in sources]
    if output.is_dir():
        for _, dst in pairs:
            check_output_file(dst, overwrite, sources)
    return pairs


def _apply_image(cfg, s: int, circuit, predict, src: Path, dst: Path, overwrite: bool) -> None:
    """One image file (every frame of an animation) through an image network's circuit (``s``:
    its output pixels a side per input pixel), written to ``dst``."""
    import numpy as np

    from .image.apply import reconstruct
    from .image.io import as_pixels, as_values, read_frames, scale_alpha, write_frames
    from .progress import progress_bar

    frames, mode, timing = read_frames(src)  # its size checked against the memory (cmd_image)
    _, h, w = frames[0][0].shape
    out = []
    with progress_bar(quiet=len(frames) == 1) as bar:  # an animation: its frames
        task = bar.add_task(f"{src.name} frames", total=len(frames))
        for pixels, alpha in frames:
            values = [
                reconstruct(predict, v, cfg.patch, s, circuit.group_size, span=cfg.output_span)
                for v in as_values(pixels)
            ]
            if alpha is not None and s > 1:  # transparency is not the network's: resized beside it
                alpha = scale_alpha(alpha, s)
            out.append((as_pixels(np.stack(values)), alpha))
            bar.advance(task)
    write_frames(dst, out, mode, overwrite, timing)
    with_alpha = " with alpha" if frames[0][1] is not None else ""
    count = f", {len(frames)} frames" if len(frames) > 1 else ""
    print(f"{src} ({w} x {h} {mode}{with_alpha}{count}) -> {dst} ({w * s} x {h * s})")


def cmd_recipe(args) -> int:
    from .recipe import load_recipe, run_recipe

    recipe = load_recipe(args.file)
    summaries = run_recipe(recipe, args.out and Path(args.out), quiet=args.quiet)
    last = summaries[-1]
    acc = last.get("test_acc_discrete", last.get("test_acc"))
    where = Path(args.out or recipe.out) / recipe.stages[-1].name
    print(f"recipe done: {len(summaries)} stages; the last, {where}, has test accuracy {acc:.4f}")
    return 0


def cmd_teacher(args) -> int:
    from .teacher import run_teacher

    options = {k: getattr(args, k) for k in ("channels", "epochs", "lr", "shift", "flip", "seed")}
    s = run_teacher(
        args.dataset, Path(args.out), args.overwrite, args.quiet, args.data_dir, args.image_shape, **options
    )
    print(
        f"{s['dataset']}: CNN teacher with {s['parameters']:,} parameters, {s['train_seconds']:.0f} s of training; "
        f"test accuracy {s['test_acc']:.4f} (train {s['train_acc']:.4f})"
    )
    print(f"written to {args.out}; distil it with: diffgates train --teacher {args.out} --distill-weight 0.9 ...")
    return 0


def cmd_merge(args) -> int:
    from .runs import merge_runs

    summary = merge_runs(args.runs, Path(args.out), args.overwrite, args.data_dir)
    if "logic" in summary:  # image networks
        scores = f"circuit PSNR {summary['logic']['psnr']:.2f} dB, SSIM {summary['logic']['ssim']:.4f}"
    else:
        scores = f"discrete test accuracy {summary['test_acc_discrete']:.4f}, circuit {summary['test_acc_circuit']:.4f}"
    print(
        f"{summary['members']} members, {summary['gates']} gates ({summary.get('gates_optimised', '?')} after "
        f"optimisation): {scores}, {summary['circuit_mismatches']} mismatches; written to {args.out}"
    )
    return 0


def cmd_import(args) -> int:
    from .interop import import_network

    s = import_network(
        args.source,
        args.checkpoint,
        args.dataset,
        args.out,
        args.overwrite,
        threshold=args.threshold,
        classes=args.classes,
        tau=args.tau,
        parametrization=args.parametrization,
        data_dir=args.data_dir,
    )
    print(
        f"imported {s['gates']} gates ({s.get('gates_optimised', '?')} after optimisation) from {args.source}: "
        f"discrete test accuracy {s['test_acc_discrete']:.4f} on {s['dataset']}, circuit {s['test_acc_circuit']:.4f}; "
        f"written to {s['run_dir']} (compile it with: diffgates compile {s['run_dir']} --target verilog)"
    )
    return 0


def cmd_eval(args) -> int:
    from .data import load_dataset
    from .evaluate import evaluate
    from .runs import load_run

    cfg, model, circuit = load_run(args.run)
    if cfg.task != "classify":
        return _eval_image(cfg, model, circuit, args.data_dir)
    ds = load_dataset(cfg.dataset, args.data_dir or cfg.data_dir)
    if ds.n_features != circuit.n_features or ds.n_classes > circuit.n_classes:
        raise DiffgatesError(
            f"{ds.name} has {ds.n_features} features and labels up to {ds.n_classes - 1}, but the model expects "
            f"{circuit.n_features} features and {circuit.n_classes} classes."
        )
    result = evaluate(model, circuit, ds)
    for key in ("test_acc_relaxed", "test_acc_discrete", "test_acc_circuit"):
        print(f"{key:20s} {result[key]:.4f}")
    print(f"{'circuit_mismatches':20s} {result['circuit_mismatches']} of {result['test_samples']}")
    return _agreement(result["circuit_mismatches"], "test samples")


def cmd_predict(args) -> int:
    from .circuit.program import Executor
    from .predict import ARRAY_SUFFIXES, check_output, classes_of, read_inputs, write_predictions
    from .runs import class_names, load_run

    out = check_output(args.output, args.overwrite, args.inputs) if args.output else None  # before any work
    cfg, _, circuit = load_run(args.run)
    if cfg.task != "classify":
        use = "upscale" if cfg.task == "superres" else "denoise"
        raise DiffgatesError(f"{args.run} was trained with --task {cfg.task}; use 'diffgates {use}'.")
    x, names = read_inputs(args.inputs, cfg.dataset, cfg.image_shape, circuit.n_features)
    known = class_names(args.run)
    ex = Executor(circuit, threads=args.threads)
    if out and out.suffix.lower() == ".csv":  # the counts too
        counts = ex.counts(x)
        labels = counts.argmax(1)
    else:
        counts, labels = None, ex.predict(x)
    if out:
        write_predictions(out, names, counts, labels, known)
        print(f"{len(labels)} labels written to {out}", file=sys.stderr)
    else:
        images = Path(args.inputs[0]).suffix.lower() not in ARRAY_SUFFIXES  # else one array file
        classes = classes_of(labels, known)
        for i, (name, label) in enumerate(zip(names, labels)):
            print("\t".join([*([name] if images else []), str(label), *([classes[i]] if classes else [])]))
    return 0


def _eval_image(cfg, model, circuit, data_dir) -> int:
    """An image network: PSNR / SSIM on the test images, the circuit's counts against the model's."""
    from .image.data import test_inputs
    from .image.train import evaluate_image

    cfg.data_dir = data_dir or cfg.data_dir
    pairs = test_inputs(cfg.task, cfg.scale, cfg.noise, cfg.seed, cfg.dataset, cfg.data_dir)
    result = evaluate_image(cfg, model.eval(), circuit, pairs)
    for name, m in {"logic network (circuit)": result["logic"], **result["baselines"]}.items():
        print(f"{name:24s} PSNR {m['psnr']:6.2f} dB  SSIM {m['ssim']:.4f}")
    print(f"{'circuit_mismatches':24s} {result['circuit_mismatches']} output values of {len(pairs)} test images")
    return _agreement(result["circuit_mismatches"], "output values")


def _agreement(mismatches: int, what: str) -> int:
    """Exit code of an evaluation: 1 where the circuit and the discrete model disagree."""
    if mismatches:
        print(f"error: the circuit and the discrete model disagree on some {what}.", file=sys.stderr)
        return 1
    return 0


def cmd_info(args) -> int:
    from . import gates
    from .nn import Ensemble
    from .runs import load_run

    _, model, circuit = load_run(args.run)
    members = model.members if isinstance(model, Ensemble) else [model]
    for i, member in enumerate(members):
        prefix = f"member {i} " if len(members) > 1 else ""
        for conv in member.convs:
            print(f"{prefix}conv: {conv.extra_repr()}, {conv.n_gates} tree gates + {conv.n_pool_gates} pooling ORs")
        print(
            f"{prefix}model: {len(member.convs)} conv blocks + {len(member.layers)} dense layers, "
            f"{member.n_gates} gates"
        )
    print(
        f"circuit: {circuit.n_gates} gates, {circuit.n_inputs} input bits from {circuit.n_features} features, "
        f"{circuit.n_classes} classes x {circuit.group_size} outputs, tau {circuit.tau:g}"
    )
    hist = circuit.op_histogram()
    width = max(len(n) for n in gates.NAMES)
    header = "gate".ljust(width) + "".join(f"{'L' + str(i):>8s}" for i in hist) + f"{'total':>9s}"
    print(header)
    for g, name in enumerate(gates.NAMES):
        row = [hist[layer].get(g, 0) for layer in hist]
        print(name.ljust(width) + "".join(f"{c:8d}" for c in row) + f"{sum(row):9d}")
    return 0


def cmd_compile(args) -> int:
    from .data import eight_bit_pixels, load_dataset
    from .export import INPUT_FORMATS, PIXELS, TARGETS, golden_vectors, write_export
    from .outdir import EXPORT_KINDS, check_output, staged
    from .runs import class_names, load_run

    cfg, model, circuit = load_run(args.run)
    out = Path(args.out or Path(args.run) / "export")
    check_output(out, args.overwrite, EXPORT_KINDS, [args.run, args.data_dir])  # before the data loads
    if cfg.task == "classify":
        x = load_dataset(cfg.dataset, args.data_dir or cfg.data_dir).x_test[: args.vectors]
        fmt = INPUT_FORMATS.get(cfg.dataset) or (PIXELS if eight_bit_pixels(cfg.dataset) else None)
    else:  # an image network: the windows of the test inputs, which are 8-bit pixels
        from .image.data import test_windows

        cfg.data_dir = args.data_dir or cfg.data_dir
        x, fmt = test_windows(cfg, args.vectors), PIXELS
    if args.input_bits or args.input_divisor:
        from .backends.verilog import InputFormat

        base = fmt or InputFormat()
        fmt = InputFormat(args.input_bits or base.bits, args.input_divisor or base.divisor)
    targets = list(TARGETS) if args.target == "all" else [args.target]
    with staged(out, args.overwrite, "export", inputs=[args.run, args.data_dir]) as work:
        names = class_names(args.run) if cfg.task == "classify" else None
        counts = golden_vectors(model, x)
        report = write_export(work, circuit, targets, x, counts, fmt, args.stage_levels, not args.no_optimize, names)
    print(f"{'pass':12s} {'gates':>9s} {'inputs':>7s}  per layer")
    for p in report["passes"]:
        layers = " ".join(f"{n}" for n in p["per_layer"].values())
        print(f"{p['pass']:12s} {p['gates']:9d} {p['inputs']:7d}  {layers}")
    print(f"wrote {', '.join(report['files'])} and {report['vectors']} golden vectors to {out}")
    return 0


def _export_dir(path: str, marker: str, hint: str) -> Path:
    """The export directory that `path` names: itself, or the export/ of a run; `marker` is the
    file the command needs from it."""
    d = Path(path)
    for export in (d, d / "export"):
        if (export / marker).is_file():
            return export
    raise DiffgatesError(f"{d} is neither an export holding {marker} nor a run with one; {hint}.")


def cmd_verify(args) -> int:
    from .hw.verify import verify_c, verify_verilog

    d = _export_dir(args.dir, "golden_counts.txt", "run 'diffgates compile' first")
    checks = []
    if (d / "model.c").is_file():
        checks.append(verify_c(d))
    if (d / "model.v").is_file():
        checks.append(verify_verilog(d, args.simulator))
    if not checks:
        raise DiffgatesError(f"{d} holds neither model.c nor model.v to verify.")
    for c in checks:
        verdict = "bit-exact" if c.ok else f"{c.mismatches} MISMATCHES"
        print(f"{c.target:8s} {c.vectors} vectors via {c.tool}: {verdict}")
    return 0 if all(c.ok for c in checks) else 1


def cmd_synth(args) -> int:
    from .hw.synth import synthesize

    d = _export_dir(args.dir, "model.v", "run 'diffgates compile RUN --target verilog' first")
    effort = "ABC's fast scripts" if args.fast else "full effort: tens of minutes for 50K gates, --fast takes minutes"
    print(f"synthesising {d / 'model.v'} with Yosys ({effort}) ...", file=sys.stderr)
    report = synthesize(d, fast=args.fast, timeout=args.timeout)
    (d / "synth.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    print(
        f"2-input gates {report.gates2}, LUT6 {report.luts6}, depth {report.depth} levels, "
        f"flip-flops {report.flipflops} ({report.tool}, {'fast' if report.fast else 'full'} effort)"
    )
    return 0


def cmd_fpga(args) -> int:
    from .hw.fpga import default_mode, device, implement, summary
    from .outdir import set_aside, staged

    export = _export_dir(args.dir, "compile.json", f"run 'diffgates compile {args.dir}' first")
    dev = device(args.family, args.device)
    args.mode = args.mode or default_mode(export)
    if args.frame is not None and args.mode != "pixels":
        raise DiffgatesError(
            f"--frame sizes the pixel stream of an image network (--mode pixels), not --mode {args.mode}."
        )
    if args.vectors is not None and args.mode == "pixels":
        raise DiffgatesError("--mode pixels simulates two whole frames, not golden vectors; leave out --vectors.")
    out = Path(args.out or export / "fpga" / f"{dev.name}-{args.mode}")
    with staged(out, args.overwrite, "fpga", inputs=[export / "compile.json", export / "circuit.npz"]) as work:
        try:
            report = implement(
                export, work, args.family, dev.name, args.mode, args.word_bits, args.target_mhz, args.stage_levels,
                args.vectors, simulate=not args.no_simulate, nextpnr_args=tuple(shlex.split(args.nextpnr_args or "")),
                breakdown=not args.no_breakdown, echo=lambda m: print(m, file=sys.stderr), timeout=args.timeout,
                **({"frame": args.frame} if args.frame else {}),
            )  # fmt: skip
        except (DiffgatesError, InternalError) as e:
            if not (work / "routed.json").is_file():
                raise
            kept = set_aside(work, out)  # hours of place and route are not thrown away
            raise type(e)(f"{e} The placed-and-routed design and its report are kept in {kept}.") from None
    print(summary(report))
    files = ["report.json", "summary.txt", "top.v", "mapped.v", "routed.json"]
    files += [report["bitstream"]] if report["bitstream"] else []
    print(f"written to {out} ({', '.join(files)})")
    return 0


def cmd_report(args) -> int:
    from .report import write_report

    path = write_report(args.run, args.data_dir)
    print(f"report written to {path} (figures beside it)")
    return 0


def _table(rows: list[dict], columns: list[str]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def cmd_bench(args) -> int:
    from . import bench

    echo = None if args.json else (lambda row: print(json.dumps(row), file=sys.stderr))
    if args.impls is None:
        args.impls = list(INFER_IMPLS if args.what == "infer" else TRAIN_IMPLS)
    known = INFER_IMPLS if args.what == "infer" else bench.TRAIN_IMPLS_ALL
    if not set(args.impls) <= set(known):
        unknown = ", ".join(sorted(set(args.impls) - set(known)))
        raise DiffgatesError(f"bench {args.what} compares {', '.join(known)}; unknown: {unknown}.")
    engines = {e.removesuffix("-bf16") for e in args.engines}
    if args.what == "epoch" and not engines <= set(ENGINES):
        raise DiffgatesError(
            f"bench epoch times --engine {', '.join(ENGINES)} (each also as ENGINE-bf16); "
            f"unknown: {', '.join(sorted(engines - set(ENGINES)))}."
        )
    if args.what == "conv" and any(map(bench.learned_impl, args.impls)):
        raise DiffgatesError("the learned-connection rows (diffgates-learned*) are for 'bench train' only.")
    if args.what == "infer" and args.circuit:
        from .circuit.ir import Circuit

        found = Path(args.circuit)
        if found.is_dir():  # a run directory, or an export: the circuit.npz inside
            found = found / "circuit.npz"
        Circuit.load(found)  # one sentence now, not an error in every worker's row
        args.circuit = str(found)
    if args.what == "train" and args.widths[-1] % 10:
        raise DiffgatesError(f"the last width ({args.widths[-1]}) must be a multiple of the 10 classes.")
    if args.what == "train":
        rows = bench.bench_train(
            args.impls,
            args.n_in,
            args.widths,
            args.batches,
            args.threads,
            args.steps,
            args.param,
            rounds=args.rounds,
            echo=echo,
        )
        columns = ["impl", "param", "model", "batch", "threads", "ms_per_step", "forward_ms", "backward_ms"]
        columns += ["optimizer_ms", "limit_ms", "of_limit", "vs_reference", "vs_torchlogix", "peak_mb", "error"]
    elif args.what == "conv":
        rows = bench.bench_conv(
            args.impls, args.model, args.batches, args.threads, args.steps, args.param, rounds=args.rounds, echo=echo
        )
        columns = ["impl", "param", "model", "batch", "threads", "ms_per_step", "vs_reference", "vs_torchlogix"]
        columns += ["peak_mb", "error"]
    elif args.what == "infer":
        rows = bench.bench_infer(
            args.n_in,
            args.infer_widths,
            args.threads,
            args.samples,
            args.repeats,
            echo=echo,
            circuit=args.circuit,
            rounds=args.rounds,
            impls=args.impls,
        )
        columns = ["impl", "model", "threads", "img_per_s", "img_per_s_packed", "img_per_s_features"]
        columns += ["limit_img_per_s", "of_limit"]
        columns += ["prepare_s", "gates_before", "gates_after", "ops_run", "error"]
    else:
        rows = bench.bench_epoch(args.engines, args.dataset, args.widths, args.threads, args.param, echo=echo)
        columns = ["engine", "dataset", "widths", "threads", "epoch_seconds", "test_acc_discrete", "error"]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_table(rows, [c for c in columns if any(c in r for r in rows)]))
    return 0


def cmd_models(args) -> int:
    from .zoo import PRESETS

    rows = []
    for p in PRESETS.values():
        o = p.options
        counts = p.model_config().gate_counts()
        ours = counts["conv"] + counts["dense"]
        row = {
            "model": p.name,
            "dataset": o["dataset"],
            "gates": f"{ours:,}",
            "pool_or": f"{counts['pool']:,}",
            "paper_gates": f"{p.paper_gates:,}" if p.paper_gates else "-",
            "diff": f"{100 * (ours / p.paper_gates - 1):+.1f}%" if p.paper_gates else "-",
            "paper_acc": f"{100 * p.paper_accuracy:.2f}%" if p.paper_accuracy else "-",
            "ours_acc": p.measured or "-",
            "architecture": f"conv {' '.join(o['conv'])} | dense {'-'.join(map(str, o['widths']))} | tau {o['tau']:g}",
        }
        rows.append(row)
    print(_table(rows, list(rows[0])))
    for p in PRESETS.values():
        if p.notes:
            print(f"{p.name}: {p.notes}")
    print(
        "gates: trees at every position plus dense gates (the paper's count); pool_or: the 2-input ORs of the "
        "unrolled pooling on top. Train one with: diffgates train --model NAME"
    )
    return 0


def cmd_download(args) -> int:
    from .data.download import download
    from .paths import data_home

    dest = args.dir or data_home() / args.name
    download(args.name, dest, args.base_url)
    print(f"{args.name}: files verified (SHA-256) in {dest}")
    return 0


RUN_HELP = "run directory written by 'diffgates train'"
DATA_DIR_HELP = "directory holding the dataset files"


def _add_threads(p: argparse.ArgumentParser) -> None:
    """--threads as train takes it (the config field's range and help), for the other commands."""
    threads = TrainConfig.__dataclass_fields__["threads"]
    p.add_argument("--threads", type=_arg_type(threads), help=threads.metadata["help"])


def _command(sub, name: str, func, help: str, description: str, run: bool = False, data_dir: bool = False):
    """A subcommand parser with the positional RUN and --data-dir where the command takes them (a
    command that reads a dataset evaluates circuits, so it also takes --threads)."""
    p = sub.add_parser(name, help=help, description=description)
    if run:
        p.add_argument("run", help=RUN_HELP)
    if data_dir:
        p.add_argument("--data-dir", help=DATA_DIR_HELP)
        _add_threads(p)
    p.set_defaults(func=func)
    return p


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line, like every other diffgates error (exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see '{self.prog} --help').\n")


def build_parser() -> argparse.ArgumentParser:
    from .backends.fpga_top import MODES
    from .export import TARGETS
    from .hw.fpga import FAMILIES
    from .hw.verify import SIMULATORS
    from .nn.parametrization import PARAMETRIZATIONS

    parser = _Parser(
        prog="diffgates",
        description="Train logic gate networks by gradient descent and ship them as circuits.",
    )
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"diffgates {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = _command(
        sub,
        "train",
        cmd_train,
        help="train a model and write a run directory",
        description="Train a logic gate network (dense layers, optionally after logic-tree convolutions), "
        "then extract and check its circuit.",
    )
    p.add_argument("--out", help="run directory to create (default: runs/<dataset>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="options from a YAML/JSON file (a run's config.yaml repeats it); options given on the command line win",
    )
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its last checkpoint (after a crash or kill)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_train_options(p)

    p = _command(
        sub,
        "recipe",
        cmd_recipe,
        help="run a multi-stage training recipe (YAML), resuming where it stopped",
        description="Run the stages of a recipe file in order (train or teacher runs, each with its options; "
        "'@STAGE' in an option names an earlier stage's run directory, 'base: STAGE' starts from that stage's "
        "options). Stage runs go to OUT/STAGE. Finished stages are skipped and an interrupted training resumes "
        "from its checkpoint, so after a crash or a kill the same command continues. Recipes for the committed "
        "results are in recipes/.",
    )
    p.add_argument("file", help="recipe file (YAML)")
    p.add_argument("--out", help="directory for the stages' runs (default: the recipe's out)")
    _add_threads(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = _command(
        sub,
        "teacher",
        cmd_teacher,
        help="train a float CNN teacher for --teacher (knowledge distillation)",
        description="Train a small conventional CNN (batch norm, ReLU, max pooling; random shifts and flips) "
        "whose logits a logic network can then learn from with 'diffgates train --teacher RUN'. "
        "About 30 minutes on 2 CPU cores for Fashion-MNIST.",
        data_dir=True,
    )
    p.add_argument("--dataset", default="fashion-mnist", help="an image dataset or .npz file (default: fashion-mnist)")
    p.add_argument(
        "--image-shape", type=_parse_list(int, low=1), help="channels,height,width (known for the image datasets)"
    )
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument(
        "--channels", type=_parse_list(int, low=1), default=[32, 64, 128], help="stage widths (default: 32,64,128)"
    )
    p.add_argument("--epochs", type=_number(int, low=1), default=15, help="passes over the training set (default: 15)")
    p.add_argument(
        "--lr", type=_number(float, above=0), default=0.004, help="peak AdamW learning rate (default: 0.004)"
    )
    p.add_argument(
        "--shift", type=_number(int, low=0), default=2, help="augmentation: random shift of up to N pixels (default: 2)"
    )
    p.add_argument(
        "--flip",
        type=_number(float, low=0, high=1),
        default=0.5,
        help="augmentation: horizontal flip probability (default: 0.5)",
    )
    p.add_argument("--seed", type=_number(int, low=0), default=0, help="seed (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    _command(
        sub,
        "models",
        cmd_models,
        help="list the named architectures (paper presets and CPU-sized ones) with gate counts",
        description="The convolutional LogicTreeNet presets of Petersen et al. (2024) and presets sized for a "
        "CPU, with their gate counts next to the paper's. Use one with 'diffgates train --model NAME'.",
    )

    p = _command(
        sub,
        "download",
        cmd_download,
        help="download MNIST or CIFAR-10, checking SHA-256",
        description="Fetch a dataset's files and check each against its published SHA-256; a file that does "
        "not match is deleted and the command fails.",
    )
    p.add_argument("name", choices=["mnist", "cifar10"])
    p.add_argument(
        "--data-dir",
        "--dir",
        dest="dir",
        help="where to put the files, the --data-dir that 'diffgates train' then reads (default: $DIFFGATES_DATA/NAME "
        "or ~/.cache/diffgates/NAME, where train looks without one)",
    )
    p.add_argument("--base-url", help="a mirror to download from instead of the default source")

    _command(
        sub,
        "report",
        cmd_report,
        help="HTML report: training curves, gate histograms, confusion matrix",
        description="Write RUN/report/report.html (self-contained) and its PNG figures.",
        run=True,
        data_dir=True,
    )

    p = _command(
        sub,
        "merge",
        cmd_merge,
        help="merge trained runs into one circuit that adds their class counts (an ensemble)",
        description="Merge the circuits of trained runs on one dataset into a single circuit whose class counts "
        "are the sum of theirs (an ensemble in hardware; shared input bits are read once). The directory it "
        "writes works with eval, info, compile, verify and synth like a run directory.",
        data_dir=True,
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="two or more run (or merged) directories")
    p.add_argument("--out", required=True, help="directory to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing directory")

    p = _command(
        sub,
        "import",
        cmd_import,
        help="bring a network trained with torchlogix or difflogic in as a run directory",
        description="Read a torchlogix or difflogic checkpoint and write a run directory holding the same discrete "
        "network (model, circuit, summary scored on --dataset), which eval, info, compile, verify, synth, fpga and "
        "bench infer take like a trained run. Nothing in the file is executed: the other library's classes are read "
        "as plain data, and only its logic layers (difflogic's LogicLayer; torchlogix's LogicDense, raw, warp or "
        "light, with fixed or learnable wiring and LUTs of 1 to 8 inputs, which become layers of two-input gates; "
        "LogicConv2d of two-input gates with OrPooling2d), torchlogix's binarisation, Flatten and GroupSum are "
        "accepted. Checkpoints: a whole model saved with torch.save(model), which keeps the wiring; or a state dict, "
        "which has no wiring (neither library puts its connection indices in state_dict()): add each layer's "
        "indices beside its weights as 'PREFIX.indices', a (2, gates) tensor (A inputs, B inputs; LUTs: (rank, "
        "LUTs)), and give --classes.",
        data_dir=True,
    )
    p.add_argument("checkpoint", metavar="FILE", help="the torch.save file (.pt)")
    p.add_argument("--from", dest="source", required=True, choices=SOURCES, help="the library that trained it")
    p.add_argument(
        "--dataset",
        required=True,
        help="dataset the network reads (a name or an .npz file); scores the run and gives compile its test vectors",
    )
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="for a model without a binarisation layer: input bit = feature > THRESHOLD (default: 0.5)",
    )
    p.add_argument("--classes", type=int, help="state dicts: GroupSum's number of classes")
    p.add_argument("--tau", type=float, help="state dicts: GroupSum's tau (default: 1; scales scores, not predictions)")
    p.add_argument(
        "--parametrization",
        choices=("warp", "light"),
        help="torchlogix state dicts of warp or light layers (4 weights per gate, 2**rank per LUT): how they were "
        "trained",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")

    _command(
        sub,
        "eval",
        cmd_eval,
        help="re-evaluate a run's checkpoint and circuit",
        description="Recompute relaxed, discrete and circuit accuracy from a run's saved files; "
        "exits 1 if the circuit and the discrete model disagree on any test sample.",
        run=True,
        data_dir=True,
    )

    p = _command(
        sub,
        "predict",
        cmd_predict,
        help="classify new data with a run's circuit",
        description="Run a classifier's circuit on new samples and print a label per sample (with its class's "
        "name for runs trained on class folders, Fashion-MNIST, CIFAR-10 or an .npz holding class_names), or "
        "write them to a file. Arrays (.npy, or .npz holding x or x_test) are (samples, features...) in the units "
        "the run was trained on (uint8 values scaled to [0, 1], as in training); image files (PNG, JPEG, ...) are "
        "read as pixels scaled to [0, 1], for runs trained on such pixels, and must have the run's image size.",
        run=True,
    )
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="one .npy or .npz file, or image files and folders of them"
    )
    p.add_argument(
        "-o",
        "--output",
        help="write the labels to FILE.npy (int64), or each sample's name, label, class name and class counts to "
        "FILE.csv (default: print a label per line, after the file name for images and before the class name "
        "where the run knows its classes' names)",
    )
    _add_threads(p)
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")

    _command(
        sub,
        "info",
        cmd_info,
        help="gate-type histogram per layer",
        description="Print a run's model size and its gate-type histogram per layer.",
        run=True,
    )

    p = _command(
        sub,
        "compile",
        cmd_compile,
        help="optimise the circuit and export C / Verilog / BLIF",
        description="Optimise a run's circuit (reporting gates per layer after each pass) and "
        "export it with golden vectors from the test set.",
        run=True,
        data_dir=True,
    )
    p.add_argument("--target", choices=[*TARGETS, "all"], default="all", help="what to export (default: all)")
    p.add_argument("--out", help="export directory (default: RUN/export)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export directory")
    p.add_argument(
        "--vectors", type=_number(int, low=1), default=10000, help="golden vectors from the test set (default: 10000)"
    )
    p.add_argument(
        "--stage-levels",
        type=_number(int, low=0),
        default=0,
        help="Verilog: a register stage every N logic levels (default 0: combinational)",
    )
    p.add_argument(
        "--input-bits",
        type=_number(int, low=1, high=32),
        help="Verilog: bits per input feature code (default from the dataset)",
    )
    p.add_argument(
        "--input-divisor",
        type=_number(float, above=0),
        help="Verilog: feature = code / divisor (default from the dataset)",
    )
    p.add_argument("--no-optimize", action="store_true", help="export the circuit as extracted")

    p = _command(
        sub,
        "verify",
        cmd_verify,
        help="prove an export bit-exact against its golden vectors",
        description="Compile and run the exported C, and simulate the exported Verilog (Icarus or "
        "Verilator), on the golden vectors; exit 1 on any mismatch.",
    )
    p.add_argument("dir", help="export directory ('diffgates compile'), or a run directory holding export/")
    p.add_argument(
        "--simulator",
        choices=SIMULATORS,
        default="auto",
        help="Verilog simulator (default: Icarus if installed, else Verilator)",
    )

    for name, verb, what in (
        ("upscale", "upscale", "--task superres"),
        ("denoise", "denoise", "--task denoise"),
    ):
        p = _command(
            sub,
            name,
            cmd_image,
            help=f"{verb} image files with a network trained with {what}",
            description=f"Run the circuit of a run trained with {what} over every pixel of images of any size "
            "(PNG, JPEG, ... through Pillow; greyscale or RGB, each colour channel on its own) and write the results. "
            "An animation (GIF, APNG, WebP, multi-page TIFF) goes through frame by frame and is written as one, "
            "with its frame durations and loop count, into a format that holds frames (.gif, .png, .webp, .tif).",
            run=True,
        )
        p.add_argument(
            "inputs", nargs="+", metavar="input", help="the image files to read, or folders of them (every image file)"
        )
        p.add_argument(
            "-o",
            "--output",
            required=True,
            help="the image file to write (its extension sets the format); with several inputs or a folder of "
            "them, or where it is a folder, the folder to write them into under their own names (created if missing)",
        )
        _add_threads(p)
        p.add_argument("--overwrite", action="store_true", help="replace output files that exist")

    p = _command(
        sub,
        "synth",
        cmd_synth,
        help="synthesise the Verilog with Yosys and report its size",
        description="Run Yosys on an export's model.v: 2-input gate count, LUT6 count, logic depth.",
    )
    p.add_argument(
        "dir", help="export directory ('diffgates compile --target verilog'), or a run directory holding export/"
    )
    p.add_argument(
        "--fast", action="store_true", help="ABC's fast scripts: much quicker on large designs, ~30%% larger"
    )
    p.add_argument(
        "--timeout",
        type=_number(float, above=0),
        default=7200.0,
        help="stop Yosys after this many seconds (default: 7200)",
    )

    p = _command(
        sub,
        "fpga",
        cmd_fpga,
        help="place and route an export on an FPGA, write the bitstream, verify the mapped netlist",
        description="Synthesise an export for an FPGA family (Yosys synth_<family>), place and route it "
        "(nextpnr), write the bitstream and simulate the technology-mapped netlist through the top level against "
        "the golden vectors (any mismatch fails; an image network: two random frames against the software). "
        "Writes report.json and summary.txt: LUTs, flip-flops, carry cells, block RAM, Fmax, latency, images/s "
        "(image networks: pixels/s and frames/s), and routed.json, the placed-and-routed design; when a step "
        "after place and route fails, the work folder is kept as OUT.failed and OUT stays as it was. Uses native "
        "yosys/nextpnr where installed, else the yowasp wheels (pip install diffgates[fpga]); the first run of a "
        "wheel compiles it (a minute or two).",
    )
    p.add_argument("dir", help="export directory ('diffgates compile'), or a run directory holding export/")
    p.add_argument("--family", choices=list(FAMILIES), default="ecp5", help="FPGA family (default: ecp5)")
    p.add_argument("--device", help="device (default: LFE5U-85F for ecp5, iCE40HX8K for ice40)")
    p.add_argument(
        "--mode",
        choices=MODES,
        help="stream: WORD_BITS of the image per clock on real pins (valid/ready), with a bitstream; wide: a whole "
        "image per clock, placed out of context for use inside a larger design (ecp5); pixels (image networks): "
        "frames of --frame pixels streamed a pixel code per clock, edges repeated, through a line buffer and a "
        "sliding window, an output block per pixel, with a bitstream (default: pixels for an image network, "
        "else stream)",
    )
    p.add_argument("--word-bits", type=_number(int, low=1, high=64), default=8, help="stream: input bits per clock")
    p.add_argument(
        "--frame",
        type=_frame_size,
        metavar="WxH",
        help="pixels: the frame size the line buffer is built for, and of the two random frames simulated "
        "(default: 320x240)",
    )
    p.add_argument("--target-mhz", type=_number(float, above=0), default=100.0, help="clock target (default: 100)")
    p.add_argument(
        "--stage-levels",
        type=_number(int, low=0),
        help="register stage every N logic levels (default: chosen from --target-mhz; 0: none)",
    )
    p.add_argument(
        "--vectors", type=_number(int, low=1), help="stream, wide: golden vectors to simulate (default: all)"
    )
    p.add_argument("--no-simulate", action="store_true", help="skip the mapped-netlist simulation")
    p.add_argument(
        "--no-breakdown",
        action="store_true",
        help="skip the three extra syntheses that split the LUTs into encoder, network, head and interface",
    )
    p.add_argument(
        "--nextpnr-args",
        metavar="ARGS",
        help='more options for nextpnr, e.g. "--seed 2" or "--router router2" (congestion-driven, its iterations '
        'in the report); its progress is in pnr.log. On ecp5 the default is "--placer static" (density-aware '
        "placement: the large designs that route here route only with it); an option given here replaces the "
        "default of the same name",
    )
    p.add_argument(
        "--timeout",
        type=_number(float, above=0),
        default=3600.0,
        help="stop any one tool (synthesis, place and route, ...) after this many seconds (default: 3600; "
        "the WebAssembly place and route of a 30K-LUT design needs more). nextpnr's router1 is stopped "
        "earlier when, after 5 minutes of routing, the arcs it has left would need over three times the time "
        "left at the better of its pace over the last 2 minutes and over the whole run",
    )
    p.add_argument("--out", help="output directory (default: EXPORT/fpga/DEVICE-MODE)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier result of this command")

    p = _command(
        sub,
        "bench",
        cmd_bench,
        help="side-by-side benchmarks (training step, inference, epoch time)",
        description="Benchmarks comparing implementations in one run, each configuration in a fresh "
        "subprocess. 'train': ms per training step and peak memory of diffgates' fused kernels, the "
        "in-package reference, the compact torch path and torchlogix, with the fused rows' memory-traffic "
        "limit (limit_ms) and the fraction of its speed reached (of_limit). 'infer': images per second of "
        "the circuit executor (from a byte per input bit; img_per_s_packed: from bits packed eight a byte; "
        "img_per_s_features: from raw features), the exported C and torchlogix's compiled model, with the "
        "executor's ceiling (reading a byte per input bit once at the memory bandwidth of the same threads: "
        "limit_img_per_s) and the fraction reached (of_limit). 'conv': the same as 'train' for a convolutional "
        "preset (--model). 'epoch': wall time of one training epoch per engine.",
    )
    p.add_argument("what", choices=["train", "conv", "infer", "epoch"])
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument(
        "--impls",
        type=_parse_list(str),
        default=None,
        help=f"implementations to compare. train/conv (default {','.join(TRAIN_IMPLS)}): diffgates: the fused "
        "kernels, dense layers stacked in tiles; diffgates-layers: the same kernels one layer at a time; "
        "diffgates-bf16: with bfloat16 activations; diffgates-gate-cost: the fused kernels plus the --gate-cost "
        "estimate in every step; train also: diffgates-learned[-torch]: learned connections among 8 candidates, "
        f"fused or torch ops. infer (default {','.join(INFER_IMPLS)}): the executor, the exported C, "
        "torchlogix's compiled model",
    )
    p.add_argument(
        "--engines",
        type=_parse_list(str),
        default=["torch", "cpu", "cpu-bf16"],
        help="epoch: engines to compare (cpu-bf16: --engine cpu --activations bfloat16)",
    )
    p.add_argument("--n-in", type=_number(int, low=1), default=784, help="input bits (default 784)")
    p.add_argument("--widths", type=_parse_list(int, low=1), default=[8000] * 6, help="train/epoch: layer widths")
    p.add_argument(
        "--infer-widths",
        type=_parse_list(int, low=1),
        default=[8000, 64000],
        help="infer: random 6-layer networks of these widths",
    )
    p.add_argument("--batches", type=_parse_list(int, low=1), default=[128, 256], help="train: batch sizes")
    p.add_argument(
        "--threads",
        type=_parse_list(int, low=1, high=MAX_THREADS),
        default=[1, 2],
        help="thread counts (infer: the executor also runs on every core of the machine)",
    )
    p.add_argument("--steps", type=_number(int, low=1), default=20, help="train/conv: timed steps (median reported)")
    p.add_argument(
        "--rounds",
        type=_number(int, low=1),
        default=1,
        help="train/conv: run the implementations in turn this many times and report each one's median; "
        "infer: the same for the executor's thread counts (evens out a noisy machine)",
    )
    p.add_argument("--samples", type=_number(int, low=1), default=200_000, help="infer: samples per timing")
    p.add_argument("--repeats", type=_number(int, low=1), default=5, help="infer: timings (best reported)")
    p.add_argument("--param", choices=PARAMETRIZATIONS, default="softmax16", help="gate parametrization")
    p.add_argument("--dataset", default="fashion-mnist", help="epoch: dataset")
    p.add_argument("--circuit", help="infer: a run's circuit.npz (or the run directory) instead of the random networks")
    p.add_argument("--model", default="fashion-conv-s", help="conv: the preset whose training step is timed")
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it stops like Ctrl-C: the tools it started are
    stopped and its half-written output folder removed."""


def _terminate(signum, frame):
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2, argparse's one line on stderr)
        return stop.code
    on_main_thread = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, _terminate) if on_main_thread else None
    try:
        return _run(args)
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, before)


def _run(args) -> int:
    try:
        if isinstance(getattr(args, "threads", None), int):  # one count for torch, kernels and executor
            from .kernels import set_threads

            set_threads(args.threads)
        return args.func(args)
    except DiffgatesError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into a reader that stopped (e.g. head): nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:  # full disk, unwritable directory, vanished file: the OS's reason, one line
        if args.debug:
            raise
        print(f"error: {os_error_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        terminated = isinstance(e, Terminated)
        print("terminated" if terminated else "interrupted", file=sys.stderr)
        return 143 if terminated else 130
    except Exception as e:  # a bug in diffgates: say so, and where the details are
        if args.debug:
            raise
        if _out_of_memory(e):  # what the machine cannot hold: outputs are written whole or not at all
            reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
            print(
                f"error: out of memory{f' ({reason})' if reason else ''}; use smaller inputs, a smaller model or "
                "batch, or fewer threads.",
                file=sys.stderr,
            )
            return 2
        kind = "" if isinstance(e, InternalError) else f"internal error ({type(e).__name__}): "
        print(f"error: {kind}{e}; run again with --debug for the traceback.", file=sys.stderr)
        return 1


def _out_of_memory(e: Exception) -> bool:
    """numpy's and Python's MemoryError, torch's CPU allocator failing (a RuntimeError) and CUDA's
    out of memory."""
    return (
        isinstance(e, MemoryError)
        or type(e).__name__ == "OutOfMemoryError"
        or (isinstance(e, RuntimeError) and "can't allocate memory" in str(e))
    )


def os_error_message(e: OSError) -> str:
    """The operating system's reason for a failed file operation, with the fix that fits it."""
    where = f" ({e.filename})" if e.filename else ""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free space or pick another --out, then run again"
    elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "pick a location you can write to, or fix its permissions"
    elif e.errno == errno.ENOENT:
        fix = "check the path"
    else:
        fix = "check the path and the disk, then run again"
    return f"{e.strerror or e}{where}; {fix}."


if __name__ == "__main__":
    sys.exit(main())
