"""The ``diffgates`` command line: train, eval, info (and the later stages as they land)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from .config import TrainConfig
from .errors import DiffgatesError


def _parse_list(kind):
    def parse(text: str):
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError as e:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {kind.__name__}s, got {text!r}"
            ) from e

    return parse


def _arg_type(annotation):
    """argparse type for a TrainConfig field annotation (a string under postponed evaluation)."""
    text = str(annotation)
    if "list[int]" in text:
        return _parse_list(int)
    if "list[float]" in text:
        return _parse_list(float)
    for name, kind in (("int", int), ("float", float)):
        if text.startswith(name):
            return kind
    return str


def add_train_options(p: argparse.ArgumentParser) -> None:
    for f in fields(TrainConfig):
        default = f.default if not callable(f.default_factory) else f.default_factory()
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        p.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=_arg_type(f.type),
            choices=f.metadata.get("choices"),
            default=argparse.SUPPRESS,
            help=f"{f.metadata['help']} (default: {shown})",
        )


def cmd_train(args) -> int:
    from .train import train

    options = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    cfg = TrainConfig.from_dict(options)
    out = args.out or f"runs/{Path(cfg.dataset).stem}"
    summary = train(cfg, out, overwrite=args.overwrite, quiet=args.quiet)
    print(json.dumps(summary, indent=2))
    print(f"run written to {out}")
    return 0


def load_run(run: str):
    from .checkpoint import load_model
    from .circuit import Circuit

    run_dir = Path(run)
    if not (run_dir / "config.json").is_file():
        raise DiffgatesError(f"{run_dir} is not a run directory (no config.json); pass the --out of 'diffgates train'.")
    cfg = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    return cfg, load_model(run_dir / "model.safetensors"), Circuit.load(run_dir / "circuit.npz")


def cmd_eval(args) -> int:
    from .data import load_dataset
    from .train import evaluate

    cfg, model, circuit = load_run(args.run)
    ds = load_dataset(cfg.dataset, args.data_dir or cfg.data_dir)
    result = evaluate(model, circuit, ds)
    for key in ("test_acc_relaxed", "test_acc_discrete", "test_acc_circuit"):
        print(f"{key:20s} {result[key]:.4f}")
    print(f"{'circuit_mismatches':20s} {result['circuit_mismatches']} of {result['test_samples']}")
    if result["circuit_mismatches"]:
        print("error: the circuit and the discrete model disagree on some test samples.", file=sys.stderr)
        return 1
    return 0


def cmd_info(args) -> int:
    from . import gates

    _, model, circuit = load_run(args.run)
    print(
        f"model: {len(model.layers)} logic layers, {model.n_gates} gates, "
        f"{circuit.n_inputs} input bits from {circuit.n_features} features, "
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffgates",
        description="Train logic gate networks by gradient descent and ship them as circuits.",
    )
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "train",
        help="train a model and write a run directory",
        description="Train a dense logic gate network, then extract and check its circuit.",
    )
    p.add_argument("--out", help="run directory to create (default: runs/<dataset>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "eval",
        help="re-evaluate a run's checkpoint and circuit",
        description="Recompute relaxed, discrete and circuit accuracy from a run's saved files; "
        "exits 1 if the circuit and the discrete model disagree on any test sample.",
    )
    p.add_argument("run", help="run directory written by 'diffgates train'")
    p.add_argument("--data-dir", help="directory holding the dataset files")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "info",
        help="gate-type histogram per layer",
        description="Print a run's model size and its gate-type histogram per layer.",
    )
    p.add_argument("run", help="run directory written by 'diffgates train'")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DiffgatesError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
