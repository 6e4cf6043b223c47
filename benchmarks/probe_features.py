"""Where does a convolutional logic network lose accuracy? Linear and MLP probes on its blocks.

Runs the trained run's discrete convolution blocks over Fashion-MNIST and fits, on the bits
after block L, a float linear classifier and a one-hidden-layer MLP (1024 ReLU units, dropout).
If a float MLP on the features is no better than the logic head, the features are the limit;
if it is better on an earlier block than on the last one, that block loses information.

    .venv/bin/python benchmarks/probe_features.py RUN [--blocks 1,2,3] [--epochs 15]
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from diffgates.checkpoint import load_model
from diffgates.config import TrainConfig
from diffgates.data import load_dataset


@torch.no_grad()
def block_features(model, x, level: int, batch: int = 2000) -> torch.Tensor:
    """(samples, features) 0/1 outputs of the first ``level`` convolution blocks, discrete."""
    parts = []
    for i in range(0, len(x), batch):
        h = model.first_layer_input(model.encoder(torch.as_tensor(x[i : i + batch])).float())
        for conv in model.convs[:level]:
            h = conv(h)
        parts.append(h.T.contiguous())
    return torch.cat(parts)


def probe(ftr, ytr, fte, yte, n_classes: int, hidden: int, epochs: int, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    n = ftr.shape[1]
    if hidden:
        net = torch.nn.Sequential(
            torch.nn.Linear(n, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(hidden, n_classes)
        )
    else:
        net = torch.nn.Linear(n, n_classes)
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-2)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(ytr)).split(256):
            loss = F.cross_entropy(net(ftr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = lambda f, y: float((net(f).argmax(1) == y).float().mean())  # noqa: E731
        return {"train_acc": acc(ftr, ytr), "test_acc": acc(fte, yte)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--blocks", default=None, help="block levels to probe, comma separated (default: all)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = TrainConfig.from_run(args.run)
    model = load_model(f"{args.run}/model.safetensors").eval()
    ds = load_dataset(cfg.dataset, cfg.data_dir)
    ytr, yte = torch.as_tensor(ds.y_train), torch.as_tensor(ds.y_test)
    levels = [int(v) for v in args.blocks.split(",")] if args.blocks else range(1, len(model.convs) + 1)
    for level in levels:
        ftr, fte = block_features(model, ds.x_train, level), block_features(model, ds.x_test, level)
        for hidden in (0, 1024):
            row = {"run": args.run, "block": level, "features": ftr.shape[1], "probe": "mlp" if hidden else "linear"}
            print(json.dumps({**row, **probe(ftr, ytr, fte, yte, ds.n_classes, hidden, args.epochs)}), flush=True)


if __name__ == "__main__":
    main()
