"""Time to accuracy on Fashion-MNIST: 'diffgates train --time-budget' against torchlogix 0.1.1
training the same 784 x 3 bits -> 6 x 8000 -> GroupSum(10) network for the same wall time, on the
same threads, one after the other.

    .venv/bin/python benchmarks/time_to_accuracy.py OUT [--seconds 120] [--threads 1]

diffgates runs its Fashion-MNIST recipe (truth4 gates, 3 thermometer bits, tau 20, batch 128)
with a 10 % validation split; its curve is the discrete test accuracy after every epoch
(metrics.jsonl). torchlogix trains on the same bits (thresholds 0.25, 0.5, 0.75) with Adam,
--torchlogix-parametrization (default light, whose discrete network moves off its
initialisation sooner than the 16-way raw one's) at --torchlogix-lr; its discrete test accuracy is
measured every --every seconds of training (evaluation time not counted). Prints JSON rows
{impl, seconds, test_acc}.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch


def torchlogix_curve(seconds: float, every: float, threads: int, parametrization: str, lr: float) -> list[dict]:
    from torchlogix.layers import FixedBinarization, GroupSum, LogicDense

    from diffgates.data import load_dataset

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ds = load_dataset("fashion-mnist")
    x, y = torch.as_tensor(ds.x_train), torch.as_tensor(ds.y_train).long()
    xt, yt = torch.as_tensor(ds.x_test), torch.as_tensor(ds.y_test)
    layers, width_in = [FixedBinarization(torch.tensor([0.25, 0.5, 0.75]))], 784 * 3
    for _ in range(6):
        layers.append(LogicDense(width_in, 8000, parametrization=parametrization))
        width_in = 8000
    model = torch.nn.Sequential(*layers, GroupSum(10, tau=20.0))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rows, trained, next_eval = [], 0.0, every
    while trained < seconds:
        model.train()
        t = time.perf_counter()
        i = torch.randint(0, len(x), (128,))
        loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        trained += time.perf_counter() - t
        if trained >= next_eval or trained >= seconds:
            model.eval()
            with torch.no_grad():
                acc = float(
                    sum((model(xt[j : j + 2000]).argmax(1) == yt[j : j + 2000]).sum() for j in range(0, 10000, 2000))
                )
            row = {"impl": f"torchlogix {parametrization}", "seconds": round(trained, 1), "test_acc": acc / len(yt)}
            rows.append(row)
            print(json.dumps(rows[-1]), flush=True)
            next_eval += every
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--every", type=float, default=20.0, help="torchlogix: seconds of training between evaluations")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--torchlogix-parametrization", default="light", choices=["raw", "warp", "light"])
    ap.add_argument("--torchlogix-lr", type=float, default=0.02)
    ap.add_argument("--skip-diffgates", action="store_true", help="only the torchlogix curve")
    args = ap.parse_args()
    out = Path(args.out)
    run = [
        sys.executable,
        "-m",
        "diffgates",
        "train",
        "--dataset",
        "fashion-mnist",
        "--widths",
        "8000,8000,8000,8000,8000,8000",
    ]
    run += ["--encoder-bits", "3", "--tau", "20", "--epochs", "60", "--lr-schedule", "cosine"]
    run += ["--time-budget", str(args.seconds), "--validation", "0.1", "--threads", str(args.threads)]
    t0 = time.perf_counter()
    if not args.skip_diffgates:
        subprocess.run([*run, "--out", str(out / "diffgates"), "--overwrite", "--quiet"], check=True)
    wall = time.perf_counter() - t0
    for line in (out / "diffgates" / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        print(
            json.dumps(
                {"impl": "diffgates", "seconds": round(row["elapsed_seconds"], 1), "test_acc": row["test_acc_discrete"]}
            )
        )
    summary = json.loads((out / "diffgates" / "summary.json").read_text())
    keys = ("stopped", "epochs_run", "best_epoch", "val_acc_discrete", "test_acc_discrete", "train_seconds")
    print(json.dumps({"impl": "diffgates", "kept": {k: summary[k] for k in keys}, "command_wall_s": round(wall, 1)}))
    torchlogix_curve(args.seconds, args.every, args.threads, args.torchlogix_parametrization, args.torchlogix_lr)


if __name__ == "__main__":
    main()
