"""``diffgates report RUN``: a self-contained HTML page and PNG figures of a run.

Training curves, the discretisation gap, gate types per layer, gates through the optimisation
passes, the circuit's confusion matrix on the test set, and the hardware summary when
``diffgates compile`` / ``synth`` left one in ``RUN/export``.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import numpy as np

from . import gates
from .circuit.ir import Circuit
from .circuit.passes import optimize
from .errors import DiffgatesError
from .outdir import read_json, read_jsonl


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise DiffgatesError("reports need matplotlib; run 'pip install diffgates[report]'.") from e
    return plt


#: what every line of metrics.jsonl holds (live_gates too, in runs since --gate-cost)
METRIC_KEYS = ("epoch", "loss", "train_acc", "test_acc_relaxed", "test_acc_discrete")
IMAGE_METRIC_KEYS = ("epoch", "loss", "test_psnr", "test_ssim")  # runs of --task superres / denoise


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


FPGA_COLUMNS = (
    "device", "mode", "lut4_total", "lut4_encoder", "lut4_network", "lut4_head", "carry_cells", "flip_flops",
    "fmax_mhz", "latency_cycles", "latency_ns",
    "initiation_interval", "images_per_s", "pixels_per_s", "placer_s", "router_s", "arcs", "bitstream",
)  # fmt: skip


def fpga_rows(export: Path) -> list[list]:
    """One row per ``diffgates fpga`` result under ``export/fpga``."""
    rows = []
    for path in sorted(export.glob("fpga/*/report.json")):
        data = read_json(path)
        if isinstance(data, dict):
            parts = data.get("lut4_parts")
            data.update({f"lut4_{k}": v for k, v in parts.items()} if isinstance(parts, dict) else {})
            data.setdefault("lut4_total", data.get("lut4"))
            routing = data.get("routing")
            data.update(routing if isinstance(routing, dict) else {})
            rows.append([data.get(c) for c in FPGA_COLUMNS])
    return rows


def _grid(columns, rows) -> str:
    def cell(v):
        return html.escape(f"{v:,.4g}" if isinstance(v, float) else str("-" if v is None else v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _metrics(run: Path, keys: tuple[str, ...] = METRIC_KEYS) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise DiffgatesError(f"{run} has no metrics.jsonl; is it a run directory?")
    rows = read_jsonl(path)
    for i, row in enumerate(rows, 1):
        bad = [k for k in keys if not _number(row.get(k))] + (
            ["live_gates"] if "live_gates" in row and not _number(row["live_gates"]) else []
        )
        if bad:
            raise DiffgatesError(f"{path} row {i} lacks numbers for {', '.join(bad)}; the file is corrupt.")
    if not rows:
        raise DiffgatesError(f"{path} has no epochs yet; report a run that finished at least one epoch.")
    return rows


def figure_curves(plt, rows: list[dict], path: Path) -> None:
    epochs = [r["epoch"] for r in rows]
    live = [(r["epoch"], r["live_gates"]) for r in rows if "live_gates" in r]  # runs since --gate-cost
    fig, (ax1, ax2, ax3, *ax4) = plt.subplots(1, 4 if live else 3, figsize=(18 if live else 14, 4))
    ax1.plot(epochs, [r["loss"] for r in rows], marker="o")
    ax1.set(title="training loss", xlabel="epoch", ylabel="cross-entropy")
    for key, label in (
        ("train_acc", "train (relaxed)"),
        ("test_acc_relaxed", "test relaxed"),
        ("test_acc_discrete", "test discrete = circuit"),
        ("val_acc_discrete", "validation discrete (picks the epoch kept)"),
    ):
        if all(_number(r.get(key)) for r in rows):  # validation: runs with --validation only
            ax2.plot(epochs, [r[key] for r in rows], marker="o", label=label)
    ax2.set(title="accuracy", xlabel="epoch", ylabel="accuracy")
    ax2.legend()
    gap = [100 * (r["test_acc_relaxed"] - r["test_acc_discrete"]) for r in rows]
    ax3.bar(epochs, gap, color=["tab:red" if g > 0 else "tab:green" for g in gap])
    ax3.axhline(0, color="black", linewidth=0.8)
    ax3.set(title="discretisation gap (relaxed - discrete)", xlabel="epoch", ylabel="accuracy points")
    if live:
        ax4[0].plot(*zip(*live), marker="o")
        ax4[0].set(title="live gates of the discrete network", xlabel="epoch", ylabel="gates", ylim=(0, None))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def figure_image_curves(plt, rows: list[dict], path: Path) -> None:
    epochs = [r["epoch"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(epochs, [r["loss"] for r in rows], marker="o")
    ax1.set(title="training loss", xlabel="epoch", ylabel="mean squared error (relaxed)")
    ax2.plot(epochs, [r["test_psnr"] for r in rows], marker="o", label="test (first test images)")
    if all(_number(r.get("val_psnr")) for r in rows):  # runs with --validation: it picks the epoch kept
        ax2.plot(epochs, [r["val_psnr"] for r in rows], marker="o", label="validation (held-out training images)")
    ax2.set(title="PSNR of the circuit", xlabel="epoch", ylabel="dB")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def figure_crops(plt, cfg, circuit: Circuit, path: Path, n: int = 4, side: int = 96) -> None:
    """Test crops side by side: the input, the best classical method, the logic network, the truth."""
    from .image.apply import circuit_predictor, denoise_classic, reconstruct, upscale_classic
    from .image.data import factor, test_inputs

    s = factor(cfg.task, cfg.scale)
    pairs = test_inputs(cfg.task, cfg.scale, cfg.noise, cfg.seed, cfg.dataset, cfg.data_dir)
    pairs = [pairs[i] for i in np.linspace(0, len(pairs) - 1, n).astype(int)]
    predict = circuit_predictor(circuit)
    if cfg.task == "superres":
        columns = ["input (nearest)", "bicubic", "logic network", "ground truth"]
        classic = lambda lr: upscale_classic(lr, s, "bicubic")  # noqa: E731
        shown = lambda lr: upscale_classic(lr, s, "nearest")  # noqa: E731
    else:
        columns = ["noisy input", "median 3x3", "logic network", "ground truth"]
        classic, shown = (lambda x: denoise_classic(x, "median")), (lambda x: x)
    fig, axes = plt.subplots(n, 4, figsize=(10, 2.6 * n), squeeze=False)
    for row, (lr, hr) in zip(axes, pairs):
        h, w = min(side, hr.shape[0]), min(side, hr.shape[1])  # the centre of large photographs
        top, left = (hr.shape[0] - h) // 2, (hr.shape[1] - w) // 2
        images = (
            shown(lr),
            classic(lr),
            reconstruct(predict, lr, cfg.patch, s, circuit.group_size, span=cfg.output_span),
            hr,
        )
        for ax, title, img in zip(row, columns, images):
            ax.imshow(img[top : top + h, left : left + w], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def figure_gates(plt, circuit: Circuit, path: Path) -> None:
    hist = circuit.op_histogram()
    layers = sorted(hist)
    counts = np.array([[hist[layer].get(g, 0) for g in range(16)] for layer in layers])
    fig, ax = plt.subplots(figsize=(14, 4.5))
    width = 0.8 / max(len(layers), 1)
    for i, layer in enumerate(layers):
        ax.bar(np.arange(16) + i * width, counts[i], width, label=f"layer {layer}")
    ax.set_xticks(np.arange(16) + 0.4 - width / 2, gates.NAMES, rotation=45, ha="right")
    ax.set(title="gate types per layer (trained network)", ylabel="gates")
    ax.legend(ncol=min(len(layers), 6))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def figure_passes(plt, log, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 4))
    names = [p.name for p in log]
    ax.bar(range(len(log)), [p.gates for p in log], color="tab:blue")
    for i, p in enumerate(log):
        ax.text(i, p.gates, f"{p.gates}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(log)), names, rotation=45, ha="right")
    ax.set(title="gates after each optimisation pass", ylabel="gates")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def figure_confusion(plt, confusion: np.ndarray, path: Path, class_names=None) -> None:
    """The circuit's confusion matrix, its axes labelled with the class names where the data has them."""
    k = len(confusion)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    im = ax.imshow(confusion, cmap="Blues")
    for i in range(k):
        for j in range(k):
            color = "white" if confusion[i, j] > confusion.max() / 2 else "black"
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set(
        title="confusion matrix (circuit, test set)",
        xlabel="predicted",
        ylabel="true",
        xticks=range(k),
        yticks=range(k),
    )
    if class_names:
        labels = [class_names[i] if i < len(class_names) else str(i) for i in range(k)]
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
        ax.set_yticklabels(labels, fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _table(rows: list[tuple[str, object]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def write_report(run: str | Path, data_dir: str | None = None) -> Path:
    """Write ``RUN/report/report.html`` (figures embedded) and the PNGs beside it."""
    from .checkpoint import ENSEMBLE_FILE
    from .circuit.execute import predict_counts
    from .config import TrainConfig
    from .data import load_dataset

    plt = _pyplot()
    run = Path(run)
    if (run / ENSEMBLE_FILE).is_file():
        raise DiffgatesError(f"{run} is an ensemble that 'diffgates merge' wrote; report its member runs instead.")
    cfg = TrainConfig.from_run(run)
    cfg.data_dir = data_dir or cfg.data_dir
    image = cfg.task != "classify"
    rows = _metrics(run, IMAGE_METRIC_KEYS if image else METRIC_KEYS)
    circuit = Circuit.load(run / "circuit.npz")
    out = run / "report"
    out.mkdir(exist_ok=True)
    figures = {
        "curves.png": "Training",
        **({"crops.png": "Test images"} if image else {}),
        "gates.png": "Gate types",
        "passes.png": "Optimisation",
        **({} if image else {"confusion.png": "Confusion matrix"}),
    }
    (figure_image_curves if image else figure_curves)(plt, rows, out / "curves.png")
    figure_gates(plt, circuit, out / "gates.png")
    _, log = optimize(circuit)
    figure_passes(plt, log, out / "passes.png")
    if image:
        figure_crops(plt, cfg, circuit, out / "crops.png")
    else:
        ds = load_dataset(cfg.dataset, cfg.data_dir)
        pred = predict_counts(circuit, ds.x_test).argmax(1)
        confusion = np.zeros((circuit.n_classes, circuit.n_classes), dtype=np.int64)
        np.add.at(confusion, (ds.y_test, pred), 1)
        figure_confusion(plt, confusion, out / "confusion.png", ds.class_names)

    summary = read_json(run / "summary.json") if (run / "summary.json").is_file() else {}
    if not isinstance(summary, dict):
        raise DiffgatesError(f"{run / 'summary.json'} is corrupt (not a JSON object).")
    facts = [
        ("dataset", cfg.dataset),
        *([("conv blocks", ", ".join(cfg.conv))] if cfg.conv else []),
        ("layers", " x ".join(map(str, cfg.widths))),
        ("parametrization", cfg.parametrization),
        ("epochs", len(rows)),
    ]
    facts += [
        (k, f"{summary[k]:.4f}")
        for k in ("test_acc_relaxed", "test_acc_discrete", "test_acc_circuit")
        if _number(summary.get(k))
    ]
    if image:
        facts.insert(1, ("task", f"{cfg.task}" + (f" x{cfg.scale}" if cfg.task == "superres" else f" {cfg.noise}")))
        scores = {"logic network (circuit)": summary.get("logic"), **(summary.get("baselines") or {})}
        facts += [
            (f"PSNR / SSIM, {name}", f"{m['psnr']:.2f} dB / {m['ssim']:.4f}")
            for name, m in scores.items()
            if isinstance(m, dict) and _number(m.get("psnr")) and _number(m.get("ssim"))
        ]
    facts += [
        ("gates (trained)", log[0].gates),
        ("gates (optimised)", log[-1].gates),
        ("input bits (optimised)", log[-1].inputs),
    ]
    hardware = []
    export = run / "export"
    for name in ("compile.json", "synth.json"):
        if (export / name).is_file():
            data = read_json(export / name)
            data = data if isinstance(data, dict) else {}
            keep = ("gates_after", "latency_cycles", "vectors", "gates2", "luts6", "depth", "flipflops", "tool")
            hardware += [(k, v) for k, v in data.items() if k in keep]
    body = [f"<h1>diffgates run: {html.escape(str(run))}</h1>", "<h2>Summary</h2>", _table(facts)]
    if hardware:
        body += ["<h2>Hardware</h2>", _table(hardware)]
    fpga = fpga_rows(export)
    if fpga:
        body += ["<h2>FPGA implementations</h2>", _grid(FPGA_COLUMNS, fpga)]
    for name, title in figures.items():
        data = base64.b64encode((out / name).read_bytes()).decode()
        body += [f"<h2>{title}</h2>", f'<img alt="{title}" src="data:image/png;base64,{data}">']
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>diffgates report</title><style>"
        "body{font-family:sans-serif;max-width:1400px;margin:2em auto}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:4px 10px;text-align:left}img{max-width:100%}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
    (out / "report.html").write_text(page)
    return out / "report.html"
