"""The fused CPU kernels against the plain 16-term reference, in float64."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import assert_bfloat16_op_equals_float64, assert_fused_equals_reference
from diffgates.errors import DiffgatesError
from diffgates.kernels import cpu, logic_dense, resolve_engine
from diffgates.kernels.reference import dense_reference
from diffgates.kernels.torch_ops import dense_torch
from diffgates.nn import GateOptions, GroupSum, LogicDense
from diffgates.nn import parametrization as P

pytestmark = pytest.mark.skipif(not cpu.available(), reason="needs a C compiler for the fused kernels")


@settings(max_examples=30, deadline=None)
@given(
    n_in=st.integers(2, 40),
    n_out=st.integers(1, 50),
    batch=st.integers(1, 70),
    param=st.sampled_from(["softmax16", "truth4"]),
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 1000),
)
def test_fused_equals_reference_forward_and_gradients(n_in, n_out, batch, param, threads, seed):
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    layer = LogicDense(n_in, n_out, GateOptions(param, "gaussian"), seed=seed, connections="random")
    w = layer.weight.detach().double().requires_grad_()
    x = torch.rand(n_in, batch, dtype=torch.float64, requires_grad=True)
    y = logic_dense(x, layer.ia, layer.ib, P.relaxed_coefficients(w, param), engine="cpu")
    y_ref = dense_reference(x, layer.ia, layer.ib, w, param)
    assert_fused_equals_reference(y, y_ref, (x, w))


def test_fused_float64_gradcheck():
    layer = LogicDense(6, 5, GateOptions("softmax16", "gaussian"), seed=0)
    x = torch.rand(6, 3, dtype=torch.float64, requires_grad=True)
    c = P.relaxed_coefficients(layer.weight.detach().double(), "softmax16").requires_grad_()
    assert torch.autograd.gradcheck(lambda x, c: cpu.dense(x, layer.ia, layer.ib, c), (x, c))


def test_fused_float32_close_to_reference_on_a_wide_layer():
    layer = LogicDense(300, 1000, GateOptions("softmax16", "gaussian", engine="cpu"), seed=1)
    x = torch.rand(300, 129, requires_grad=True)
    y = layer(x)
    y_ref = dense_reference(x, layer.ia, layer.ib, layer.weight, "softmax16")
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    (gx,) = torch.autograd.grad(y.square().sum(), x)
    (gx_ref,) = torch.autograd.grad(y_ref.square().sum(), x)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-4, atol=1e-4)


def test_auto_engine_picks_fused_on_cpu():
    assert resolve_engine("auto", torch.zeros(1)) == "cpu"


def test_weight_gradient_without_input_gradient_equals_reference():
    layer = LogicDense(30, 40, GateOptions("softmax16", "gaussian"), seed=2)
    w = layer.weight.detach().double().requires_grad_()
    x = torch.rand(30, 19, dtype=torch.float64)  # a first layer: its input needs no gradient
    y = logic_dense(x, layer.ia, layer.ib, P.relaxed_coefficients(w, "softmax16"), engine="cpu")
    y_ref = dense_reference(x, layer.ia, layer.ib, w, "softmax16")
    g = torch.randn_like(y)
    torch.testing.assert_close(torch.autograd.grad(y, w, g)[0], torch.autograd.grad(y_ref, w, g)[0])


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 70),
    param=st.sampled_from(["softmax16", "truth4"]),
    scale=st.sampled_from([1.0, 30.0, 200.0]),
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 1000),
)
def test_fused_coefficients_equal_torch_ops(n, param, scale, threads, seed):
    """The one-pass C coefficients (forward and weight gradient) against softmax/sigmoid @ basis,
    in float64 and, with the vectorised float exp, in float32; large logits included."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-6)):
        w = (scale * torch.randn(n, P.n_weights(param), dtype=dtype)).requires_grad_()
        g = torch.randn(n, 4, dtype=dtype)
        c = P.relaxed_coefficients(w, param)
        c_ref = P.relaxed_coefficients_torch(w, param)
        torch.testing.assert_close(c, c_ref, rtol=tol, atol=tol)
        (gw,) = torch.autograd.grad(c, w, g)
        (gw_ref,) = torch.autograd.grad(c_ref, w, g)
        torch.testing.assert_close(gw, gw_ref, rtol=tol, atol=tol)


def test_only_the_c_engines_use_the_fused_coefficients():
    """Engines torch and reference stay plain torch ops (the GPU path's stand-in on CPU)."""
    names = {}
    for engine in ("auto", "cpu", "torch", "reference"):
        layer = LogicDense(8, 4, GateOptions(init="gaussian", engine=engine), seed=0).train()
        names[engine] = type(layer.coefficients().grad_fn).__name__
    assert names["auto"] == names["cpu"] == "_CoefFnBackward"
    assert "_CoefFn" not in names["torch"] and "_CoefFn" not in names["reference"]


@settings(max_examples=20, deadline=None)
@given(
    n_in=st.integers(2, 40),
    n_out=st.integers(1, 50),
    batch=st.integers(1, 70),
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 1000),
)
def test_bfloat16_kernels_equal_float64_math_up_to_one_rounding(n_in, n_out, batch, threads, seed):
    """bfloat16 storage, float32 arithmetic: every stored value is the float64 result of the same
    bfloat16 inputs, rounded once (relative error <= 2**-9); the coefficient sums stay float32."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    layer = LogicDense(n_in, n_out, GateOptions("truth4", "gaussian"), seed=seed, connections="random")
    assert_bfloat16_op_equals_float64(
        lambda x, c: logic_dense(x, layer.ia, layer.ib, c, engine="cpu"),
        lambda x, c: dense_torch(x, layer.ia, layer.ib, c),
        torch.rand(n_in, batch).to(torch.bfloat16),
        P.relaxed_coefficients(layer.weight.detach(), "truth4"),
    )


def test_bfloat16_torch_engine_matches_the_c_kernels():
    """The torch engine (the GPU path) also computes bfloat16 activations in float32 and stores
    the result in bfloat16, so both engines give the same layer."""
    layer = LogicDense(50, 80, GateOptions("truth4", "gaussian"), seed=3)
    c = P.relaxed_coefficients(layer.weight.detach(), "truth4")
    x = torch.rand(50, 33).to(torch.bfloat16)
    y_cpu = logic_dense(x, layer.ia, layer.ib, c, engine="cpu")
    y_torch = logic_dense(x, layer.ia, layer.ib, c, engine="torch")
    assert y_torch.dtype == torch.bfloat16
    torch.testing.assert_close(y_cpu.double(), y_torch.double(), rtol=2**-7, atol=1e-6)


def test_cpu_engine_refuses_bfloat16_where_no_kernel_takes_it():
    with pytest.raises(DiffgatesError, match="does not take torch.bfloat16"):
        resolve_engine("cpu", torch.zeros(1, dtype=torch.bfloat16))
    assert resolve_engine("auto", torch.zeros(1, dtype=torch.bfloat16)) == "torch"  # e.g. the conv kernels


@settings(max_examples=25, deadline=None)
@given(
    n_in=st.integers(2, 40),
    k=st.integers(1, 5),
    per=st.integers(1, 150),  # > 64: several blocks per class
    batch=st.integers(1, 40),
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 1000),
)
def test_fused_last_layer_with_groupsum_equals_the_two_steps(n_in, k, per, batch, threads, seed):
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    layer = LogicDense(n_in, k * per, GateOptions("truth4", "gaussian"), seed=seed, connections="random")
    c = P.relaxed_coefficients(layer.weight.detach().double(), "truth4").requires_grad_()
    x = torch.rand(n_in, batch, dtype=torch.float64, requires_grad=True)
    scores = cpu.dense_groupsum(x, layer.ia, layer.ib, c, k, 3.0)
    scores_ref = GroupSum(k, 3.0)(dense_torch(x, layer.ia, layer.ib, c))
    assert_fused_equals_reference(scores, scores_ref, (x, c))


def test_fused_last_layer_in_bfloat16_and_without_input_gradient():
    layer = LogicDense(30, 200, GateOptions("truth4", "gaussian"), seed=4)
    c = P.relaxed_coefficients(layer.weight.detach(), "truth4").requires_grad_()
    x = torch.rand(30, 21)
    xb = x.to(torch.bfloat16).requires_grad_()
    scores = cpu.dense_groupsum(xb, layer.ia, layer.ib, c, 10, 2.0)
    assert scores.dtype == torch.float32
    x64 = xb.detach().double().requires_grad_()
    c64 = c.detach().double().requires_grad_()
    ref = GroupSum(10, 2.0)(dense_torch(x64, layer.ia, layer.ib, c64))
    torch.testing.assert_close(scores.double(), ref, rtol=1e-5, atol=1e-5)  # summed in float32
    g = torch.randn(21, 10).to(torch.bfloat16).float()  # with tau = 2 the gradient rows stay exact in bfloat16
    gx, gc = torch.autograd.grad(scores, (xb, c), g)
    gx_ref, gc_ref = torch.autograd.grad(ref, (x64, c64), g.double())
    torch.testing.assert_close(gx.double(), gx_ref, rtol=2**-8, atol=1e-6)  # rounded once, when stored
    torch.testing.assert_close(gc.double(), gc_ref, rtol=1e-5, atol=1e-5)
    (gc_only,) = torch.autograd.grad(cpu.dense_groupsum(x, layer.ia, layer.ib, c, 10, 2.0), c, g)  # a first layer
    (gc_want,) = torch.autograd.grad(GroupSum(10, 2.0)(dense_torch(x, layer.ia, layer.ib, c)), c, g)
    torch.testing.assert_close(gc_only, gc_want, rtol=1e-5, atol=1e-5)


def _stack(n_in, widths, seed, param="truth4"):
    """Dense layers n_in -> widths, randomly wired, with gaussian weights."""
    layers, prev = [], n_in
    for i, w in enumerate(widths):
        layers.append(LogicDense(prev, w, GateOptions(param, "gaussian"), seed=seed + i, connections="random"))
        prev = w
    return layers


def _layer_by_layer(x, layers, cs, k, tau):
    for layer, c in zip(layers[:-1], cs[:-1]):
        x = dense_torch(x, layer.ia, layer.ib, c)
    return GroupSum(k, tau)(dense_torch(x, layers[-1].ia, layers[-1].ib, cs[-1]))


@settings(max_examples=30, deadline=None)
@given(
    n_in=st.integers(2, 30),
    hidden=st.lists(st.integers(2, 40), min_size=1, max_size=3),
    k=st.integers(1, 4),
    per=st.integers(1, 20),
    batch=st.integers(1, 140),  # tiles of 8 to 64 samples and a narrower last one
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 1000),
)
def test_stacked_layers_equal_the_layers_one_by_one(n_in, hidden, k, per, batch, threads, seed):
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    layers = _stack(n_in, [*hidden, k * per], seed)
    cs = [P.relaxed_coefficients(layer.weight.detach().double(), "truth4").requires_grad_() for layer in layers]
    x = torch.rand(n_in, batch, dtype=torch.float64, requires_grad=True)
    scores = cpu.dense_stack(x, [(layer.ia, layer.ib) for layer in layers], cs, k, 3.0)
    assert_fused_equals_reference(scores, _layer_by_layer(x, layers, cs, k, 3.0), (x, *cs))


@settings(max_examples=20, deadline=None)
@given(
    param=st.sampled_from(["softmax16", "truth4"]),
    hidden=st.lists(st.integers(2, 70), min_size=1, max_size=3),  # layers of whole and partial vectors
    batch=st.integers(1, 100),
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 1000),
)
def test_stacked_layers_make_their_coefficients_from_the_weights(param, hidden, batch, threads, seed):
    """Given the weights and the basis, the stacked kernels compute the relaxed coefficients of
    every layer in the same call and the weights' gradients in the backward: the same values and
    gradients as softmax/sigmoid @ basis in torch ops and the layers one by one (float64), and in
    float32 within float rounding."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    layers = _stack(12, [*hidden, 3 * 5], seed, param)
    wiring = [(layer.ia, layer.ib) for layer in layers]
    basis = P.weight_basis(param, layers[0].weight)
    g = torch.randn(batch, 3, dtype=torch.float64)
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        ws = [(4 * layer.weight.detach()).to(dtype).requires_grad_() for layer in layers]
        x = torch.rand(12, batch, dtype=dtype, requires_grad=True)
        scores = cpu.dense_stack(x, wiring, ws, 3, 2.0, basis)
        ref = _layer_by_layer(x, layers, [P.relaxed_coefficients_torch(w, param) for w in ws], 3, 2.0)
        torch.testing.assert_close(scores, ref, rtol=tol, atol=tol)
        got = torch.autograd.grad(scores, (x, *ws), g.to(dtype))
        want = torch.autograd.grad(ref, (x, *ws), g.to(dtype))
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=tol, atol=tol)


# the stacked backward's per-gate sums: AVX-512 block shuffles, or added up lane by lane
@pytest.mark.parametrize("march,needs", [("x86-64", "sse2"), ("x86-64-v3", "avx2"), ("x86-64-v4", "avx512f")])
def test_stacked_layers_sum_each_gates_gradient_right_on_each_instruction_set(monkeypatch, march, needs):
    """float32, two whole tiles of 64 samples and a partial one: the coefficient gradients (each
    gate's four sums over a tile's samples) and the input gradient equal the torch layers'."""
    from conftest import build_for

    build_for(monkeypatch, march, needs)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    layers = _stack(12, [40, 70, 15], 3, "softmax16")
    wiring = [(layer.ia, layer.ib) for layer in layers]
    basis = P.weight_basis("softmax16", layers[0].weight)
    ws = [(4 * layer.weight.detach()).requires_grad_() for layer in layers]
    x = torch.rand(12, 150, requires_grad=True)
    assert cpu.stack_tile(150, 2) == 64
    scores = cpu.dense_stack(x, wiring, ws, 3, 2.0, basis)
    ref = _layer_by_layer(x, layers, [P.relaxed_coefficients_torch(w, "softmax16") for w in ws], 3, 2.0)
    g = torch.randn(150, 3)
    for a, b in zip(torch.autograd.grad(scores, (x, *ws), g), torch.autograd.grad(ref, (x, *ws), g)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_stacked_layers_refuse_parameters_that_do_not_match_the_wiring():
    layers = _stack(10, [20, 30], seed=1, param="softmax16")
    wiring = [(layer.ia, layer.ib) for layer in layers]
    basis = P.weight_basis("softmax16", layers[0].weight)
    x = torch.rand(10, 8)
    weights = [layer.weight for layer in layers]
    with pytest.raises(ValueError, match="layer 1 has 30 gates"):
        cpu.dense_stack(x, wiring, [weights[0], weights[1][:20]], 3, 1.0, basis)
    with pytest.raises(ValueError, match=r"not \(gates, 4\)"):
        cpu.dense_stack(x, wiring, weights, 3, 1.0)  # weights given as coefficients


def test_stacked_layers_give_the_same_result_for_any_thread_count_and_batch_tiling():
    """The coefficient gradients add up tile by tile in a fixed order; each sample's values and
    input gradient are computed in one tile, whatever its width."""
    layers = _stack(40, [300, 300, 200], seed=5)
    cs = [P.relaxed_coefficients(layer.weight.detach(), "truth4").requires_grad_() for layer in layers]
    x = torch.rand(40, 130, requires_grad=True)
    g = torch.randn(130, 10)
    wiring = [(layer.ia, layer.ib) for layer in layers]
    results = []
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        scores = cpu.dense_stack(x, wiring, cs, 10, 2.0)
        results.append((scores, *torch.autograd.grad(scores, (x, *cs), g)))
    assert [cpu.stack_tile(130, t) for t in (1, 2, 3)] == [64, 64, 48]
    for got in results[1:]:
        for a, b in zip(got, results[0]):
            if a.shape == x.shape or a.shape == (130, 10):  # per sample: the same arithmetic
                assert torch.equal(a, b)
            else:  # the coefficient sums: tiles of other widths add up in another order
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_stacked_layers_store_bfloat16_and_keep_float32_gradients_inside():
    """bfloat16 activations: every stored output is the float64 result rounded once; the
    gradients between layers stay float32 in the tile, so only the input gradient is rounded."""
    torch.manual_seed(0)
    layers = _stack(30, [60, 50], seed=7)
    cs = [P.relaxed_coefficients(layer.weight.detach(), "truth4").requires_grad_() for layer in layers]
    xb = torch.rand(30, 77).to(torch.bfloat16).requires_grad_()
    scores = cpu.dense_stack(xb, [(layer.ia, layer.ib) for layer in layers], cs, 5, 2.0)
    assert scores.dtype == torch.float32
    x64 = xb.detach().double().requires_grad_()
    c64 = [c.detach().double().requires_grad_() for c in cs]
    ref = _layer_by_layer(x64, layers, c64, 5, 2.0)
    torch.testing.assert_close(scores.double(), ref, rtol=2**-7, atol=1e-2)  # hidden outputs rounded once
    g = torch.randn(77, 5)
    gx, *gc = torch.autograd.grad(scores, (xb, *cs), g)
    gx_ref, *gc_ref = torch.autograd.grad(ref, (x64, *c64), g.double())
    assert gx.dtype == torch.bfloat16
    # the stored rows' rounding reaches the input gradient as an error on the gradient's scale
    # (at most 0.6 % of its largest entry over 300 seeds), not on each entry's
    torch.testing.assert_close(gx.double(), gx_ref, rtol=2**-6, atol=2**-6 * float(gx_ref.abs().max()))
    for got, want in zip(gc, gc_ref):
        torch.testing.assert_close(got.double(), want, rtol=2**-6, atol=1e-2)


def test_the_model_trains_its_dense_layers_stacked_and_gets_the_layer_by_layer_gradients():
    from diffgates.nn.model import LogicNet, ModelConfig

    config = ModelConfig(n_features=20, n_classes=4, widths=[64, 48, 40], encoder_bits=1, tau=5.0)
    model = LogicNet(config, engine="cpu").double()
    bits = torch.randint(0, 2, (33, 20)).double()
    calls = []
    real = cpu.dense_stack
    try:
        cpu.dense_stack = lambda *a: calls.append(1) or real(*a)
        grads = {}
        for stacked in (True, False):
            model.stacked = stacked
            model.zero_grad()
            torch.nn.functional.cross_entropy(model.forward_bits(bits), torch.arange(33) % 4).backward()
            grads[stacked] = [p.grad.clone() for p in model.parameters()]
        with torch.no_grad():
            model.forward_bits(bits)  # inference stays layer by layer: nothing stored
    finally:
        cpu.dense_stack = real
    assert calls == [1]
    for a, b in zip(grads[True], grads[False]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_kernels_that_cannot_allocate_their_scratch_raise_memory_error(monkeypatch):
    """A build whose every scratch allocation fails (-DSCRATCH_FAILS): each kernel with scratch
    buffers reports it as a MemoryError instead of crashing, and the kernels without any still
    run in that build."""
    from diffgates.nn.conv import LogicConv2d

    monkeypatch.setattr(cpu, "_DEFINES", ("SCRATCH_FAILS",))
    layers = _stack(12, [20, 30], seed=3)
    cs = [P.relaxed_coefficients(layer.weight.detach(), "truth4").requires_grad_() for layer in layers]
    x = torch.rand(12, 16, requires_grad=True)
    ia, ib = layers[0].ia, layers[0].ib

    y = cpu.dense(x, ia, ib, cs[0])  # no scratch: it runs
    torch.testing.assert_close(y, dense_torch(x, ia, ib, cs[0]))
    with pytest.raises(MemoryError, match="dense_backward kernel could not allocate"):
        y.sum().backward()
    with pytest.raises(MemoryError, match="dense_groupsum_forward"):
        cpu.dense_groupsum(x, ia, ib, cs[0], 4, 1.0)
    scores = cpu.dense_stack(x, [(layer.ia, layer.ib) for layer in layers], cs, 3, 1.0)  # forward: none
    with pytest.raises(MemoryError, match="stack_backward"):
        scores.sum().backward()
    cand = torch.randint(0, 12, (8, 3))
    with pytest.raises(MemoryError, match="weighted_gather"):
        cpu.select(x, cand, torch.rand(8, 3))
    conv = LogicConv2d((2, 6, 6), 3, 3, padding=1, pool=2, options=GateOptions("truth4", "gaussian"), seed=1)
    xc = torch.rand(conv.in_features, 5, requires_grad=True)
    c = P.relaxed_coefficients(conv.weight.detach(), "truth4").view(3, -1, 4)
    out = cpu.tree_conv(xc, cpu.pool_slots(conv.leaf_rows(), conv.conv_shape, 2), c)
    with pytest.raises(MemoryError, match="conv_backward"):
        out.sum().backward()
