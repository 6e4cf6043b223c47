import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import random_model
from diffgates import Circuit, DiffgatesError, load_model
from diffgates.circuit.execute import predict_counts
from diffgates.data import load_dataset
from diffgates.encode import ThermometerEncoder


def test_wrong_feature_count_is_a_clear_error():
    model = random_model(n_features=12)
    with pytest.raises(DiffgatesError, match="expected 12 features per sample, got 11"):
        model(torch.zeros(3, 11))
    with pytest.raises(DiffgatesError, match="expected 12 features per sample, got 11"):
        predict_counts(Circuit.from_model(model), np.zeros((3, 11)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_refused(bad):
    model = random_model(n_features=4)
    x = np.zeros((2, 4), dtype=np.float32)
    x[1, 2] = bad
    with pytest.raises(DiffgatesError, match="NaN or infinite"):
        model(torch.as_tensor(x))
    with pytest.raises(DiffgatesError, match="NaN or infinite"):
        predict_counts(Circuit.from_model(model), x)


def test_unfitted_encoder_says_so():
    with pytest.raises(DiffgatesError, match="not fitted"):
        ThermometerEncoder(3)(torch.zeros(2, 2))


def test_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(DiffgatesError, match="no model checkpoint"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(DiffgatesError, match="no circuit file"):
        Circuit.load(tmp_path / "nope.npz")
    with pytest.raises(DiffgatesError, match="mnist not found"):
        load_dataset("mnist", str(tmp_path))
    with pytest.raises(DiffgatesError, match="no dataset file"):
        load_dataset(str(tmp_path / "x.npz"))


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    p = tmp_path / "m.safetensors"
    p.write_bytes(b"\x00" * 50)
    with pytest.raises(DiffgatesError, match="not a readable diffgates checkpoint"):
        load_model(p)


def test_cli_reports_one_line_and_nonzero_exit_without_traceback(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "diffgates.cli",
            "train",
            "--dataset",
            "mnist",
            "--data-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("error: mnist not found")
    assert not (tmp_path / "run").exists()
