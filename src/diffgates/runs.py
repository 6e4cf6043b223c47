"""Reading finished run directories back, and merging runs into one ensemble circuit."""

from __future__ import annotations

import json
from pathlib import Path

from .checkpoint import ENSEMBLE_FILE, load_model, save_model
from .circuit import Circuit
from .config import TrainConfig, absolute_path
from .data import CLASS_NAMES, load_dataset
from .errors import DiffgatesError, InternalError
from .evaluate import evaluate
from .nn import Ensemble, to_circuit
from .outdir import read_json, staged, write_json

#: what image runs must share to be merged; an image ensemble's directory records them and the
#: first member's seed (its test inputs: the noise of a denoising task)
IMAGE_OPTIONS = ("task", "scale", "noise", "patch", "output_span")


def run_config(run: str | Path) -> TrainConfig:
    """The options of a run directory, or of an ensemble directory that ``diffgates merge`` wrote
    (its options name the dataset, and for image networks the task and its options)."""
    run_dir = Path(run)
    if not (run_dir / ENSEMBLE_FILE).is_file():
        return TrainConfig.from_run(run_dir)
    info = read_json(run_dir / ENSEMBLE_FILE)
    if not isinstance(info, dict) or not isinstance(info.get("dataset"), str):
        raise DiffgatesError(f"{run_dir / ENSEMBLE_FILE} is corrupt (it must name the dataset).")
    options = info.get("options") if isinstance(info.get("options"), dict) else {}  # image members' task
    return TrainConfig.from_dict({**options, "dataset": info["dataset"], "data_dir": info.get("data_dir")})


def load_run(run: str):
    """(options, model, circuit) of a run directory, or of an ensemble directory (:func:`run_config`)."""
    run_dir = Path(run)
    cfg = run_config(run_dir)
    model, circuit = load_model(run_dir / "model.safetensors"), Circuit.load(run_dir / "circuit.npz")
    if cfg.task != "classify":  # image networks output values (runs written before the flag say so too)
        circuit = circuit.replace(argmax=False)
        for member in model.members if isinstance(model, Ensemble) else [model]:
            member.config.argmax = False
    return cfg, model, circuit


def class_names(run: str | Path) -> list[str] | None:
    """The names of a run's classes in label order, as its ``summary.json`` records them (runs on
    class folders, on Fashion-MNIST, CIFAR-10 or an .npz with ``class_names``; a bundled dataset's
    for runs that predate the record), else None."""
    path = Path(run) / "summary.json"
    summary = read_json(path) if path.is_file() else {}
    names = summary.get("class_names") if isinstance(summary, dict) else None
    if names is None:
        known = CLASS_NAMES.get(run_config(run).dataset)
        return list(known) if known else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DiffgatesError(f"{path} is corrupt (class_names must be a list of strings).")
    return names


def merge_runs(run_dirs: list[str], out: Path, overwrite: bool = False, data_dir: str | None = None) -> dict:
    """One circuit summing the class counts of trained runs (an ensemble), written to ``out`` with
    its model, options and summary; returns the summary."""
    if len(run_dirs) < 2:
        raise DiffgatesError(f"merging needs two or more runs; got only {run_dirs[0]}.")
    runs = [load_run(run) for run in run_dirs]  # every run is read before anything is written
    for cfg, _, _ in runs:  # runs written before their options named files absolutely
        cfg.anchor_paths()
    datasets = {(cfg.dataset, cfg.data_dir) for cfg, _, _ in runs}
    if len(datasets) > 1:
        raise DiffgatesError(
            f"the runs were trained on different datasets ({', '.join(sorted(d for d, _ in datasets))})."
        )
    ensemble = Ensemble(
        [m for _, model, _ in runs for m in (model.members if isinstance(model, Ensemble) else [model])]
    )
    cfg = runs[0][0]
    options = {k: getattr(cfg, k) for k in (*IMAGE_OPTIONS, "seed")} if cfg.task != "classify" else {}
    if len({tuple(getattr(c, k) for k in IMAGE_OPTIONS) for c, _, _ in runs}) > 1:
        raise DiffgatesError(f"the runs differ in their task or its options ({', '.join(IMAGE_OPTIONS)}).")
    cfg.data_dir = absolute_path(data_dir) if data_dir else cfg.data_dir
    with staged(out, overwrite, "ensemble", inputs=[*run_dirs, data_dir]) as work:
        circuit = to_circuit(ensemble.eval())
        save_model(ensemble, work / "model.safetensors")
        circuit.save(work / "circuit.npz")
        info = {
            "dataset": cfg.dataset,
            "data_dir": cfg.data_dir,
            "members": [absolute_path(r) for r in run_dirs],
            "options": options,
        }
        (work / ENSEMBLE_FILE).write_text(json.dumps(info, indent=2) + "\n")
        if options:  # image networks: the merged output is the members' summed counts over their summed groups
            from .image.data import test_inputs
            from .image.train import evaluate_image

            pairs = test_inputs(cfg.task, cfg.scale, cfg.noise, cfg.seed, cfg.dataset, cfg.data_dir)
            summary = evaluate_image(cfg, ensemble, circuit, pairs)
        else:
            summary = evaluate(ensemble, circuit, load_dataset(cfg.dataset, cfg.data_dir))
        summary.update({"dataset": cfg.dataset, "members": len(ensemble.members), "gates": ensemble.n_gates})
        write_json(work / "summary.json", summary)
        if summary["circuit_mismatches"]:
            raise InternalError(
                f"the merged circuit disagrees with the members on {summary['circuit_mismatches']} test samples; "
                "this is a bug in diffgates, please report it."
            )
    return summary
