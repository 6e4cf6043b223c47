"""Logic-tree convolutions and OR pooling: fused == plain reference, unrolled circuit == model."""

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import assert_fused_equals_reference
from diffgates import DiffgatesError, load_model, save_model
from diffgates.circuit.execute import predict_counts, run_numpy
from diffgates.circuit.passes import optimize
from diffgates.data.augment import augment_bits
from diffgates.kernels import cpu, logic_tree_conv
from diffgates.kernels.reference import tree_reference
from diffgates.kernels.torch_ops import or_pool2d, tree_torch
from diffgates.nn import GateOptions, to_circuit
from diffgates.nn import parametrization as P
from diffgates.nn.conv import ConvSpec, LogicConv2d, OrPool2d
from diffgates.nn.model import LogicNet, ModelConfig

needs_c = pytest.mark.skipif(not cpu.available(), reason="needs a C compiler for the fused kernels")


def _tree_conv(layer, x, c, engine):
    """The layer's functional kernel on coefficients ``c``."""
    s = layer.spec
    return logic_tree_conv(x, layer.leaf_rows(), c, layer.conv_shape, s.pool, s.pool_padding, engine)


def _reference(layer, x, w):
    y = tree_reference(x, layer.leaf_rows(), w, layer.options.parametrization)
    return y if layer.spec.pool == 1 else or_pool2d(y, layer.conv_shape, layer.spec.pool, layer.spec.pool_padding)


@needs_c
@settings(max_examples=40, deadline=None)
@given(
    channels=st.integers(1, 4),
    hw=st.tuples(st.integers(3, 9), st.integers(3, 9)),
    kernels=st.integers(1, 6),
    size=st.integers(2, 3),
    padding=st.integers(0, 1),
    stride=st.integers(1, 2),
    pool=st.integers(1, 3),
    pool_padding=st.integers(0, 1),
    depth=st.integers(1, 4),
    batch=st.integers(1, 40),
    param=st.sampled_from(["softmax16", "truth4"]),
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 1000),
)
def test_fused_tree_and_pooling_equal_reference(
    channels, hw, kernels, size, padding, stride, pool, pool_padding, depth, batch, param, threads, seed
):
    torch.set_num_threads(threads)
    pool_padding = min(pool_padding, pool - 1)
    try:
        layer = LogicConv2d(
            (channels, *hw), kernels, size, stride=stride, padding=padding, depth=depth, pool=pool,
            pool_padding=pool_padding,
            options=GateOptions(param, "gaussian"), seed=seed,
        )  # fmt: skip
    except DiffgatesError:
        return  # the block does not fit the map
    torch.manual_seed(seed)
    w = layer.weight.detach().double().requires_grad_()
    x = torch.rand(layer.in_features, batch, dtype=torch.float64, requires_grad=True)
    y = _tree_conv(layer, x, P.relaxed_coefficients(w, param).view(kernels, -1, 4), "cpu")
    y_ref = _reference(layer, x, w)
    assert_fused_equals_reference(y, y_ref, (x, w))


@needs_c
def test_fused_weight_gradient_without_input_gradient():
    layer = LogicConv2d((3, 10, 10), 5, 3, padding=1, pool=2, options=GateOptions("truth4", "gaussian"), seed=4)
    w = layer.weight.detach().double().requires_grad_()
    x = torch.rand(layer.in_features, 33, dtype=torch.float64)  # a first layer: its input needs no gradient
    y = _tree_conv(layer, x, P.relaxed_coefficients(w, "truth4").view(5, -1, 4), "cpu")
    g = torch.randn_like(y)
    torch.testing.assert_close(torch.autograd.grad(y, w, g)[0], torch.autograd.grad(_reference(layer, x, w), w, g)[0])


def test_torch_engine_equals_reference():
    layer = LogicConv2d((2, 8, 8), 4, 3, padding=1, pool=2, options=GateOptions("softmax16", "gaussian"), seed=5)
    x = torch.rand(layer.in_features, 9, dtype=torch.float64)
    w = layer.weight.detach().double()
    c = P.relaxed_coefficients(w, "softmax16").view(4, -1, 4)
    y = _tree_conv(layer, x, c, "torch")
    torch.testing.assert_close(y, or_pool2d(tree_torch(x, layer.leaf_rows(), c), layer.conv_shape, 2, 0))
    torch.testing.assert_close(y, _reference(layer, x, w))


@needs_c
def test_fused_engine_follows_new_wiring():
    """The fused kernel's pooled leaf table is remembered for the layer's leaf rows; a layer that
    takes other wiring (load_state_dict) must not run on the old table."""
    opts = GateOptions("truth4", "gaussian")
    layer, other = (LogicConv2d((2, 8, 8), 4, 3, padding=1, pool=2, options=opts, seed=s) for s in (6, 7))
    x = torch.rand(layer.in_features, 9, dtype=torch.float64)

    def on(engine):
        layer.options = dataclasses.replace(layer.options, engine=engine)
        return layer(x)

    torch.testing.assert_close(on("cpu"), on("torch"))
    expected = other(x)  # other's own wiring, on the fused kernel
    assert not torch.allclose(on("cpu"), expected)
    layer.load_state_dict(other.state_dict())
    torch.testing.assert_close(on("cpu"), expected)
    torch.testing.assert_close(on("torch"), expected)


def test_or_pool_is_or_on_bits_and_routes_gradient_to_first_maximum():
    pool = OrPool2d((1, 4, 4), size=2)
    bits = (torch.rand(16, 50) > 0.7).double()
    out = pool(bits)
    as_or = bits.view(2, 2, 2, 2, 50).amax(dim=(1, 3)).reshape(4, 50)
    assert torch.equal(out, as_or)
    x = torch.tensor([[0.5], [0.9], [0.9], [0.1]], requires_grad=True)  # one 2x2 window, a tie at 0.9
    OrPool2d((1, 2, 2), size=2)(x).sum().backward()
    assert x.grad.view(-1).tolist() == [0.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("tree_channels", [2, 4])
def test_leaves_use_at_most_tree_channels_of_their_group_and_distinct_pairs(tree_channels):
    layer = LogicConv2d((16, 6, 6), 12, 3, depth=3, groups=2, tree_channels=tree_channels, seed=0)
    widest = 0
    for k in range(12):
        used = set(layer.leaf_channel[k].tolist())
        assert len(used) <= tree_channels
        widest = max(widest, len(used))
        group = k // 6
        assert all(8 * group <= c < 8 * group + 8 for c in used)
        leaves = list(zip(layer.leaf_channel[k].tolist(), layer.leaf_dy[k].tolist(), layer.leaf_dx[k].tolist()))
        assert all(leaves[2 * i] != leaves[2 * i + 1] for i in range(4))
    assert widest == tree_channels  # 8 leaves among 9 x tree_channels slots: some tree uses them all
    assert 0 <= int(layer.leaf_dy.min()) and int(layer.leaf_dy.max()) < 3


def test_residual_init_makes_every_tree_pass_its_first_leaf():
    layer = LogicConv2d((1, 5, 5), 3, 3, pool=1, options=GateOptions("truth4"), seed=1).eval()
    x = (torch.rand(25, 20) > 0.5).float()
    y = layer(x).view(3, 9, 20)
    rows = layer.leaf_rows()[:, :, 0]
    assert torch.equal(y, x[rows])


def test_conv_spec_parsing():
    assert ConvSpec.parse("16:5") == ConvSpec(16, 5, 0, 2, 0)
    assert ConvSpec.parse("48:3:0:2:1") == ConvSpec(48, 3, 0, 2, 1)
    assert ConvSpec.parse("8:3:1:1:0:2").stride == 2
    assert ConvSpec.parse("8:3:1:1:0:2:4").depth == 4 and ConvSpec.parse("8:3").depth == 0
    for bad in ("16", "a:3", "0:3", "16:3:-1", "16:3:1:1:1", "16:3:1:2:2", "8:3:1:1:0:1:6", "8:3:1:1:0:1:2:1"):
        with pytest.raises(DiffgatesError):
            ConvSpec.parse(bad)


def test_a_blocks_own_tree_depth_overrides_the_models():
    model = conv_model(conv=("6:3:1:2:1:1:1", "8:2:0:2:0"), tree_depth=3)
    assert [conv.depth for conv in model.convs] == [1, 3]
    assert model.config.gate_counts()["conv"] == sum(conv.n_gates for conv in model.convs)


def conv_model(
    seed=0, param="softmax16", conv=("6:3:1:2:1", "8:2:0:2:0"), shape=(2, 9, 8), bits=2, widths=(60, 30), **options
):
    n_features = int(np.prod(shape))
    cfg = ModelConfig(
        n_features=n_features, n_classes=3, widths=list(widths), encoder_bits=bits, parametrization=param,
        init="gaussian", image_shape=list(shape), conv=list(conv), seed=seed, **options,
    )  # fmt: skip
    model = LogicNet(cfg, engine="torch")
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 4)
    model.encoder.fit(np.random.default_rng(seed).normal(size=(200, n_features)))
    return model.eval()


LOCAL_ON_BITS = {"head_blocks": 2, "head_input": "blocks+bits", "connections": "local", "window": 8}


@pytest.mark.parametrize(
    "seed,param,conv,shape,options",
    [
        (0, "softmax16", ("6:3:1:2:1", "8:2:0:2:0"), (2, 9, 8), {}),
        (1, "truth4", ("4:3:0:1", "6:3:1:3:1"), (1, 10, 10), {}),
        (2, "truth4", ("5:2:1:2:0",), (3, 7, 7), {}),
        (3, "softmax16", ("4:3:1:1:0:2", "6:2:0:2:1"), (2, 9, 9), {}),
        # the head reads all three blocks; trees draw from up to 3 channels
        (4, "truth4", ("4:3:1:2:0", "6:3:1:2:1", "5:2:0:1"), (2, 8, 8), {"head_blocks": 3, "tree_channels": 3}),
        # the head reads the encoder's bits beside the last two blocks
        (5, "softmax16", ("4:3:1:2:0", "6:3:1:2:1"), (2, 8, 8), {"head_blocks": 2, "head_input": "blocks+bits"}),
        # locally wired dense layers over the bits and two blocks, windows in position order
        (6, "truth4", ("4:3:1:2:0", "6:3:1:2:1"), (1, 8, 8), LOCAL_ON_BITS),
        # blocks of their own tree depths (1 and 4) beside the model's (2)
        (7, "truth4", ("4:3:1:2:0:1:1", "6:3:1:2:1:1:4", "5:2:0:1"), (2, 8, 8), {"tree_depth": 2}),
    ],
)
def test_unrolled_circuit_equals_discrete_model(seed, param, conv, shape, options):
    model = conv_model(seed, param, conv, shape, **options)
    x = np.random.default_rng(seed).normal(size=(1000, int(np.prod(shape)))).astype(np.float32)
    expected = model.counts(torch.as_tensor(x)).numpy()
    circuit = to_circuit(model)
    assert circuit.n_gates == model.n_gates + 1  # plus the one FALSE gate that padding reads
    assert np.array_equal(predict_counts(circuit, x), expected)
    assert np.array_equal(predict_counts(optimize(circuit)[0], x), expected)
    bits = model.encoder(torch.as_tensor(x)).numpy().astype(np.uint8)
    assert np.array_equal(run_numpy(circuit, bits), expected)
    if cpu.available():
        fused = conv_model(seed, param, conv, shape, **options)
        fused.set_engine("cpu")
        assert np.array_equal(fused.counts(torch.as_tensor(x)).numpy(), expected)


def test_conv_model_saves_and_reloads_exactly(tmp_path):
    model = conv_model(3)
    save_model(model, tmp_path / "m.safetensors")
    again = load_model(tmp_path / "m.safetensors")
    x = torch.randn(50, model.config.n_features)
    assert torch.equal(model.counts(x), again.counts(x))
    assert torch.equal(model.convs[0].leaf_rows(), again.convs[0].leaf_rows())


def test_head_input_bits_feed_the_encoder_bits_to_the_head_and_survive_a_reload(tmp_path):
    model = conv_model(5, head_input="blocks+bits")
    plain = conv_model(5)
    n_bits = model.config.n_features * model.encoder.n_bits
    assert model.layers[0].in_features == plain.layers[0].in_features + n_bits
    save_model(model, tmp_path / "m.safetensors")
    again = load_model(tmp_path / "m.safetensors")
    assert again.config.head_input == "blocks+bits"
    x = torch.randn(50, model.config.n_features)
    assert torch.equal(model.counts(x), again.counts(x))
    bits = model.encoder(x)
    assert torch.equal(model.head_input(bits)[:n_bits], model.first_layer_input(bits))
    with pytest.raises(DiffgatesError, match="needs convolution blocks"):
        LogicNet(ModelConfig(n_features=4, n_classes=2, widths=[4], head_input="blocks+bits"))


def test_local_windows_of_the_head_run_over_positions_all_channels_together():
    conv = ("8:3:1:2:0", "16:3:1:1:0")
    model = conv_model(0, "truth4", conv, (1, 12, 12), widths=(600, 30), connections="local", window=32)
    ch, h, w = model.convs[-1].out_shape  # (16, 6, 6): a window of 32 spans 2 to 3 positions
    first = model.layers[0]
    pos_a, pos_b = first.ia % (h * w), first.ib % (h * w)
    apart = (pos_a - pos_b).abs()
    apart = torch.minimum(apart, h * w - apart)  # the windows wrap around at the end
    assert int(apart.max()) <= 32 // ch + 1
    assert len(set((first.ia // (h * w)).tolist())) == ch  # ... and read every channel
    assert int((first.ia // (h * w) - first.ib // (h * w)).abs().max()) > ch // 2
    random = conv_model(0, "truth4", conv, (1, 12, 12), widths=(600, 30), connections="random")
    spread = (random.layers[0].ia % (h * w) - random.layers[0].ib % (h * w)).abs()
    assert int(torch.minimum(spread, h * w - spread).max()) > 32 // ch + 1


def test_gate_counts_from_shapes_match_the_built_model():
    model = conv_model(4)
    counts = model.config.gate_counts()
    assert counts["conv"] + counts["pool"] + counts["dense"] == model.n_gates


def test_augment_crop_shifts_and_flip_mirrors():
    shape, nb = (1, 5, 6), 2
    bits = torch.zeros(200, 5 * 6 * nb)
    bits.view(200, 1, 5, 6, nb)[:, 0, 2, 3, 1] = 1  # one set bit per image
    torch.manual_seed(0)
    out = augment_bits(bits, shape, nb, crop=1).view(200, 1, 5, 6, nb)
    where = out.nonzero()
    assert (out.sum(dim=(1, 2, 3, 4)) == 1).all()  # a one-pixel shift keeps the bit inside
    assert set(where[:, 2].tolist()) == {1, 2, 3} and set(where[:, 3].tolist()) == {2, 3, 4}
    assert (where[:, 4] == 1).all()  # the threshold bit stays in its place
    flipped = augment_bits(bits, shape, nb, flip=1.0).view(200, 1, 5, 6, nb)
    assert (flipped[:, 0, 2, 2, 1] == 1).all()
    assert torch.equal(augment_bits(bits, shape, nb), bits)


def test_train_a_convolutional_model_end_to_end(tmp_path, capsys):
    from diffgates.cli import main

    out = tmp_path / "run"
    argv = ["train", "--dataset", "digits", "--image-shape", "1,8,8", "--conv", "8:3:1:2,16:3:1:2:1"]
    argv += [
        "--widths",
        "300,100",
        "--epochs",
        "2",
        "--random-crop",
        "1",
        "--flip",
        "0.5",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0
    assert "(0 circuit/model mismatches)" in capsys.readouterr().out
    assert main(["eval", str(out)]) == 0
    assert main(["train", "--model", "nope"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_init_from_continues_another_run_with_hard_forward(tmp_path, capsys):
    from diffgates.checkpoint import load_model
    from diffgates.cli import main

    base = ["train", "--dataset", "digits", "--image-shape", "1,8,8", "--conv", "8:3:1:2", "--widths", "200,100"]
    assert main([*base, "--epochs", "1", "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main([*base, "--epochs", "0", "--out", str(tmp_path / "x"), "--quiet"]) == 2  # epochs must be >= 1
    argv = [*base, "--epochs", "1", "--lr", "1e-12", "--forward", "hard", "--init-from", str(tmp_path / "a")]
    assert main([*argv, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    a, b = load_model(tmp_path / "a" / "model.safetensors"), load_model(tmp_path / "b" / "model.safetensors")
    assert torch.equal(a.convs[0].leaf_rows(), b.convs[0].leaf_rows())
    torch.testing.assert_close(a.layers[0].weight, b.layers[0].weight, atol=1e-6, rtol=0)  # lr ~ 0: unchanged
    wrong = [*base[:-1], "300,100", "--epochs", "1", "--init-from", str(tmp_path / "a"), "--out", str(tmp_path / "c")]
    assert main(wrong) == 2
    assert "another architecture" in capsys.readouterr().err
