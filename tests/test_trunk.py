"""--trunk: the first convolution blocks of a trained run stay as trained, discrete and fixed,
while new dense layers learn on their outputs."""

import json

import numpy as np
import pytest
import torch

from conftest import assert_same_weights
from diffgates import load_model
from diffgates.circuit.execute import predict_counts
from diffgates.cli import main
from diffgates.nn import to_circuit

CONV = ["--image-shape", "1,8,8", "--conv", "6:3:1:2:0,8:3:1:2:1"]


@pytest.fixture(scope="module")
def trunk(tmp_path_factory):
    out = tmp_path_factory.mktemp("trunk") / "run"
    args = ["train", "--dataset", "digits", *CONV, "--widths", "300", "--epochs", "4", "--encoder-bits", "3"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    return out


def test_trunk_blocks_and_encoder_stay_as_trained_and_the_circuit_is_exact(trunk, tmp_path):
    out = tmp_path / "head"
    args = ["train", "--dataset", "digits", "--trunk", str(trunk), "--trunk-blocks", "1", "--widths", "400,300"]
    assert main([*args, "--connections", "learned", "--epochs", "4", "--out", str(out), "--quiet"]) == 0
    base, model = load_model(trunk / "model.safetensors"), load_model(out / "model.safetensors")
    assert model.config.conv == base.config.conv[:1] and model.config.frozen_blocks == 1
    assert model.config.encoder_bits == 3  # the trunk's encoder, whatever the options said
    assert torch.equal(model.encoder.thresholds_, base.encoder.thresholds_)
    ours, theirs = model.convs[0].state_dict(), base.convs[0].state_dict()
    assert_same_weights(ours, theirs)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["circuit_mismatches"] == 0 and summary["test_acc_discrete"] > 0.5
    x = np.random.default_rng(0).random((300, 64), dtype=np.float32)
    np.testing.assert_array_equal(predict_counts(to_circuit(model), x), model.counts(torch.as_tensor(x)))


def test_frozen_blocks_compute_their_discrete_gates_in_training_and_take_no_gradient(trunk, tmp_path):
    out = tmp_path / "head"
    args = ["train", "--dataset", "digits", "--trunk", str(trunk), "--widths", "200", "--epochs", "1"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    model = load_model(out / "model.safetensors").train()
    assert all(not conv.training for conv in model.convs)  # both blocks kept (--trunk-blocks 0: all)
    assert all(not p.requires_grad for p in model.convs.parameters())
    assert model.layers.training
    bits = model.encoder(torch.rand(50, 64))
    h = model.first_layer_input(bits)
    trained = model.convs(h)
    with torch.no_grad():
        discrete = load_model(trunk / "model.safetensors").convs(h)
    assert torch.equal(trained, discrete) and not trained.requires_grad
    model(torch.rand(20, 64)).sum().backward()
    assert all(p.grad is None for p in model.convs.parameters())
    assert all(layer.weight.grad is not None for layer in model.layers)


@pytest.mark.parametrize(
    "options,message",
    [
        (["--trunk-blocks", "3"], "has 2 convolution blocks"),
        (["--trunk-blocks", "-1"], "--trunk-blocks: must be at least 0"),
    ],
)
def test_bad_trunk_options_are_refused_before_anything_is_written(trunk, tmp_path, capsys, options, message):
    out = tmp_path / "head"
    assert main(["train", "--dataset", "digits", "--trunk", str(trunk), *options, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_trunk_must_be_a_convolutional_run(tmp_path, capsys):
    dense, out = tmp_path / "dense", tmp_path / "head"
    assert (
        main(["train", "--dataset", "digits", "--widths", "100", "--epochs", "1", "--out", str(dense), "--quiet"]) == 0
    )
    assert main(["train", "--dataset", "digits", "--trunk", str(dense), "--out", str(out)]) == 2
    assert "no convolution blocks" in capsys.readouterr().err
    assert main(["train", "--dataset", "digits", "--trunk", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "not a finished run directory" in capsys.readouterr().err
    assert not out.exists()
