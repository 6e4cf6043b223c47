"""A torchlogix network brought to diffgates: train one with torchlogix 0.1.1 on Fashion-MNIST for a
fixed time, save it with torch.save, import it with 'diffgates import', compare the two
libraries' test accuracy, then time inference side by side ('diffgates bench infer' on the
imported circuit: the executor, the exported C and torchlogix's own compiled model of the same
network).

    .venv/bin/python benchmarks/import_torchlogix.py OUT [--seconds S] [--widths W,W,...]

Writes OUT/torchlogix.pt, the run OUT/run, and prints one JSON line per stage.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from torchlogix.layers import FixedBinarization, GroupSum, LogicDense

from diffgates.data import load_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seconds", type=float, default=300.0, help="torchlogix training time")
    ap.add_argument("--widths", default="8000,8000,8000,8000")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ds = load_dataset("fashion-mnist")
    x, y = torch.as_tensor(ds.x_train), torch.as_tensor(ds.y_train).long()
    layers, width_in = [FixedBinarization(torch.tensor([0.25, 0.5, 0.75]))], 784 * 3
    for w in map(int, args.widths.split(",")):
        layers.append(LogicDense(width_in, w, parametrization="light"))
        width_in = w
    model = torch.nn.Sequential(*layers, GroupSum(10, tau=width_in / 10 / 8))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    t0, steps = time.perf_counter(), 0
    model.train()
    while time.perf_counter() - t0 < args.seconds:
        i = torch.randint(0, len(x), (128,))
        loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    model.eval()
    with torch.no_grad():
        acc = float((model(torch.as_tensor(ds.x_test)).argmax(1) == torch.as_tensor(ds.y_test)).float().mean())
    torch.save(model, out / "torchlogix.pt")
    print(json.dumps({"stage": "torchlogix", "steps": steps, "seconds": args.seconds, "test_acc": acc}), flush=True)

    cli = [sys.executable, "-m", "diffgates"]
    imp = [*cli, "import", "--from", "torchlogix", str(out / "torchlogix.pt")]
    subprocess.run([*imp, "--dataset", "fashion-mnist", "--out", str(out / "run"), "--overwrite"], check=True)
    summary = json.loads((out / "run" / "summary.json").read_text())
    keys = ("test_acc_discrete", "test_acc_circuit", "circuit_mismatches", "gates", "gates_optimised")
    print(json.dumps({"stage": "diffgates import", **{k: summary.get(k) for k in keys}}), flush=True)
    bench = [*cli, "bench", "infer", "--circuit", str(out / "run" / "circuit.npz"), "--threads", "1", "--json"]
    subprocess.run(bench, check=True)


if __name__ == "__main__":
    main()
