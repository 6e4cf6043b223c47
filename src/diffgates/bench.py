"""Side-by-side benchmarks: ``diffgates bench train`` (and ``bench infer`` with the compiler).

Each configuration runs in a fresh subprocess, so thread settings and peak memory are its own.
``peak_mb`` is the peak resident memory while training (warm-up and timed steps) above the resident
memory once the model and data exist: what training steps need beyond the model itself.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

IMPLS = ("diffgates", "diffgates-torch", "reference", "torchlogix")


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def build_train_model(impl: str, n_in: int, widths: list[int], k: int, tau: float, param: str):
    """A (module, layout) pair: layout 'feature' takes (in, batch), 'batch' takes (batch, in)."""
    import torch

    if impl == "torchlogix":
        import torchlogix.layers as tl

        layers, prev = [], n_in
        for w in widths:
            layers.append(tl.LogicDense(prev, w, parametrization="raw"))
            prev = w
        return torch.nn.Sequential(*layers, tl.GroupSum(k, tau)), "batch"
    from .nn import GroupSum, LogicDense

    engine = {"diffgates": "cpu", "diffgates-torch": "torch", "reference": "reference"}[impl]
    layers, prev = [], n_in
    for i, w in enumerate(widths):
        layers.append(LogicDense(prev, w, parametrization=param, seed=i, engine=engine))
        prev = w
    return torch.nn.Sequential(*layers, GroupSum(k, tau)), "feature"


def train_worker(impl: str, n_in: int, widths: list[int], batch: int, threads: int, steps: int, param: str) -> dict:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    k, tau = 10, 10.0
    model, layout = build_train_model(impl, n_in, widths, k, tau, param)
    model.train()
    x = torch.randint(0, 2, (batch, n_in)).float()
    if layout == "feature":
        x = x.T.contiguous()
    y = torch.randint(0, k, (batch,))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    base = _rss_kb("VmRSS")
    _reset_peak()
    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    peak = _rss_kb("VmHWM")
    return {
        "impl": impl,
        "param": param,
        "model": f"{n_in}->{len(widths)}x{widths[0]}->GroupSum({k})",
        "batch": batch,
        "threads": threads,
        "ms_per_step": 1000 * statistics.median(times),
        "peak_mb": max(peak - base, 0) / 1024,
        "steps": steps,
    }


def run_worker(args: list[str], timeout: float) -> dict | None:
    cmd = [sys.executable, "-m", "diffgates.bench", *args]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["failed"])[-1]
        return {"error": last}
    return json.loads(r.stdout.strip().splitlines()[-1])


def bench_train(impls, n_in, widths, batches, threads, steps, param, timeout=900.0, echo=None) -> list[dict]:
    rows = []
    for b in batches:
        for t in threads:
            for impl in impls:
                n = steps if impl != "reference" else max(10, steps // 3)
                args = ["train", impl, str(n_in), ",".join(map(str, widths)), str(b), str(t), str(n), param]
                row = run_worker(args, timeout)
                row.update({"impl": impl, "batch": b, "threads": t})
                rows.append(row)
                if echo:
                    echo(row)
    return rows


def bench_epoch(engines, dataset, widths, threads, param, echo=None) -> list[dict]:
    """Wall time of one training epoch per engine (same data, model and seed)."""
    import tempfile

    rows = []
    for t in threads:
        for engine in engines:
            with tempfile.TemporaryDirectory() as tmp:
                args = [sys.executable, "-m", "diffgates.cli", "train", "--dataset", dataset, "--epochs", "1",
                        "--widths", ",".join(map(str, widths)), "--engine", engine, "--threads", str(t),
                        "--parametrization", param, "--encoder-bits", "3", "--tau", "20", "--out", tmp + "/run",
                        "--overwrite", "--quiet"]
                r = subprocess.run(args, capture_output=True, text=True)
                row = {"engine": engine, "dataset": dataset, "widths": ",".join(map(str, widths)), "threads": t}
                if r.returncode != 0:
                    row["error"] = (r.stderr.strip().splitlines() or ["failed"])[-1]
                else:
                    metrics = json.loads(open(tmp + "/run/metrics.jsonl").read().splitlines()[0])
                    row.update(epoch_seconds=metrics["epoch_seconds"], test_acc_discrete=metrics["test_acc_discrete"])
            rows.append(row)
            if echo:
                echo(row)
    return rows


def main(argv: list[str]) -> None:
    """Worker entry point: ``python -m diffgates.bench train IMPL N_IN WIDTHS BATCH THREADS STEPS PARAM``."""
    kind, impl, n_in, widths, batch, threads, steps, param = argv
    assert kind == "train"
    row = train_worker(impl, int(n_in), [int(w) for w in widths.split(",")], int(batch), int(threads), int(steps), param)
    print(json.dumps(row))


if __name__ == "__main__":
    main(sys.argv[1:])
