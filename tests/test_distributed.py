"""torchrun with 2 processes (gloo, CPU) trains the same model as 1 process with the same global batch."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

ARGS = ["train", "--widths", "300,300", "--epochs", "2", "--batch-size", "32", "--threads", "1", "--quiet"]


def torchrun() -> str:
    path = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    return path


def test_two_processes_match_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, "-m", "diffgates.cli", *ARGS, "--out", str(one)], check=True, capture_output=True)
    r = subprocess.run(
        [torchrun(), "--standalone", "--nproc-per-node", "2", "-m", "diffgates.cli", *ARGS, "--out", str(two)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        if k.endswith(("ia", "ib", "thresholds_")):
            assert (a[k] == b[k]).all(), k  # same wiring and encoder
        else:
            assert (a[k] - b[k]).abs().max() < 1e-3, k  # same training up to float summation order
    ma = [json.loads(x) for x in (one / "metrics.jsonl").read_text().splitlines()]
    mb = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    assert len(ma) == len(mb) == 2
    for x, y in zip(ma, mb):
        assert abs(x["loss"] - y["loss"]) < 1e-5
        assert abs(x["test_acc_discrete"] - y["test_acc_discrete"]) <= 0.01
