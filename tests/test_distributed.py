"""torchrun with 2 processes (gloo, CPU) trains the same model as 1 process with the same global batch."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

ARGS = ["train", "--widths", "300,300", "--epochs", "2", "--batch-size", "32", "--threads", "1", "--quiet"]


def torchrun() -> str:
    path = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    return path


@pytest.mark.parametrize(
    "connections,extra",
    [("unique", []), ("learned", []), ("unique", ["--gate-cost", "1"])],
    ids=["unique", "learned", "gate-cost"],
)
def test_two_processes_match_one_process(tmp_path, connections, extra):
    one, two = tmp_path / "one", tmp_path / "two"
    args = [*ARGS, "--connections", connections, *extra]  # --gate-cost: each process adds the same term
    subprocess.run([sys.executable, "-m", "diffgates.cli", *args, "--out", str(one)], check=True, capture_output=True)
    r = subprocess.run(
        [torchrun(), "--standalone", "--nproc-per-node", "2", "-m", "diffgates.cli", *args, "--out", str(two)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        if k.endswith(("candidate_idx", "thresholds_")) or (k.endswith(("ia", "ib")) and connections != "learned"):
            assert (a[k] == b[k]).all(), k  # same wiring (learned: the same candidates) and encoder
        elif k.endswith(("ia", "ib")):
            continue  # learned wiring: the strongest candidate, which a near tie may settle either way
        else:
            # same training up to float summation order; with learned connections a few weights
            # drift further (Adam's step on a near-zero gradient amplifies the order), the rest agree
            d = (a[k] - b[k]).abs()
            assert d.max() < (1e-2 if connections == "learned" else 1e-3) and d.mean() < 1e-4, k
    ma = [json.loads(x) for x in (one / "metrics.jsonl").read_text().splitlines()]
    mb = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    assert len(ma) == len(mb) == 2
    for x, y in zip(ma, mb):
        assert abs(x["loss"] - y["loss"]) < 1e-5
        assert abs(x["test_acc_discrete"] - y["test_acc_discrete"]) <= 0.01
