"""Learned connections: each gate input mixes its candidate inputs in training and reads the
strongest one in the discrete network and the circuit."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from conftest import assert_bfloat16_op_equals_float64
from diffgates import load_model, save_model
from diffgates.circuit.execute import predict_counts
from diffgates.cli import main
from diffgates.errors import DiffgatesError
from diffgates.kernels import cpu
from diffgates.nn import GateOptions, GroupSum, LogicDense, to_circuit
from diffgates.nn import parametrization as P
from diffgates.nn.model import LogicNet, ModelConfig

ENGINES = ["torch", "reference"] + (["cpu"] if cpu.available() else [])


def mixed_reference(layer: LogicDense, x: torch.Tensor, hard: bool) -> torch.Tensor:
    """The layer written out: each input is the softmax mixture of its candidates (one-hot of the
    strongest with a softmax gradient when ``hard``), then the 16-term relaxed gate."""
    n, k = layer.out_features, layer.candidates
    w = layer.connection_weight.view(2, n, k)
    cand = layer.candidate_idx.view(2, n, k)
    p = torch.softmax(w, -1)
    if hard:
        p = torch.nn.functional.one_hot(w.argmax(-1), k).to(p) + p - p.detach()
    a = torch.einsum("ok,okb->ob", p[0], x[cand[0]])
    b = torch.einsum("ok,okb->ob", p[1], x[cand[1]])
    if hard:
        c = P.hard_coefficients(layer.weight, layer.options.parametrization)
        c = c + P.relaxed_coefficients_torch(layer.weight, layer.options.parametrization)
        c = c - P.relaxed_coefficients_torch(layer.weight, layer.options.parametrization).detach()
    else:
        c = P.relaxed_coefficients_torch(layer.weight, layer.options.parametrization)
    return c[:, 0:1] + c[:, 1:2] * a + c[:, 2:3] * b + c[:, 3:4] * a * b


def learned_layer(n_in, n_out, k, param, engine, forward="relaxed", seed=0) -> LogicDense:
    options = GateOptions(param, "gaussian", forward=forward, engine=engine)
    layer = LogicDense(n_in, n_out, options, connections="learned", candidates=k, seed=seed)
    layer = layer.double()
    torch.nn.init.normal_(layer.connection_weight, std=2.0)
    return layer


@settings(max_examples=30, deadline=None)
@given(
    n_in=st.integers(2, 30),
    n_out=st.integers(1, 40),
    k=st.integers(2, 6),
    batch=st.integers(1, 50),
    param=st.sampled_from(["softmax16", "truth4"]),
    engine=st.sampled_from(ENGINES),
    forward=st.sampled_from(["relaxed", "hard"]),
    seed=st.integers(0, 1000),
)
def test_training_forward_and_gradients_equal_the_written_out_mixture(
    n_in, n_out, k, batch, param, engine, forward, seed
):
    torch.manual_seed(seed)
    layer = learned_layer(n_in, n_out, k, param, engine, forward, seed).train()
    x = torch.rand(n_in, batch, dtype=torch.float64, requires_grad=True)
    params = (x, layer.weight, layer.connection_weight)
    y = layer(x)
    g = torch.autograd.grad(y.square().sum(), params)
    y_ref = mixed_reference(layer, x, hard=forward == "hard")
    g_ref = torch.autograd.grad(y_ref.square().sum(), params)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    for got, want in zip(g, g_ref):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("engine", ENGINES)
def test_fused_last_layer_with_learned_connections_equals_the_two_steps(engine):
    layer = learned_layer(20, 30, 4, "truth4", engine, seed=5).train()
    head = GroupSum(3, 2.0)
    x = torch.rand(20, 17, dtype=torch.float64, requires_grad=True)
    y = layer.grouped(x, head)
    y_ref = head(mixed_reference(layer, x, hard=False))
    torch.testing.assert_close(y, y_ref)
    params = (x, layer.weight, layer.connection_weight)
    for got, want in zip(torch.autograd.grad(y.sum(), params), torch.autograd.grad(y_ref.sum(), params)):
        torch.testing.assert_close(got, want)


def test_discrete_layer_reads_each_inputs_strongest_candidate():
    layer = learned_layer(12, 9, 5, "softmax16", "torch", seed=2).eval()
    best = layer.connection_weight.argmax(-1)
    ia, ib = layer.wiring()
    rows = torch.arange(9)
    assert torch.equal(ia, layer.candidate_idx[rows, best[:9]])
    assert torch.equal(ib, layer.candidate_idx[9 + rows, best[9:]])
    bits = (torch.rand(12, 33) > 0.5).double()
    c = P.hard_coefficients(layer.weight, "softmax16")
    a, b = bits[ia], bits[ib]
    assert torch.equal(layer(bits), c[:, 0:1] + c[:, 1:2] * a + c[:, 2:3] * b + c[:, 3:4] * a * b)
    # moving the logits moves the wiring
    with torch.no_grad():
        layer.connection_weight[0] = 0.0
        layer.connection_weight[0, 4] = 10.0
    assert layer.wiring()[0][0] == layer.candidate_idx[0, 4]


def learned_model(seed: int, n_features=10, widths=(30, 24), n_classes=3) -> LogicNet:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        n_features=n_features,
        n_classes=n_classes,
        widths=list(widths),
        encoder_bits=2,
        connections="learned",
        candidates=4,
        seed=seed,
        init="gaussian",
    )
    model = LogicNet(cfg, engine="torch")
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.normal_(0, 4.0)
            layer.connection_weight.normal_(0, 3.0)
    model.encoder.fit(np.random.default_rng(seed).normal(size=(64, n_features)))
    return model.eval()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 100))
def test_discrete_model_with_learned_connections_equals_its_circuit(seed, batch):
    model = learned_model(seed)
    x = np.random.default_rng(seed).normal(size=(batch, 10)).astype(np.float32)
    circuit = to_circuit(model)
    assert np.array_equal(predict_counts(circuit, x), model.counts(torch.as_tensor(x)).numpy())


def test_saved_model_keeps_the_learned_wiring(tmp_path):
    model = learned_model(7)
    save_model(model, tmp_path / "m.safetensors")
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    loaded = load_model(tmp_path / "m.safetensors").eval()
    for a, b in zip(model.layers, loaded.layers):
        assert all(torch.equal(u, v) for u, v in zip(a.wiring(), b.wiring()))
    x = torch.randn(50, 10)
    assert torch.equal(model.counts(x), loaded.counts(x))
    stored = load_file(str(tmp_path / "m.safetensors"))  # indices stored as int32, loaded back as int64
    assert stored["layers.0.candidate_idx"].dtype == torch.int32
    assert all(torch.equal(stored[k].long(), v) for k, v in saved.items() if v.dtype == torch.int64)
    assert all(b.dtype == torch.int64 for b in loaded.buffers() if not b.is_floating_point())


def test_fewer_than_two_candidates_is_a_clear_error():
    with pytest.raises(DiffgatesError, match="at least 2 candidates"):
        LogicDense(5, 4, connections="learned", candidates=1)
    with pytest.raises(DiffgatesError, match="connections must be one of"):
        LogicDense(5, 4, connections="everything")


def test_training_learns_the_wiring_and_the_circuit_is_exact(tmp_path):
    out = tmp_path / "learned"
    args = ["train", "--widths", "300,300", "--epochs", "4", "--connections", "learned", "--candidates", "6"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["circuit_mismatches"] == 0
    assert summary["test_acc_discrete"] > 0.6
    model = load_model(out / "model.safetensors")
    first = model.layers[0]
    moved = (first.connection_weight.argmax(-1) != 0).float().mean()
    assert moved > 0.3  # zeros at the start pick candidate 0 everywhere; training moved most inputs


@pytest.mark.skipif(not cpu.available(), reason="needs a C compiler for the fused kernels")
@pytest.mark.parametrize("threads", [1, 2])
def test_bfloat16_selection_equals_float64_math_up_to_one_rounding(threads):
    """bfloat16 storage, float32 arithmetic: each selected row and input-gradient row is the
    float64 mixture of the same bfloat16 values, rounded once; the weight gradient stays float32."""
    torch.set_num_threads(threads)
    layer = LogicDense(40, 30, GateOptions("truth4"), connections="learned", candidates=5, seed=1)
    torch.nn.init.normal_(layer.connection_weight)
    assert_bfloat16_op_equals_float64(
        lambda x, p: cpu.select(x, layer.candidate_idx, p),
        lambda x, p: torch.einsum("rk,rkb->rb", p, x[layer.candidate_idx]),
        torch.rand(40, 37).to(torch.bfloat16),
        torch.softmax(layer.connection_weight.detach(), -1),
    )
