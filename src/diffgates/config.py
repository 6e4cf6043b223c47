"""TrainConfig: every training option in one dataclass; the CLI is generated from it."""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from .data import NAMED
from .encode import STRATEGIES
from .errors import DiffgatesError
from .kernels import ENGINES
from .native import MAX_THREADS
from .nn.dense import CONNECTIONS, FORWARDS
from .nn.model import ACTIVATIONS, ModelConfig
from .nn.parametrization import INITS, PARAMETRIZATIONS

CONFIG_FILE = "config.yaml"


def absolute_path(path: str) -> str:
    """``path`` (``~`` expanded) as an absolute path from the working directory."""
    return os.path.abspath(os.path.expanduser(path))


def _field_default(cls, name: str):
    """The default of dataclass ``cls``'s field ``name`` (a fresh list for list fields)."""
    f = cls.__dataclass_fields__[name]
    return f.default_factory() if callable(f.default_factory) else f.default


def _model_default(name: str):
    return _field_default(ModelConfig, name)


def opt(default, help: str, choices=None, low=None, above=None, high=None):
    """A field with its help, allowed choices and range (``low <= v``, ``above < v``, ``v <= high``;
    for lists, of each item): the CLI, config files and the Python API all check against these."""
    meta = {"help": help, "choices": choices, "low": low, "above": above, "high": high}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    model: str | None = opt(None, "a named architecture from 'diffgates models'; explicit options override it")
    dataset: str = opt(
        "digits",
        "digits, fashion-mnist, mnist, cifar10, a .npz file with x_train, y_train, x_test, y_test "
        "(uint8 features are pixels and are scaled to [0, 1]; other numbers are used as they are; an optional "
        "class_names array names the classes in label order, for predict), or a folder "
        "with a subfolder of images for each class (FOLDER/CLASS/*, every fifth file of a class held out for "
        "testing, or FOLDER/train/CLASS/ and FOLDER/test/CLASS/); image tasks "
        "(--task superres, denoise): digits, mnist, fashion-mnist, photos (scikit-image's and scikit-learn's) or a "
        "folder of image files (its train/ and test/ folders, else every fifth file in name order held out for "
        "testing)",
    )
    data_dir: str | None = opt(None, "directory holding the dataset files (IDX for MNIST-like data)")
    task: str = opt(
        "classify",
        "what the network learns: classify (class counts, argmax), superres (upscale images by --scale) or "
        "denoise (remove --noise); the image tasks slide one network over every pixel of an image and read "
        "each output pixel as the count of ones in its group of output gates (--dataset digits, mnist, "
        "fashion-mnist, photos or a folder of images)",
        ("classify", "superres", "denoise"),
    )
    scale: int = opt(2, "--task superres: upscaling factor (each input pixel becomes scale x scale)", low=2, high=8)
    noise: str = opt(
        "gaussian:0.1",
        "--task denoise: the noise to remove, gaussian:SIGMA (of the [0, 1] range) or salt-pepper:FRACTION",
    )
    patch: int = opt(3, "image tasks: the input window each output position reads (odd, pixels a side)", low=1, high=15)
    patch_samples: int = opt(
        500_000, "image tasks: random training windows drawn from the training images per epoch", low=1
    )
    output_span: float = opt(
        1.0,
        "image tasks: an output value is (count / group - 0.5) x SPAN + 0.5, clipped to [0, 1]; above 1 the "
        "counts reach past black and white, so inverted inputs can act as negative weights (a sharpening "
        "filter's) without a constant they cannot subtract",
        low=1,
        high=4,
    )
    widths: list[int] = opt(_model_default("widths"), "gates per layer, comma separated (e.g. 8000,8000,8000)", low=1)
    encoder_bits: int = opt(_model_default("encoder_bits"), "thresholds per input feature (thermometer code)", low=1)
    encoder_strategy: str = opt(_model_default("encoder_strategy"), "how thresholds are placed", STRATEGIES)
    encoder_thresholds: list[float] | None = opt(
        _model_default("encoder_thresholds"), "thresholds for --encoder-strategy fixed, comma separated"
    )
    image_shape: list[int] | None = opt(
        _model_default("image_shape"),
        "channels,height,width of the images for convolutions; known for mnist, fashion-mnist, cifar10",
    )
    conv: list[str] = opt(
        _model_default("conv"),
        "convolution blocks before the dense layers, K:SIZE[:PAD[:POOL[:POOL_PAD[:STRIDE[:DEPTH]]]]] each, comma "
        "separated (DEPTH: that block's tree depth; default --tree-depth)",
    )
    tree_depth: int = opt(
        _model_default("tree_depth"),
        "depth of each convolution's logic-gate tree (2**depth leaves) where its block gives none",
        low=1,
        high=5,
    )
    conv_groups: int = opt(
        _model_default("conv_groups"), "channel groups without cross wiring in the convolutions after the first", low=1
    )
    tree_channels: int = opt(
        _model_default("tree_channels"),
        "input channels one convolution tree's leaves are drawn from (the paper: 2)",
        low=1,
    )
    head_blocks: int = opt(
        _model_default("head_blocks"),
        "the dense layers read the outputs of the last N convolution blocks (1: the last only, as the paper)",
        low=1,
    )
    head_input: str = opt(
        _model_default("head_input"),
        "what the dense layers read: the convolution blocks' outputs (--head-blocks), or those and the encoder's bits "
        "beside them (a skip connection around the convolutions)",
        ("blocks", "blocks+bits"),
    )
    trunk: str | None = opt(
        None,
        "keep the first --trunk-blocks convolution blocks of this run (with its encoder) as trained, discrete and "
        "fixed, and train only the layers after them; the run's convolution, encoder and gate options replace these",
    )
    trunk_blocks: int = opt(0, "how many convolution blocks of --trunk to keep (0: all)", low=0)
    random_crop: int = opt(0, "augmentation: pad images by N pixels and crop back at a random offset (0: off)", low=0)
    flip: float = opt(0.0, "augmentation: probability of a horizontal flip (0: off)", low=0, high=1)
    parametrization: str = opt(_model_default("parametrization"), "gate parametrization", PARAMETRIZATIONS)
    connections: str = opt(
        _model_default("connections"),
        "dense wiring: fixed random (unique reads every input), local (each gate reads two inputs within --window "
        "of its position, over the maps' positions after convolutions: easier to place and route on an FPGA), "
        "or learned among --candidates random inputs",
        CONNECTIONS,
    )
    candidates: int = opt(
        _model_default("candidates"), "candidate inputs per gate input for --connections learned", low=1
    )
    window: int = opt(
        _model_default("window"),
        "for --connections local: the band of inputs each gate reads from (narrower routes more easily on an FPGA)",
        low=2,
    )
    init: str = opt(_model_default("init"), "weight init: residual biases gates toward pass-through A", INITS)
    residual_strength: float | None = opt(
        _model_default("residual_strength"), "residual init logit (default 5 for softmax16, 3 for truth4)"
    )
    forward: str = opt(
        _model_default("forward"),
        "training forward: relaxed gates; discrete with straight-through gradients (hard); or discrete gates "
        "drawn from noisy logits, with the gradient of the noisy relaxation (gumbel, Gumbel-ST)",
        FORWARDS,
    )
    gumbel_scale: float = opt(
        _model_default("gumbel_scale"),
        "noise scale for --forward gumbel (Gumbel noise for softmax16, logistic noise for truth4's entries)",
        above=0,
    )
    grad_factor: float = opt(
        _model_default("grad_factor"),
        "multiply each layer's input gradient by this factor (e.g. 1.5-2 for deep nets)",
        above=0,
    )
    activations: str = opt(
        _model_default("activations"),
        "dtype the dense layers keep activations and their gradients in; bfloat16 halves the memory traffic "
        "of the fused CPU kernels (arithmetic stays float32)",
        tuple(ACTIVATIONS),
    )
    tau: float = opt(_model_default("tau"), "GroupSum temperature (scores = counts / tau)", above=0, high=1e6)
    lr: float = opt(0.05, "Adam learning rate", above=0)
    lr_schedule: str = opt(
        "constant", "learning-rate schedule: constant, or cosine decay to 0 over the run", ("constant", "cosine")
    )
    weight_decay: float = opt(0.0, "AdamW weight decay", low=0)
    batch_size: int = opt(128, "training batch size", low=1)
    epochs: int = opt(60, "passes over the training set", low=1)
    time_budget: float | None = opt(
        None,
        "stop training after this many seconds (checked after every step; the last, partial epoch is scored "
        "and the run finished as usual); with --lr-schedule cosine the rate reaches 0 at the budget",
        above=0,
    )
    validation: float = opt(
        0.0,
        "hold out this fraction of the training set (chosen by --seed; image tasks hold out whole images) and "
        "keep the epoch whose discrete network scores best on it (accuracy; PSNR for image tasks), instead of "
        "the last one (0: no validation split)",
        low=0,
        high=0.5,
    )
    patience: int = opt(
        0, "with --validation: stop after this many epochs without a better validation score (0: never)", low=0
    )
    seed: int = opt(_model_default("seed"), "seed for wiring, initialisation and data order", low=0, high=2**32 - 1)
    engine: str = opt(
        "auto",
        "logic-layer kernels: auto picks the fused CPU kernels when they build, torch ops elsewhere (GPU); "
        "reference is the slow 16-term oracle",
        ENGINES,
    )
    init_from: str | None = opt(
        None, "start from the weights of this run directory (same architecture), e.g. to fine-tune with --forward hard"
    )
    teacher: list[str] | None = opt(
        None,
        "knowledge distillation: logic runs (their circuits) or 'diffgates teacher' runs (a CNN) that teach, "
        "comma separated; the student also fits their averaged class scores on each training image "
        "(with --random-crop/--flip: on the augmented image; the scores are cached in $DIFFGATES_CACHE, "
        "default ~/.cache/diffgates)",
    )
    teacher_temperature: float = opt(
        1.0,
        "with --teacher: divide the teachers' averaged scores by this before the softmax "
        "(above 1 softens the targets, which widened the relaxed-to-discrete gap on Fashion-MNIST)",
        above=0,
    )
    distill_weight: float = opt(
        0.5, "with --teacher: weight of the teacher's soft targets against the labels (0-1)", low=0, high=1
    )
    gate_cost: float = opt(
        0.0,
        "penalise circuit size: adds GATE_COST x (expected live two-input gates and pooling ORs / gates of the "
        "unrolled network) to the loss; constants, wires, inverters and unread gates compile away, so a larger "
        "cost gives a smaller optimised circuit for some accuracy (try 0.5-2)",
        low=0,
    )
    checkpoint_every: int = opt(
        500,
        "save the training state every N steps (and after every epoch); 0: epochs only. Image networks "
        "(--task superres|denoise) save it after every epoch only",
        low=0,
    )
    device: str = opt("cpu", "torch device (cpu, cuda, cuda:1, ...)")
    threads: int | None = opt(
        None,
        "CPU threads for torch, the kernels and the circuit executor (default: every core)",
        low=1,
        high=MAX_THREADS,
    )

    def rate(self, done: float) -> float:
        """The learning rate ``done`` (0 to 1) of the way through training: constant, or cosine decay to 0."""
        return self.lr * 0.5 * (1 + math.cos(math.pi * done)) if self.lr_schedule == "cosine" else self.lr

    def set_rate(self, optimizer, position: float, seconds: float | None) -> None:
        """Set ``optimizer``'s learning rate ``position`` (0 to 1) of the way through the epochs and
        ``seconds`` into training: with a time budget, cosine decay follows whichever is further on."""
        if self.lr_schedule != "cosine":
            return
        done = max(position, seconds / self.time_budget) if self.time_budget else position
        for group in optimizer.param_groups:
            group["lr"] = self.rate(done)

    def to_dict(self) -> dict:
        return asdict(self)

    def anchor_paths(self) -> TrainConfig:
        """Make the options that name files and directories (a dataset file or folder, ``data_dir``, ``trunk``,
        ``init_from``, ``teacher``) absolute, from the working directory: a run's saved options then
        find them from any directory (``eval``, ``report``, ``--resume``, ``merge``)."""
        if self.dataset not in NAMED and (self.dataset.endswith(".npz") or os.path.isdir(self.dataset)):
            self.dataset = absolute_path(self.dataset)
        for name in ("data_dir", "trunk", "init_from"):
            if getattr(self, name):
                setattr(self, name, absolute_path(getattr(self, name)))
        if self.teacher:
            self.teacher = [absolute_path(t) for t in self.teacher]
        return self

    def save(self, path: Path) -> None:
        """Write the resolved options as YAML (``diffgates train --config`` reads it back)."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(
            "# diffgates training options; repeat with: diffgates train --config THIS_FILE\n"
            + yaml.safe_dump(self.to_dict(), sort_keys=False)
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path, strict: bool = True, **overrides) -> TrainConfig:
        """Options from a YAML or JSON file, then ``overrides`` on top; unknown keys are refused."""
        path = Path(path)
        if not path.is_file():
            raise DiffgatesError(f"no config file at {path}.")
        data = read_yaml(path, "YAML or JSON") or {}
        if not isinstance(data, dict):
            raise DiffgatesError(f"{path} must hold a mapping of option names to values.")
        return cls.from_dict({**data, **overrides}, strict)

    @classmethod
    def from_dict(cls, d: dict, strict: bool = True) -> TrainConfig:
        """Options from a mapping; a ``model`` preset fills in every option the mapping leaves out."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(map(str, set(d) - known))
        if unknown:
            raise DiffgatesError(f"unknown config keys: {', '.join(unknown)}; see 'diffgates train --help'.")
        if d.get("model"):
            from .zoo import preset

            d = {**preset(d["model"]).options, **d}
        cfg = cls(**d)
        cfg.check(strict)
        return cfg

    @classmethod
    def from_run(cls, run: str | Path) -> TrainConfig:
        path = Path(run) / CONFIG_FILE
        if not path.is_file():
            raise DiffgatesError(
                f"{run} is not a run directory (no {CONFIG_FILE}); pass the --out of 'diffgates train'."
            )
        return cls.load(path, strict=False)

    def check(self, strict: bool = True) -> TrainConfig:
        """Check every option's type and range against its field, then the combinations.

        An option that does nothing in the given combination (``--encoder-bits`` with fixed
        thresholds, ``--candidates`` without learned connections, ...) is refused when it differs
        from its default; ``strict=False`` (a saved run's options) resets it instead."""
        for f in fields(self):
            setattr(self, f.name, check_value(f, getattr(self, f.name)))
        if not self.widths:
            raise DiffgatesError("widths must list at least one layer size.")
        if not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            raise DiffgatesError(f"--device must be cpu, cuda or cuda:N (a GPU's number), got {self.device!r}.")
        if self.image_shape is not None and len(self.image_shape) != 3:
            raise DiffgatesError(f"image_shape must be channels,height,width, got {self.image_shape}.")
        if self.encoder_strategy == "fixed":
            if not self.encoder_thresholds:
                raise DiffgatesError("--encoder-strategy fixed needs --encoder-thresholds, e.g. 0.25,0.5,0.75.")
            n = len(self.encoder_thresholds)
            if strict and self.encoder_bits not in (n, _default("encoder_bits")):
                raise DiffgatesError(
                    f"--encoder-bits {self.encoder_bits} conflicts with the {n} --encoder-thresholds; "
                    "fixed thresholds set the bit count, so leave --encoder-bits out."
                )
            self.encoder_bits = n  # what the encoder really has, so config.yaml records it
        unused = {
            "encoder_thresholds": (self.encoder_strategy != "fixed", "--encoder-strategy fixed"),
            "candidates": (self.connections != "learned", "--connections learned"),
            "window": (self.connections != "local", "--connections local"),
            "gumbel_scale": (self.forward != "gumbel", "--forward gumbel"),
            "residual_strength": (self.init != "residual", "--init residual"),
            "teacher_temperature": (not self.teacher, "--teacher"),
            "distill_weight": (not self.teacher, "--teacher"),
            "trunk_blocks": (not self.trunk, "--trunk"),
            "patience": (not self.validation, "--validation"),
        }
        image = self.task != "classify"
        unused["scale"] = (self.task != "superres", "--task superres")
        unused["noise"] = (self.task != "denoise", "--task denoise")
        unused["patch"] = (not image, "--task superres or denoise")
        unused["patch_samples"] = (not image, "--task superres or denoise")
        unused["output_span"] = (not image, "--task superres or denoise")
        for name in ("tree_depth", "conv_groups", "tree_channels", "head_blocks", "head_input"):
            unused[name] = (not (self.conv or self.trunk), "--conv (convolution blocks)")  # a trunk brings its own
        for name, (idle, needs) in unused.items():
            if idle and getattr(self, name) != _default(name):
                if strict:
                    flag = "--" + name.replace("_", "-")
                    raise DiffgatesError(
                        f"{flag} does nothing without {needs}; leave it out or add {needs.split()[0]}."
                    )
                setattr(self, name, _default(name))
        if image:
            self._check_image_task()
        if (self.random_crop or self.flip) and not (self.conv or self.image_shape):
            raise DiffgatesError("augmentation needs images: give --image-shape or convolution blocks (--conv).")
        return self

    def _check_image_task(self) -> None:
        if self.patch % 2 == 0:
            raise DiffgatesError(f"--patch must be odd (a window centred on its pixel), got {self.patch}.")
        noise_spec(self.noise)
        taken = {
            "conv": "convolution blocks", "teacher": "a teacher", "trunk": "a trunk", "model": "a preset",
            "random_crop": "augmentation", "flip": "augmentation", "image_shape": "an image shape",
        }  # fmt: skip
        for name, what in taken.items():
            if getattr(self, name) != _default(name):
                flag = "--" + name.replace("_", "-")
                raise DiffgatesError(
                    f"--task {self.task} trains dense networks on windows; {flag} ({what}) does not apply."
                )


def read_yaml(path: Path, what: str = "YAML"):
    """The YAML (or JSON) document in ``path``; a file that is not one is refused in one line that
    says where it went wrong."""
    try:
        return yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        raise DiffgatesError(f"{path} is not valid {what}: it is not text (UTF-8).") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise DiffgatesError(f"{path} is not valid {what}{where}: {problem}.") from None


def noise_spec(text: str) -> tuple[str, float]:
    """(kind, amount) of a --noise value: gaussian:SIGMA or salt-pepper:FRACTION, in (0, 1]."""
    kind, _, amount = str(text).partition(":")
    try:
        value = float(amount)
    except ValueError:
        value = float("nan")
    if kind not in ("gaussian", "salt-pepper") or not 0 < value <= 1:
        raise DiffgatesError(
            f"--noise must be gaussian:SIGMA or salt-pepper:FRACTION with a number in (0, 1], got {text!r}."
        )
    return kind, value


def _default(name: str):
    return _field_default(TrainConfig, name)


def _kind(annotation) -> tuple[str, bool, bool]:
    """(item type name, is a list, may be None) of a field annotation such as ``list[int] | None``."""
    text = str(annotation).replace(" ", "")
    optional = text.endswith("|None")
    base = text.removesuffix("|None")
    if base.startswith("list["):
        return base[5:-1], True, optional
    return base, False, optional


def check_value(f, value):
    """``value`` checked (and numbers normalised) against field ``f``'s type, choices and range."""
    kind, is_list, optional = _kind(f.type)
    if value is None:
        if optional:
            return None
        raise DiffgatesError(f"{f.name} needs a value, got none.")
    if is_list:
        if not isinstance(value, (list, tuple)):
            raise DiffgatesError(f"{f.name} must be a list of {kind} values (e.g. [1, 2] in YAML), got {value!r}.")
        return [_check_item(f, kind, v) for v in value]
    return _check_item(f, kind, value)


_TYPE_NAMES = {"int": "an integer", "float": "a finite number", "str": "a string"}


def _check_item(f, kind: str, v):
    if kind == "float" and isinstance(v, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            v = float(v)
        except ValueError:
            pass
    ok = {
        "int": isinstance(v, int) and not isinstance(v, bool),
        "float": isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
        "str": isinstance(v, str),
    }[kind]
    if not ok:
        raise DiffgatesError(f"{f.name} must be {_TYPE_NAMES[kind]}, got {v!r}.")
    v = float(v) if kind == "float" else v
    m = f.metadata
    if m.get("choices") and v not in m["choices"]:
        raise DiffgatesError(f"{f.name} must be one of {', '.join(m['choices'])}, got {v!r}.")
    if m.get("low") is not None and v < m["low"]:
        raise DiffgatesError(f"{f.name} must be at least {m['low']}, got {v!r}.")
    if m.get("above") is not None and v <= m["above"]:
        raise DiffgatesError(f"{f.name} must be greater than {m['above']}, got {v!r}.")
    if m.get("high") is not None and v > m["high"]:
        raise DiffgatesError(f"{f.name} must be at most {m['high']}, got {v!r}.")
    return v
