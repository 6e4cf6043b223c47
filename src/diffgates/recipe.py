"""``diffgates recipe FILE``: a multi-stage training recipe run as one command.

A recipe is a YAML file::

    out: runs/fashion-90          # where the stages' runs go: OUT/STAGE (``--out`` overrides)
    stages:
      - name: teacher
        command: teacher          # a 'diffgates teacher' run; the default command is train
        options: {dataset: fashion-mnist, epochs: 15}
      - name: trunk
        options: {model: fashion-conv, teacher: "@teacher", epochs: 40}
      - name: trunk-hard
        base: trunk               # start from that stage's options, then apply these
        options: {init_from: "@trunk", forward: hard, epochs: 4}

``"@STAGE"`` in an option stands for that earlier stage's run directory. Stages run in order; a
finished stage (it has ``summary.json``) is skipped, an interrupted training resumes from its last
checkpoint, so running the recipe again after a crash or a kill continues where it stopped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from . import outdir
from .config import TrainConfig, read_yaml
from .errors import DiffgatesError

COMMANDS = ("train", "teacher")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class Stage:
    name: str
    command: str = "train"
    base: str | None = None
    options: dict = field(default_factory=dict)


@dataclass
class Recipe:
    out: str
    stages: list[Stage]


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a recipe: names, commands, and that every reference is to an earlier stage."""
    path = Path(path)
    if not path.is_file():
        raise DiffgatesError(f"no recipe file at {path}.")
    data = read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("stages"), list) or not data["stages"]:
        raise DiffgatesError(f"{path} must hold a mapping with a non-empty list of 'stages'.")
    unknown = set(data) - {"out", "stages"}
    if unknown:
        raise DiffgatesError(
            f"{path}: unknown recipe keys {', '.join(sorted(map(str, unknown)))}; a recipe has out and stages."
        )
    out = data.get("out", f"runs/{path.stem}")
    if not isinstance(out, str):
        raise DiffgatesError(f"{path}: out must be a directory name, got {out!r}.")
    stages: list[Stage] = []
    for i, raw in enumerate(data["stages"], 1):
        if not isinstance(raw, dict) or set(raw) - {"name", "command", "base", "options"}:
            raise DiffgatesError(f"{path}: stage {i} must be a mapping of name, command, base and options.")
        stage = Stage(raw.get("name"), raw.get("command", "train"), raw.get("base"), raw.get("options") or {})
        earlier = {s.name for s in stages}
        if not isinstance(stage.name, str) or not _NAME.match(stage.name) or stage.name in earlier:
            raise DiffgatesError(f"{path}: stage {i} needs a unique name of letters, digits, '-', '_' or '.'.")
        if stage.command not in COMMANDS:
            raise DiffgatesError(f"{path}: stage {stage.name}: command must be one of {', '.join(COMMANDS)}.")
        if not isinstance(stage.options, dict):
            raise DiffgatesError(f"{path}: stage {stage.name}: options must be a mapping.")
        if stage.base is not None and not isinstance(stage.base, str):
            raise DiffgatesError(f"{path}: stage {stage.name}: base must be the name of an earlier stage.")
        refs = _references(stage.options) | ({stage.base} if stage.base is not None else set())
        missing = sorted(map(str, refs - earlier))
        if missing:
            raise DiffgatesError(f"{path}: stage {stage.name} refers to {', '.join(missing)}, not an earlier stage.")
        if stage.base is not None and stage.command != "train":
            raise DiffgatesError(f"{path}: stage {stage.name}: only train stages take a base.")
        _check_options(path, stage)
        stages.append(stage)
    return Recipe(out, stages)


def _check_options(path: Path, stage: Stage) -> None:
    """Each option's name and value, before any stage runs; the combinations too for a stage
    without a base (one with a base is checked when it starts, once its base exists)."""
    from .config import check_value
    from .teacher import TeacherConfig

    known = TrainConfig.__dataclass_fields__ if stage.command == "train" else TeacherConfig.__dataclass_fields__
    extra = {"dataset", "data_dir", "image_shape"} if stage.command == "teacher" else set()
    unknown = sorted(map(str, set(stage.options) - set(known) - extra))
    if unknown:
        raise DiffgatesError(f"{path}: stage {stage.name}: unknown {stage.command} options {', '.join(unknown)}.")
    if stage.command == "train":
        try:
            for name, value in stage.options.items():
                check_value(known[name], value)
            if stage.base is None:  # complete already: the combinations too
                TrainConfig.from_dict(_resolve(stage.options, Path(".")))
        except DiffgatesError as e:
            raise DiffgatesError(f"{path}: stage {stage.name}: {e}") from None


def _references(value) -> set[str]:
    if isinstance(value, str) and value.startswith("@"):
        return {value[1:]}
    if isinstance(value, list):
        return set().union(*map(_references, value)) if value else set()
    if isinstance(value, dict):
        return set().union(*map(_references, value.values())) if value else set()
    return set()


def _resolve(value, out: Path):
    """Options with every "@STAGE" replaced by that stage's run directory."""
    if isinstance(value, str) and value.startswith("@"):
        return str(out / value[1:])
    if isinstance(value, list):
        return [_resolve(v, out) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, out) for k, v in value.items()}
    return value


def stage_state(run: Path) -> str:
    """'done', 'resume' (an interrupted training with a checkpoint), 'restart' (begun by this
    recipe, nothing to resume) or 'new'."""
    if not run.exists():
        return "new"
    kind = outdir.kind_of(run)
    if kind is None and any(run.iterdir()):
        raise DiffgatesError(f"{run} holds files that diffgates did not write; move it away and run the recipe again.")
    if (run / "summary.json").is_file():
        return "done"
    from .checkpoint import STATE_FILE

    return "resume" if (run / STATE_FILE).is_file() else "restart"


def run_recipe(recipe: Recipe, out: Path | None = None, quiet: bool = False, echo=print) -> list[dict]:
    """Run every unfinished stage in order; returns each stage's summary."""
    from .outdir import read_json
    from .teacher import run_teacher
    from .train import train

    out = Path(out or recipe.out)
    summaries = []
    for i, stage in enumerate(recipe.stages, 1):
        run = out / stage.name
        state = stage_state(run)
        head = f"[{i}/{len(recipe.stages)}] {stage.name}"
        if state == "done":
            echo(f"{head}: done already ({run})")
            summaries.append(read_json(run / "summary.json"))
            continue
        options = _resolve(stage.options, out)
        echo(f"{head}: {'resuming' if state == 'resume' else 'running'} {stage.command} into {run}")
        if stage.command == "teacher":
            summaries.append(run_teacher(out=run, overwrite=state == "restart", quiet=quiet, **options))
        elif state == "resume":
            summaries.append(train(TrainConfig.from_run(run), run, quiet=quiet, resume=True))
        else:
            if stage.base is not None:
                options = {**TrainConfig.from_run(out / stage.base).to_dict(), **options}
            cfg = TrainConfig.from_dict(options)
            summaries.append(train(cfg, run, overwrite=state == "restart", quiet=quiet))
    return summaries
