"""TrainConfig: every training option in one dataclass; the CLI is generated from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from .errors import DiffgatesError

CONFIG_FILE = "config.yaml"


def opt(default, help: str, choices=None):
    meta = {"help": help, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    model: str | None = opt(None, "a named architecture from 'diffgates models'; explicit options override it")
    dataset: str = opt(
        "digits", "digits, fashion-mnist, mnist, cifar10, or a .npz file with x_train, y_train, x_test, y_test"
    )
    data_dir: str | None = opt(None, "directory holding the dataset files (IDX for MNIST-like data)")
    widths: list[int] = opt([4000, 4000, 4000], "gates per layer, comma separated (e.g. 8000,8000,8000)")
    encoder_bits: int = opt(4, "thresholds per input feature (thermometer code)")
    encoder_strategy: str = opt("uniform", "how thresholds are placed", ("uniform", "quantile", "fixed"))
    encoder_thresholds: list[float] | None = opt(None, "thresholds for --encoder-strategy fixed, comma separated")
    image_shape: list[int] | None = opt(
        None, "channels,height,width of the images for convolutions; known for mnist, fashion-mnist, cifar10"
    )
    conv: list[str] = opt(
        [], "convolution blocks before the dense layers, K:SIZE[:PAD[:POOL[:POOL_PAD[:STRIDE]]]] each, comma separated"
    )
    tree_depth: int = opt(3, "depth of each convolution's logic-gate tree (2**depth leaves)")
    conv_groups: int = opt(1, "channel groups without cross wiring in the convolutions after the first")
    tree_channels: int = opt(2, "input channels one convolution tree's leaves are drawn from (the paper: 2)")
    head_blocks: int = opt(
        1, "the dense layers read the outputs of the last N convolution blocks (1: the last only, as the paper)"
    )
    head_input: str = opt(
        "blocks",
        "what the dense layers read: the convolution blocks' outputs (--head-blocks), or those and the encoder's bits "
        "beside them (a skip connection around the convolutions)",
        ("blocks", "blocks+bits"),
    )
    trunk: str | None = opt(
        None,
        "keep the first --trunk-blocks convolution blocks of this run (with its encoder) as trained, discrete and "
        "fixed, and train only the layers after them; the run's convolution, encoder and gate options replace these",
    )
    trunk_blocks: int = opt(0, "how many convolution blocks of --trunk to keep (0: all)")
    random_crop: int = opt(0, "augmentation: pad images by N pixels and crop back at a random offset (0: off)")
    flip: float = opt(0.0, "augmentation: probability of a horizontal flip (0: off)")
    parametrization: str = opt("truth4", "gate parametrization", ("softmax16", "truth4"))
    connections: str = opt(
        "unique",
        "dense wiring: fixed random (unique reads every input), or learned among --candidates random inputs",
        ("unique", "random", "learned"),
    )
    candidates: int = opt(8, "candidate inputs per gate input for --connections learned")
    init: str = opt("residual", "weight init: residual biases gates toward pass-through A", ("residual", "gaussian"))
    residual_strength: float | None = opt(None, "residual init logit (default 5 for softmax16, 3 for truth4)")
    forward: str = opt(
        "relaxed",
        "training forward: relaxed gates; discrete with straight-through gradients (hard); or discrete gates "
        "drawn from noisy logits, with the gradient of the noisy relaxation (gumbel, Gumbel-ST)",
        ("relaxed", "hard", "gumbel"),
    )
    gumbel_scale: float = opt(
        1.0, "noise scale for --forward gumbel (Gumbel noise for softmax16, logistic noise for truth4's entries)"
    )
    grad_factor: float = opt(1.0, "multiply each layer's input gradient by this factor (e.g. 1.5-2 for deep nets)")
    activations: str = opt(
        "float32",
        "dtype the dense layers keep activations and their gradients in; bfloat16 halves the memory traffic "
        "of the fused CPU kernels (arithmetic stays float32)",
        ("float32", "bfloat16"),
    )
    tau: float = opt(10.0, "GroupSum temperature (scores = counts / tau)")
    lr: float = opt(0.05, "Adam learning rate")
    lr_schedule: str = opt(
        "constant", "learning-rate schedule: constant, or cosine decay to 0 over the run", ("constant", "cosine")
    )
    weight_decay: float = opt(0.0, "AdamW weight decay")
    batch_size: int = opt(128, "training batch size")
    epochs: int = opt(60, "passes over the training set")
    seed: int = opt(0, "seed for wiring, initialisation and data order")
    engine: str = opt(
        "auto",
        "logic-layer kernels: auto picks the fused CPU kernels when they build, torch ops elsewhere (GPU); "
        "reference is the slow 16-term oracle",
        ("auto", "torch", "cpu", "reference"),
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
    )
    distill_weight: float = opt(0.5, "with --teacher: weight of the teacher's soft targets against the labels (0-1)")
    gate_cost: float = opt(
        0.0,
        "penalise circuit size: adds GATE_COST x (expected live two-input gates and pooling ORs / gates of the "
        "unrolled network) to the loss; constants, wires, inverters and unread gates compile away, so a larger "
        "cost gives a smaller optimised circuit for some accuracy (try 0.5-2)",
    )
    checkpoint_every: int = opt(500, "save the training state every N steps (and after every epoch); 0: epochs only")
    device: str = opt("cpu", "torch device (cpu, cuda, cuda:1, ...)")
    threads: int | None = opt(None, "CPU threads for torch and the kernels (default: torch's choice)")

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: Path) -> None:
        """Write the resolved options as YAML (``diffgates train --config`` reads it back)."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(
            "# diffgates training options; repeat with: diffgates train --config THIS_FILE\n"
            + yaml.safe_dump(self.to_dict(), sort_keys=False)
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path, **overrides) -> TrainConfig:
        """Options from a YAML or JSON file, then ``overrides`` on top; unknown keys are refused."""
        path = Path(path)
        if not path.is_file():
            raise DiffgatesError(f"no config file at {path}.")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise DiffgatesError(f"{path} is not valid YAML or JSON: {e}".rstrip() + ".") from e
        if not isinstance(data, dict):
            raise DiffgatesError(f"{path} must hold a mapping of option names to values.")
        return cls.from_dict({**data, **overrides})

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Options from a mapping; a ``model`` preset fills in every option the mapping leaves out."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DiffgatesError(f"unknown config keys: {', '.join(unknown)}; see 'diffgates train --help'.")
        if d.get("model"):
            from .zoo import preset

            d = {**preset(d["model"]).options, **d}
        cfg = cls(**d)
        cfg.check()
        return cfg

    @classmethod
    def from_run(cls, run: str | Path) -> TrainConfig:
        path = Path(run) / CONFIG_FILE
        if not path.is_file():
            raise DiffgatesError(
                f"{run} is not a run directory (no {CONFIG_FILE}); pass the --out of 'diffgates train'."
            )
        return cls.load(path)

    def check(self) -> TrainConfig:
        for f in fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value not in choices:
                raise DiffgatesError(f"{f.name} must be one of {', '.join(choices)}, got {value!r}.")
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "encoder_bits": self.encoder_bits,
            "tree_depth": self.tree_depth,
            "conv_groups": self.conv_groups,
            "tree_channels": self.tree_channels,
            "head_blocks": self.head_blocks,
        }
        for name, value in positive.items():
            if value < 1:
                raise DiffgatesError(f"{name} must be at least 1, got {value}.")
        if not self.widths or min(self.widths) < 1:
            raise DiffgatesError(f"widths must be a non-empty list of positive layer sizes, got {self.widths}.")
        if self.lr <= 0 or self.tau <= 0:
            raise DiffgatesError("lr and tau must be positive.")
        if self.random_crop < 0 or not 0 <= self.flip <= 1:
            raise DiffgatesError("random_crop must be >= 0 and flip a probability in [0, 1].")
        if self.trunk_blocks < 0:
            raise DiffgatesError(f"trunk_blocks must be >= 0, got {self.trunk_blocks}.")
        if self.gate_cost < 0:
            raise DiffgatesError(f"gate_cost must be >= 0, got {self.gate_cost}.")
        if self.teacher_temperature <= 0:
            raise DiffgatesError(f"teacher_temperature must be positive, got {self.teacher_temperature}.")
        if not 0 <= self.distill_weight <= 1:
            raise DiffgatesError(f"distill_weight must be in [0, 1], got {self.distill_weight}.")
        if (self.random_crop or self.flip) and not (self.conv or self.image_shape):
            raise DiffgatesError("augmentation needs images: give --image-shape or convolution blocks (--conv).")
        return self
