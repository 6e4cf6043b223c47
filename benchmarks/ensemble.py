"""Test accuracy of summing the discrete class counts of several trained runs (an ensemble of
circuits), for every subset of the runs given: how much of a model's error is the luck of its
random wiring.

    .venv/bin/python benchmarks/ensemble.py RUN RUN [RUN ...]

Each run is evaluated on its own dataset's test set (all runs must share it).
"""

import itertools
import sys

import numpy as np
import torch

from diffgates.data import load_dataset
from diffgates.runs import load_run


def main(runs: list[str]) -> None:
    counts, ds = {}, None
    for run in runs:
        cfg, model, _ = load_run(run)
        ds = ds or load_dataset(cfg.dataset, cfg.data_dir)
        counts[run] = model.counts(torch.as_tensor(ds.x_test)).numpy().astype(np.int64)
        print(f"1  {(counts[run].argmax(1) == ds.y_test).mean():.4f}  {run}", flush=True)
    for k in range(2, len(runs) + 1):
        for subset in itertools.combinations(runs, k):
            acc = (sum(counts[r] for r in subset).argmax(1) == ds.y_test).mean()
            print(f"{k}  {acc:.4f}  {' + '.join(subset)}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: benchmarks/ensemble.py RUN RUN [RUN ...]")
    main(sys.argv[1:])
