"""The float CNN baseline for an image run: an ESPCN-style network (Shi et al. 2016: 5x5 and 3x3
convolutions with tanh, then a sub-pixel convolution) trained on the same training images for
the same CPU time as the logic network, scored on the same test images.

    .venv/bin/python benchmarks/image_cnn.py RUN [--seconds S] [--threads T]

Prints one JSON line: the CNN's PSNR and SSIM, its parameters and training steps, beside the
run's logic network and bicubic figures (from its summary.json).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from diffgates.config import TrainConfig
from diffgates.image.data import factor, load_images, pair, test_inputs
from diffgates.image.train import Windows, score


class ESPCN(nn.Module):
    def __init__(self, s: int, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 5, padding=2, padding_mode="replicate"),
            nn.Tanh(),
            nn.Conv2d(width, width // 2, 3, padding=1, padding_mode="replicate"),
            nn.Tanh(),
            nn.Conv2d(width // 2, s * s, 3, padding=1, padding_mode="replicate"),
            nn.PixelShuffle(s),
        )

    def forward(self, x):
        return self.net(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--seconds", type=float, help="training time (default: the run's train_seconds)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = TrainConfig.from_run(args.run)
    summary = json.loads((Path(args.run) / "summary.json").read_text())
    seconds = args.seconds or summary["train_seconds"]
    s = factor(cfg.task, cfg.scale)
    rng = np.random.default_rng(cfg.seed)
    train = [pair(img, cfg.task, cfg.scale, cfg.noise, rng) for img in load_images(cfg.dataset, cfg.data_dir)[0]]
    side = min(16, *(min(lr.shape) for lr, _ in train))  # training crops: 16 x 16, or whole small images
    crops = Windows([lr for lr, _ in train], [hr for _, hr in train], side, s, centred=False)
    model = ESPCN(s)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x, t = crops.sample(64, rng)
        y = model(torch.as_tensor(x).view(-1, 1, side, side))
        loss = nn.functional.mse_loss(y, torch.as_tensor(t).view(-1, 1, side * s, side * s))
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    model.eval()
    test = test_inputs(cfg.task, cfg.scale, cfg.noise, cfg.seed, cfg.dataset, cfg.data_dir)
    with torch.no_grad():
        outputs = [np.clip(model(torch.as_tensor(lr)[None, None])[0, 0].numpy(), 0, 1) for lr, _ in test]
    result = score(outputs, [hr for _, hr in test])
    bicubic = summary["baselines"].get("bicubic")
    print(
        json.dumps(
            {
                "run": args.run,
                "cnn": result,
                "cnn_parameters": sum(p.numel() for p in model.parameters()),
                "cnn_steps": steps,
                "seconds": seconds,
                "logic": summary["logic"],
                "bicubic": bicubic,
            }
        )
    )


if __name__ == "__main__":
    main()
