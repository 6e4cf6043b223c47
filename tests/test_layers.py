import copy

import pytest
import torch

from diffgates import gates
from diffgates.kernels import logic_dense
from diffgates.kernels.reference import dense_hard_reference, dense_reference
from diffgates.nn import GateOptions, GroupSum, LogicDense
from diffgates.nn import parametrization as P
from diffgates.nn.dense import random_wiring

PARAMS = ["softmax16", "truth4"]


def make_layer(param, n_in=9, n_out=7, engine="torch", seed=3):
    layer = LogicDense(n_in, n_out, GateOptions(param, "gaussian", engine=engine), seed=seed).double()
    return layer


@pytest.mark.parametrize("param", PARAMS)
def test_compact_layer_equals_reference_forward_and_gradients(param):
    layer = make_layer(param)
    x = torch.rand(9, 13, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    g = torch.randn_like(y)
    gx, gw = torch.autograd.grad(y, (x, layer.weight), g)
    y_ref = dense_reference(x, layer.ia, layer.ib, layer.weight, param)
    gx_ref, gw_ref = torch.autograd.grad(y_ref, (x, layer.weight), g)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gw, gw_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("param", PARAMS)
def test_float64_gradcheck(param):
    layer = make_layer(param, n_in=5, n_out=4)
    x = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    w = layer.weight.detach().clone().requires_grad_()

    def f(x, w):
        return logic_dense(x, layer.ia, layer.ib, P.relaxed_coefficients(w, param), engine="torch")

    assert torch.autograd.gradcheck(f, (x, w))


@pytest.mark.parametrize("param", PARAMS)
def test_eval_mode_is_the_discrete_network(param):
    layer = make_layer(param).eval()
    x = torch.randint(0, 2, (9, 50), dtype=torch.float64)
    y = layer(x)
    ref = dense_hard_reference(x, layer.ia, layer.ib, layer.gate_ids())
    assert torch.equal(y, ref)
    assert set(y.unique().tolist()) <= {0.0, 1.0}


def test_truth4_discretisation_thresholds_each_entry():
    layer = make_layer("truth4").eval()
    truth = (torch.sigmoid(layer.weight) > 0.5).long().numpy()
    assert (layer.gate_ids().numpy() == gates.gate_id(truth)).all()


@pytest.mark.parametrize("param", PARAMS)
def test_residual_init_starts_as_pass_through(param):
    layer = LogicDense(20, 30, GateOptions(param, "residual"))
    assert (layer.gate_ids() == gates.A).all()
    x = torch.rand(20, 4)
    layer.train()
    a = x[layer.ia]
    assert torch.allclose(layer(x), a, atol=0.15)  # ~90 % pass-through


def test_wiring_never_reads_one_input_twice_and_unique_covers_all():
    gen = torch.Generator().manual_seed(0)
    for conn in ("random", "unique"):
        ia, ib = random_wiring(100, 60, conn, gen)
        assert (ia != ib).all()
        assert ia.max() < 100 and ib.max() < 100
    ia, ib = random_wiring(100, 60, "unique", gen)
    assert set(torch.cat([ia, ib]).tolist()) == set(range(100))


def test_state_dict_restores_wiring_and_weights():
    a = LogicDense(30, 20, seed=1)
    b = LogicDense(30, 20, seed=2)
    assert not torch.equal(a.ia, b.ia)
    b.load_state_dict(a.state_dict())
    x = torch.rand(30, 5)
    assert torch.equal(a(x), b(x))


def test_hard_forward_uses_discrete_gates_with_straight_through_gradient():
    layer = LogicDense(10, 8, GateOptions("softmax16", "gaussian", forward="hard", engine="torch"), seed=0)
    x = torch.randint(0, 2, (10, 6)).float()
    layer.train()
    y = layer(x)
    layer.eval()
    assert torch.equal(y.detach(), layer(x))
    layer.train()
    layer(x).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("param", ["softmax16", "truth4"])
def test_gumbel_forward_samples_gates_at_their_probabilities_with_the_perturbed_gradient(param):
    n = 20000
    w = torch.randn(n, P.n_weights(param)) * 1.5
    torch.manual_seed(3)
    noisy = w + (P.gumbel_noise if param == "softmax16" else P.logistic_noise)(w, 1.0)
    torch.manual_seed(3)
    wg = w.clone().requires_grad_()
    c = P.mode_coefficients(wg, param, True, "gumbel", 1.0, fused=False)
    assert torch.equal(c.detach(), P.hard_coefficients(noisy, param))  # the sampled discrete gates
    c.pow(2).sum().backward()
    # straight-through: the gradient is the relaxation's at the noisy logits, taken at the hard output
    ref = noisy.clone().requires_grad_()
    relaxed = P.relaxed_coefficients_torch(ref, param)
    (relaxed * 2 * P.hard_coefficients(noisy, param)).sum().backward()
    torch.testing.assert_close(wg.grad, ref.grad)
    # the samples follow the distribution of the relaxed choice: sigmoid per truth4 entry
    # (symmetric noise; plain Gumbel noise would bias every entry towards 1), softmax over 16 gates
    if param == "truth4":
        torch.testing.assert_close((noisy > 0).float().mean(), torch.sigmoid(w).mean(), atol=0.01, rtol=0)
    else:
        picked = torch.nn.functional.one_hot(noisy.argmax(1), 16).float().mean(0)
        torch.testing.assert_close(picked, torch.softmax(w, 1).mean(0), atol=0.01, rtol=0)


def test_wrong_input_shape_is_a_clear_error():
    from diffgates import DiffgatesError

    layer = LogicDense(10, 4)
    with pytest.raises(DiffgatesError, match=r"expects feature-major input of shape \(10, batch\)"):
        layer(torch.rand(4, 11))


def test_gate_options_are_checked_once_and_shared_by_a_models_layers():
    from diffgates import DiffgatesError
    from diffgates.nn import LogicNet, ModelConfig

    for bad, message in (
        ({"parametrization": "softmax4"}, "parametrization must be one of"),
        ({"init": "zeros"}, "init must be one of"),
        ({"forward": "soft"}, "forward must be one of"),
        ({"engine": "gpu"}, "engine must be one of"),
        ({"grad_factor": 0.0}, "grad_factor must be above 0"),
        ({"gumbel_scale": float("nan")}, "gumbel_scale must be above 0"),
        ({"residual_strength": float("inf")}, "residual_strength must be a finite number"),
    ):
        with pytest.raises(DiffgatesError, match=message):
            GateOptions(**bad)
    with pytest.raises(DiffgatesError, match="options must be a GateOptions, got str"):
        LogicDense(10, 4, "truth4")
    config = ModelConfig(n_features=6, n_classes=2, widths=[8, 4], forward="hard", grad_factor=2.0)
    model = LogicNet(config, engine="torch")
    assert all(layer.options == config.gate_options("torch") for layer in model.layers)
    assert model.layers[0].options.forward == "hard" and model.layers[0].options.grad_factor == 2.0
    model.set_engine("reference")
    assert all(layer.options == config.gate_options("reference") for layer in model.layers)


def test_grad_factor_scales_the_input_gradient_only():
    x = torch.rand(10, 5, requires_grad=True)
    grads = {}
    for f in (1.0, 2.5):
        torch.manual_seed(0)
        layer = LogicDense(10, 6, GateOptions(init="gaussian", grad_factor=f, engine="torch"), seed=4)
        y = layer(x)
        gx, gw = torch.autograd.grad(y.square().sum(), (x, layer.weight))
        grads[f] = (y.detach(), gx, gw)
    assert torch.equal(grads[1.0][0], grads[2.5][0])
    torch.testing.assert_close(grads[2.5][1], 2.5 * grads[1.0][1])
    torch.testing.assert_close(grads[2.5][2], grads[1.0][2])


@pytest.mark.parametrize("engine", ["torch", "cpu"])
def test_sorted_wiring_is_the_same_network(engine):
    """sort_wiring only renumbers gates: outputs, relaxed and discrete, stay the same; every layer
    but the last reads its A inputs in order, the last within each class block."""
    from diffgates.nn.dense import sort_wiring

    plain = [LogicDense(n, 60, GateOptions(init="gaussian", engine=engine), seed=i) for i, n in enumerate([30, 60, 60])]
    ordered = copy.deepcopy(plain)
    sort_wiring(ordered, groups=5)
    assert any(not torch.equal(p.ia, o.ia) for p, o in zip(plain, ordered))
    for layer in ordered[:-1]:
        assert torch.all(layer.ia[1:] >= layer.ia[:-1])
    assert torch.all(ordered[-1].ia.view(5, -1).diff(dim=1) >= 0)
    x = torch.rand(30, 9, dtype=torch.float64)
    for train in (True, False):
        a = torch.nn.Sequential(*plain, GroupSum(5)).double().train(train)
        b = torch.nn.Sequential(*ordered, GroupSum(5)).double().train(train)
        torch.testing.assert_close(a(x), b(x))


def test_groupsum_gradient_is_the_block_broadcast():
    x = torch.rand(12, 5, dtype=torch.float64, requires_grad=True)
    g = torch.randn(5, 3, dtype=torch.float64)
    (gx,) = torch.autograd.grad(GroupSum(3, tau=2.0)(x), x, g)
    x2 = x.detach().requires_grad_()
    (gx_ref,) = torch.autograd.grad(x2.reshape(3, 4, 5).sum(1).T / 2.0, x2, g)
    torch.testing.assert_close(gx, gx_ref)


def test_local_wiring_reads_a_band_of_the_previous_layer():
    layer = LogicDense(1000, 400, connections="local", window=16, seed=3)
    centre = torch.arange(400) * 1000 // 400
    for idx in (layer.ia, layer.ib):
        offset = (idx - centre + 8) % 1000  # position within the band [centre - 8, centre + 8)
        assert int(offset.max()) < 16
    assert bool((layer.ia != layer.ib).all())
    last = LogicDense(1000, 400, connections="local", window=16, groups=10, seed=3)  # 10 classes x 40 gates
    for c in range(10):  # every class's gates span the whole input
        assert int(last.ia[40 * c : 40 * (c + 1)].max() - last.ia[40 * c : 40 * (c + 1)].min()) > 900
    spread = LogicDense(1000, 400, connections="unique", seed=3)
    assert int(((spread.ia - centre + 8) % 1000).max()) > 500  # random wiring reads everywhere


def test_a_locally_wired_model_trains_and_its_circuit_matches(tmp_path):
    import json

    from diffgates.cli import main

    run = tmp_path / "run"
    args = ["train", "--connections", "local", "--window", "24", "--widths", "1000,1000", "--epochs", "5", "--quiet"]
    args += ["--parametrization", "softmax16"]
    assert main([*args, "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["circuit_mismatches"] == 0 and summary["test_acc_discrete"] > 0.5  # unique wiring: 0.65
    assert main(["train", "--window", "24", "--epochs", "1", "--out", str(tmp_path / "r2")]) == 2  # idle option
