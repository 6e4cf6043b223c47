"""Side-by-side benchmarks: ``diffgates bench train`` (and ``bench infer`` with the compiler).

Each configuration runs in a fresh subprocess, so thread settings and peak memory are its own.
``peak_mb`` is the peak resident memory while training (warm-up and timed steps) above the resident
memory once the model and data exist: what training steps need beyond the model itself.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time

#: the rows each benchmark compares unless --impls says otherwise
TRAIN_IMPLS = ("diffgates", "diffgates-bf16", "diffgates-torch", "reference", "torchlogix")
INFER_IMPLS = ("diffgates", "exported-c", "torchlogix")


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


_ENGINES = {
    "diffgates": "cpu",
    "diffgates-layers": "cpu",
    "diffgates-bf16": "cpu",
    "diffgates-torch": "torch",
    "diffgates-learned": "cpu",
    "diffgates-learned-torch": "torch",
    "diffgates-gate-cost": "cpu",
    "reference": "reference",
}


#: every row ``bench train`` and ``bench conv`` can run
TRAIN_IMPLS_ALL = (*_ENGINES, "torchlogix")


def _activations(impl: str) -> str:
    return "bfloat16" if impl == "diffgates-bf16" else "float32"


def learned_impl(impl: str) -> bool:
    """Whether bench row ``impl`` trains learned connections (``diffgates-learned*``)."""
    return impl.startswith("diffgates-learned")


def build_train_model(impl: str, n_in: int, widths: list[int], k: int, tau: float, param: str):
    """(module, forward): ``forward`` takes 0/1 input bits (batch, n_in) and returns scores (batch, k).

    The diffgates rows run LogicNet's own dense path (wiring order, the layers stacked in tiles
    but for ``diffgates-layers``, the fused last layer with its GroupSum, bfloat16 activations for
    ``diffgates-bf16``, learned connections among 8 candidates for ``diffgates-learned*``); the
    reference row is the same network on the 16-term oracle."""
    import torch

    if impl == "torchlogix":
        import torchlogix.layers as tl

        layers, prev = [], n_in
        for w in widths:
            layers.append(tl.LogicDense(prev, w, parametrization="raw"))
            prev = w
        model = torch.nn.Sequential(*layers, tl.GroupSum(k, tau))
        return model, model
    from .nn.model import LogicNet, ModelConfig

    config = ModelConfig(
        n_features=n_in,
        n_classes=k,
        widths=list(widths),
        encoder_bits=1,
        parametrization=param,
        tau=tau,
        activations=_activations(impl),
        connections="learned" if learned_impl(impl) else "unique",
    )
    model = LogicNet(config, engine=_ENGINES[impl])
    model.stacked = impl != "diffgates-layers"
    return model, model.forward_bits


def _gate_cost_term(impl: str, model):
    """For the ``diffgates-gate-cost`` row, the --gate-cost term (cost 1) added to every step's loss."""
    if impl != "diffgates-gate-cost":
        return None
    from .nn.cost import expected_gates

    return lambda: expected_gates(model) / model.n_gates


PHASES = ("forward", "backward", "optimizer")


def _time_steps(forward, params, x, y, steps: int, extra=None) -> tuple[float, float, dict]:
    """(median ms per step, peak MB above the resident memory before the first step, median ms of
    each phase: forward and loss, backward, optimiser step); ``extra``: a term added to the loss."""
    import torch

    opt = torch.optim.Adam(params, lr=0.01, fused=True)  # the same optimiser for all

    def step() -> list[float]:
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(forward(x), y)
        if extra is not None:
            loss = loss + extra()
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        return [t1 - t0, t2 - t1, time.perf_counter() - t2]

    base = _rss_kb("VmRSS")
    _reset_peak()
    for _ in range(3):
        step()
    times = [step() for _ in range(steps)]
    phases = {f"{name}_ms": 1000 * statistics.median(t[i] for t in times) for i, name in enumerate(PHASES)}
    return 1000 * statistics.median(map(sum, times)), max(_rss_kb("VmHWM") - base, 0) / 1024, phases


def memory_bandwidth(mb: int = 256) -> float:
    """Bytes per second one copy of a ``mb`` MB array moves (read plus write), best of three."""
    import numpy as np

    src = np.ones(mb << 18, dtype=np.float32)
    dst = np.empty_like(src)
    best = min(_seconds(lambda: np.copyto(dst, src)) for _ in range(3))
    return 2 * src.nbytes / best


def read_bandwidth(threads: int = 1, mb: int = 256) -> float:
    """Bytes per second ``threads`` threads read together from a ``mb`` MB array (each reduces its
    share; numpy lets go of the GIL), best of five: the ceiling of a kernel that reads its whole
    input once, as the circuit executor does."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    data = np.ones(mb << 17, dtype=np.uint64)
    parts = np.array_split(data, threads)
    with ThreadPoolExecutor(threads) as pool:
        best = min(_seconds(lambda: list(pool.map(np.bitwise_or.reduce, parts))) for _ in range(5))
    return data.nbytes / best


def _seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def step_bytes(
    n_in: int, widths: list[int], batch: int, act_bytes: int, n_weights: int, tile: int | None = None
) -> int:
    """Memory traffic of one step of the fused dense kernels; the optimiser reads weight, gradient
    and two moments and writes three of them (float32) either way.

    Layer by layer (``tile`` None), row by row: forward reads each gate's two input rows and
    writes its output row; backward reads the output gradient and the other input row once per
    side and writes each input row's gradient once. Stacked in tiles of ``tile`` samples
    (``kernels.cpu.dense_stack``): forward reads the input and writes every hidden output once,
    backward reads them back once, and each tile's four coefficient sums per gate are written and
    read once (float32); the rows a tile moves between its layers stay in the caches."""
    params = sum(widths) * n_weights
    if tile is not None:
        rows = 2 * (n_in + sum(widths[:-1]))
        tiles = -(-batch // tile)
        return rows * batch * act_bytes + 2 * tiles * 4 * 4 * sum(widths) + 7 * 4 * params
    rows, ins = 0, n_in
    for w in widths:
        rows += 3 * w + 4 * w + ins  # forward; backward (gy and the other row per side; gx once)
        ins = w
    return rows * batch * act_bytes + 7 * 4 * params


def _setup(threads: int) -> None:
    import torch

    from . import native

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    native.keep_freed_memory()  # for every implementation alike


def train_worker(impl: str, n_in: int, widths: list[int], batch: int, threads: int, steps: int, param: str) -> dict:
    import torch

    _setup(threads)
    k, tau = 10, 10.0
    model, forward = build_train_model(impl, n_in, widths, k, tau, param)
    model.train()
    x = torch.randint(0, 2, (batch, n_in)).float()
    y = torch.randint(0, k, (batch,))
    ms, peak, phases = _time_steps(forward, model.parameters(), x, y, steps, _gate_cost_term(impl, model))
    row = {
        "impl": impl,
        "param": param,
        "model": _shape(n_in, widths, k) + (" learned 8" if learned_impl(impl) else ""),
        "batch": batch,
        "threads": threads,
        "ms_per_step": ms,
        "peak_mb": peak,
        "steps": steps,
        **phases,
    }
    if impl in ("diffgates", "diffgates-layers", "diffgates-bf16"):  # fused: the step's memory-traffic limit
        act = 2 if impl == "diffgates-bf16" else 4
        from .kernels.cpu import stack_tile

        tile = None if impl == "diffgates-layers" else stack_tile(batch, threads)
        moved = step_bytes(n_in, widths, batch, act, 16 if param == "softmax16" else 4, tile)
        row["memory_mb"] = moved / 1e6
        row["limit_ms"] = 1000 * moved / memory_bandwidth()
        row["of_limit"] = row["limit_ms"] / ms  # the fraction of the limit's speed reached
    return row


def build_conv_model(impl: str, preset: str, param: str):
    """The preset's architecture with random weights: (forward on encoded bits (batch, bits), module, bits)."""
    import torch

    from .zoo import preset as get_preset

    p = get_preset(preset)
    o = p.options
    c, h, w = o["image_shape"]
    n_bits = len(o["encoder_thresholds"])
    if impl != "torchlogix":
        from .nn.model import LogicNet

        config = p.model_config(parametrization=param, activations=_activations(impl))
        net = LogicNet(config, engine=_ENGINES[impl])
        return (lambda bits: net(bits, encoded=True)), net, c * h * w * n_bits
    import torchlogix.layers as tl

    from .nn.conv import ConvSpec, block_shapes

    layers, shape = [], (c * n_bits, h, w)
    for spec in map(ConvSpec.parse, o["conv"]):
        layers.append(
            tl.LogicConv2d(
                in_dim=shape[1], channels=shape[0], num_kernels=spec.kernels, tree_depth=3,
                receptive_field_size=spec.size, padding=spec.padding, parametrization="raw",
            )
        )  # fmt: skip
        layers.append(tl.OrPooling2d(kernel_size=spec.pool, stride=spec.pool, padding=spec.pool_padding))
        shape = block_shapes(shape, spec)[1]
    layers.append(torch.nn.Flatten())
    prev = shape[0] * shape[1] * shape[2]
    for width in o["widths"]:
        layers.append(tl.LogicDense(prev, width, parametrization="raw"))
        prev = width
    net = torch.nn.Sequential(*layers, tl.GroupSum(10, o["tau"]))
    return (lambda bits: net(bits.view(-1, c * n_bits, h, w))), net, c * h * w * n_bits


def conv_worker(impl: str, preset: str, batch: int, threads: int, steps: int, param: str) -> dict:
    import torch

    _setup(threads)
    forward, net, n_bits = build_conv_model(impl, preset, param)
    net.train()
    x = torch.randint(0, 2, (batch, n_bits)).float()
    y = torch.randint(0, 10, (batch,))
    ms, peak, phases = _time_steps(forward, net.parameters(), x, y, steps, _gate_cost_term(impl, net))
    row = {"impl": impl, "param": param, "model": preset, "batch": batch, "threads": threads}
    return {**row, "ms_per_step": ms, "peak_mb": peak, "steps": steps, **phases}


def bench_conv(impls, preset, batches, threads, steps, param, rounds=1, timeout=900.0, echo=None) -> list[dict]:
    """Training step of a convolutional preset per implementation, each in its own process."""

    def args(impl, b, t):
        n = steps if impl != "reference" else max(5, steps // 3)
        return ["conv", impl, preset, str(b), str(t), str(n), param]

    return _interleaved(impls, batches, threads, args, {"model": preset}, rounds, timeout, echo)


#: The rows every other row's speed is compared with, where they run (``vs_reference``, ...).
BASELINES = ("reference", "torchlogix")


def _interleaved(impls, batches, threads, make_args, extra, rounds, timeout, echo) -> list[dict]:
    """One row per (batch, threads, impl). With ``rounds`` > 1 the implementations take turns,
    round after round, so each sees the same minutes of a noisy machine; the row then gives the
    median ms per step over the rounds (``ms_rounds`` lists them), of each phase and of the
    memory-traffic limit where the rows have them, and the largest peak. Where a
    baseline (``BASELINES``) runs too, ``vs_<baseline>`` is the median over the rounds of the
    baseline's time over the row's in the same round (each pair measured minutes apart at most)."""
    rows = []
    for b in batches:
        for t in threads:
            runs = {impl: [] for impl in impls}
            for _ in range(rounds):
                for impl in impls:
                    row = run_worker(make_args(impl, b, t), timeout)
                    runs[impl].append({**row, **extra, "impl": impl, "batch": b, "threads": t})
            for impl in impls:
                keys = ("ms_per_step", *(f"{p}_ms" for p in PHASES), "limit_ms", "of_limit")
                row = _over_rounds(runs[impl], keys, "ms_rounds")
                if "ms_rounds" in row:
                    row["peak_mb"] = max(r["peak_mb"] for r in runs[impl] if "error" not in r)
                for base in BASELINES:
                    ratios = [
                        r0["ms_per_step"] / r["ms_per_step"]
                        for r, r0 in zip(runs[impl], runs.get(base, []))
                        if "error" not in r and "error" not in r0
                    ]
                    if ratios and impl != base:
                        row[f"vs_{base}"] = statistics.median(ratios)
                rows.append(row)
                if echo:
                    echo(row)
    return rows


def run_worker(args: list[str], timeout: float) -> dict | None:
    cmd = [sys.executable, "-m", "diffgates.bench", *args]
    # a session of its own, so a timeout also stops the compilers a worker started
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"error": f"timed out after {timeout:.0f}s"}
    r = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["failed"])[-1]
        return {"error": last}
    return json.loads(r.stdout.strip().splitlines()[-1])


def bench_train(impls, n_in, widths, batches, threads, steps, param, rounds=1, timeout=900.0, echo=None) -> list[dict]:
    def args(impl, b, t):
        n = steps if impl != "reference" else max(10, steps // 3)
        return ["train", impl, str(n_in), ",".join(map(str, widths)), str(b), str(t), str(n), param]

    return _interleaved(impls, batches, threads, args, {}, rounds, timeout, echo)


def bench_epoch(engines, dataset, widths, threads, param, echo=None) -> list[dict]:
    """Wall time of one training epoch per engine (same data, model and seed)."""
    import tempfile

    rows = []
    for t in threads:
        for engine in engines:
            with tempfile.TemporaryDirectory() as tmp:
                args = [
                    sys.executable,
                    "-m",
                    "diffgates.cli",
                    "train",
                    "--dataset",
                    dataset,
                    "--epochs",
                    "1",
                    "--widths",
                    ",".join(map(str, widths)),
                    "--engine",
                    engine.removesuffix("-bf16"),
                    "--activations",
                    "bfloat16" if engine.endswith("-bf16") else "float32",
                    "--threads",
                    str(t),
                    "--parametrization",
                    param,
                    "--encoder-bits",
                    "3",
                    "--tau",
                    "20",
                    "--out",
                    tmp + "/run",
                    "--overwrite",
                    "--quiet",
                ]
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


def random_network(n_in: int, widths: list[int], k: int = 10, seed: int = 0):
    """A random layered circuit: each gate reads two random outputs of the previous layer, ops
    uniform over the 16 gates; input bit j is feature j > 0.5 (so features can be the bits)."""
    import numpy as np

    from .circuit.ir import Circuit

    rng = np.random.default_rng(seed)
    ops, a, b, layer = [], [], [], []
    base, start, prev = 0, n_in, n_in
    for i, w in enumerate(widths):
        ops.append(rng.integers(0, 16, w))
        a.append(base + rng.integers(0, prev, w))
        b.append(base + rng.integers(0, prev, w))
        layer.append(np.full(w, i))
        base, start, prev = start, start + w, w
    return Circuit(
        n_features=n_in,
        in_feature=np.arange(n_in),
        in_threshold=np.full(n_in, 0.5, np.float32),
        ops=np.concatenate(ops),
        a=np.concatenate(a),
        b=np.concatenate(b),
        outputs=np.arange(base, start),
        layer=np.concatenate(layer),
        n_classes=k,
    )


def _shape(n_in: int, widths, n_classes: int) -> str:
    """A layered network as ``784->6x8000->GroupSum(10)`` (or each width where they differ)."""
    widths = [int(w) for w in widths]
    layers = f"{len(widths)}x{widths[0]}" if len(set(widths)) == 1 else "->".join(map(str, widths))
    return f"{n_in}->{layers}->GroupSum({n_classes})"


def _best_rate(fn, n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def infer_worker(
    impl: str, n_in: int, width: int, threads: int, samples: int, repeats: int, circuit: str | None = None
) -> dict:
    """Images per second end to end from an encoded bit matrix (uint8, samples x n_in), on a random
    784 -> 6 x width network or on a saved (extracted, layered) circuit; for diffgates also from
    the same bits packed eight a byte, and from raw features (the random network's bits as uint8
    features; uniform float32 features for a saved circuit, through its encoder)."""
    import numpy as np

    from .circuit import program
    from .circuit.execute import run_numpy
    from .circuit.ir import Circuit, encode_bits
    from .circuit.passes import optimize

    if circuit:
        c = Circuit.load(circuit).on_bits()  # timed from the encoded bit matrix, like the random nets
        n_in, width, depth = c.n_inputs, int((c.layer == 0).sum()), int(c.layer.max()) + 1
    else:
        c, depth = random_network(n_in, [width] * 6), 6
    bits = np.random.default_rng(1).integers(0, 2, (samples, n_in), dtype=np.uint8)
    check = slice(0, 2000)
    expected = run_numpy(c, bits[check])
    row = {
        "impl": impl,
        "model": _shape(n_in, np.bincount(c.layer, minlength=depth), c.n_classes),
        "threads": threads,
        "gates_before": c.n_gates,
        "samples": samples,
    }
    t0 = time.perf_counter()
    if impl == "diffgates":
        opt, _ = optimize(c)
        prog = program.prepare(opt)
        row["prepare_s"] = time.perf_counter() - t0
        row["gates_after"] = opt.n_gates
        row["ops_run"] = prog.n_gates  # gates and fused pairs (three-input functions) the executor runs
        # the optimised circuit's own encoder emits only the bits it still reads
        kept = bits if opt.n_inputs == n_in else np.ascontiguousarray(bits[:, opt.in_feature])

        def infer():
            return program.run(prog, kept, threads)
    elif impl == "exported-c":
        import ctypes

        from . import native
        from .backends.c import to_c
        from .paths import scratch_dir

        opt, _ = optimize(c)
        tmp = scratch_dir() / "exported-c"  # this worker process's own, removed when it exits
        tmp.mkdir()
        for name, text in to_c(opt).items():
            (tmp / name).write_text(text)
        subprocess.run(
            [native.compiler(), "-O2", "-march=native", "-shared", "-fPIC", "model.c", "-o", "model.so", "-lm"],
            cwd=tmp,
            check=True,
        )
        lib = ctypes.CDLL(str(tmp / "model.so"))
        row["prepare_s"] = time.perf_counter() - t0
        row["gates_after"] = opt.n_gates
        xf = bits.astype(np.float32)

        def infer():
            out = np.zeros((samples, c.n_classes), dtype=np.int32)
            lib.dg_predict(
                ctypes.c_void_p(xf.ctypes.data), ctypes.c_long(samples), ctypes.c_void_p(out.ctypes.data), None
            )
            return out
    elif impl == "torchlogix":
        import torch
        import torchlogix.layers as tl
        from torchlogix.compiled_model import CompiledLogicNet

        # the same network as torchlogix layers (one-hot raw weights); layer i reads only layer i - 1
        sizes = np.bincount(c.layer, minlength=depth)
        starts = np.concatenate([[0, n_in], n_in + np.cumsum(sizes)[:-1]])  # first signal each layer reads
        layers, prev = [], n_in
        for i in range(depth):
            sel = c.layer == i
            layer = tl.LogicDense(prev, int(sizes[i]), parametrization="raw")
            idx = torch.stack([torch.as_tensor(c.a[sel] - starts[i]), torch.as_tensor(c.b[sel] - starts[i])]).long()
            layer.connections.indices = idx
            with torch.no_grad():
                layer.weight.copy_(torch.nn.functional.one_hot(torch.as_tensor(c.ops[sel]).long(), 16).float())
            layers.append(layer)
            prev = int(sizes[i])
        model = torch.nn.Sequential(*layers, tl.GroupSum(c.n_classes, 1.0)).eval()
        compiled = CompiledLogicNet(model, input_shape=(n_in,), num_bits=64, apply_groupsum_scaling=False)
        compiled.compile(opt_level=1)
        row["prepare_s"] = time.perf_counter() - t0
        row["gates_after"] = c.n_gates
        xb = bits.astype(bool)

        def infer():
            return compiled.forward(xb).numpy()
    else:
        raise ValueError(impl)
    got = infer()[check]
    if not np.array_equal(np.asarray(got)[: len(expected)], expected):
        row["error"] = "wrong class counts"
        return row
    row["img_per_s"] = _best_rate(infer, samples, repeats)
    if impl == "diffgates":
        # the ceiling: reading the input bits (a byte each) once, on these threads
        row["limit_img_per_s"] = read_bandwidth(threads) / n_in
        row["of_limit"] = row["img_per_s"] / row["limit_img_per_s"]
        # the same bits packed eight a byte
        packed = np.packbits(kept, axis=1, bitorder="little")
        if not np.array_equal(program.run_packed(prog, packed[check], threads), expected):
            row["error"] = "wrong class counts from packed bits"
            return row
        row["img_per_s_packed"] = _best_rate(lambda: program.run_packed(prog, packed, threads), samples, repeats)
        # from raw features, encoded inside the executor: the saved circuit's own encoder
        raw = Circuit.load(circuit) if circuit else c
        rng = np.random.default_rng(2)
        x = rng.random((samples // 4, raw.n_features), dtype=np.float32) if circuit else bits[: samples // 4]
        ex = program.Executor(raw, threads=threads)
        if not np.array_equal(ex.counts(x[:2000]), run_numpy(raw, encode_bits(raw, x[:2000]))):
            row["error"] = "wrong class counts from raw features"
            return row
        row["img_per_s_features"] = _best_rate(lambda: ex.counts(x), len(x), repeats)
    return row


def bench_infer(
    n_in, widths, threads, samples, repeats, echo=None, timeout=1800.0, circuit=None, rounds=1, impls=INFER_IMPLS
) -> list[dict]:
    """One row per (width, implementation, threads), each measured in its own process, for the
    ``impls`` of :data:`INFER_IMPLS`. With ``rounds`` > 1 the executor's thread counts take turns,
    round after round, and each row gives the median images/s over the rounds
    (``img_per_s_rounds`` lists them): thread scaling is then a ratio of minutes the noisy machine
    shared. The exported C and torchlogix run once, on one thread."""
    rows = []
    all_threads = os.cpu_count() or 1

    def measure(impl, w, t):
        n = samples if impl == "diffgates" else max(samples // 10, 20_000)
        args = ["infer", impl, str(n_in), str(w), str(t), str(n), str(repeats)] + ([circuit] if circuit else [])
        # torchlogix compiles one C function per network with gcc -O1: minutes to hours when large
        row = run_worker(args, timeout if impl != "torchlogix" or w <= 8000 else min(timeout, 300.0))
        row.setdefault("model", circuit or f"{n_in}->6x{w}->GroupSum(10)")
        row.update({"impl": impl, "threads": t})
        return row

    for w in [0] if circuit else widths:
        found = []
        if "diffgates" in impls:
            counts = sorted(set(threads) | {all_threads})
            runs = {t: [] for t in counts}
            for _ in range(rounds):
                for t in counts:
                    runs[t].append(measure("diffgates", w, t))
            keys = ("img_per_s", "img_per_s_packed", "img_per_s_features", "limit_img_per_s", "of_limit")
            found = [_over_rounds(runs[t], keys, "img_per_s_rounds") for t in counts]
        found += [measure(impl, w, 1) for impl in INFER_IMPLS[1:] if impl in impls]
        for row in found:
            rows.append(row)
            if echo:
                echo(row)
    return rows


def _over_rounds(runs: list[dict], keys: tuple[str, ...], listed: str) -> dict:
    """The first successful row of one configuration; where more than one round succeeded, each of
    ``keys`` that every round has becomes its median over the rounds, and ``listed`` lists the
    rounds' values of the first key."""
    done = [r for r in runs if "error" not in r]
    row = dict(done[0] if done else runs[0])
    if len(done) > 1:
        row[listed] = [r[keys[0]] for r in done]
        for key in keys:
            if all(key in r for r in done):
                row[key] = statistics.median(r[key] for r in done)
    return row


def main(argv: list[str]) -> None:
    """Worker entry points: ``train IMPL N_IN WIDTHS BATCH THREADS STEPS PARAM``,
    ``conv IMPL PRESET BATCH THREADS STEPS PARAM`` and ``infer IMPL N_IN WIDTH THREADS SAMPLES REPEATS``."""
    if argv[0] == "conv":
        impl, preset, batch, threads, steps, param = argv[1:]
        row = conv_worker(impl, preset, int(batch), int(threads), int(steps), param)
    elif argv[0] == "train":
        impl, n_in, widths, batch, threads, steps, param = argv[1:]
        row = train_worker(
            impl, int(n_in), [int(w) for w in widths.split(",")], int(batch), int(threads), int(steps), param
        )
    else:
        impl, n_in, width, threads, samples, repeats, *circuit = argv[1:]
        row = infer_worker(impl, int(n_in), int(width), int(threads), int(samples), int(repeats), *circuit)
    print(json.dumps(row))


if __name__ == "__main__":
    main(sys.argv[1:])
