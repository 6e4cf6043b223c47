"""diffgates import: torchlogix and difflogic networks become runs computing exactly what the
source library computes in eval mode, read without running the library's code."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torchlogix.layers import FixedBinarization, GroupSum, LearnableBinarization, LogicConv2d, LogicDense, OrPooling2d

from diffgates import gates
from diffgates.circuit import predict_counts
from diffgates.cli import main
from diffgates.data import load_dataset
from diffgates.errors import DiffgatesError
from diffgates.hw.tools import find
from diffgates.interop import import_network, pickles
from diffgates.interop.sources import gate_ids, lut_tables
from diffgates.runs import load_run

PATTERNS = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])


@pytest.mark.parametrize("parametrization", ["raw", "warp", "light"])
def test_each_parametrization_selects_the_gate_torchlogix_evaluates(parametrization):
    """The gate worked out from the weights equals torchlogix's own eval-mode output on the four
    input patterns, for random weights and for small integers (ties and zero sums included)."""
    torch.manual_seed(0)
    layer = LogicDense(2, 600, parametrization=parametrization).eval()
    with torch.no_grad():
        layer.weight.normal_()
        layer.weight[300:] = torch.randint(-2, 3, layer.weight[300:].shape).float()
        layer.connections.indices = torch.stack([torch.zeros(600, dtype=torch.long), torch.ones(600, dtype=torch.long)])
        theirs = layer(PATTERNS).T  # (gates, 4 patterns)
    ours = gates.TRUTH[gate_ids(layer.weight, parametrization)]
    np.testing.assert_array_equal(ours, theirs.numpy().astype(np.int64))
    assert len(set(gate_ids(layer.weight, parametrization).tolist())) >= 14  # nearly every gate appears


@pytest.mark.parametrize("parametrization, rank", [("warp", 1), ("warp", 4), ("warp", 6), ("light", 4), ("light", 6)])
def test_each_parametrization_gives_the_lut_torchlogix_evaluates(parametrization, rank):
    """Truth tables of LUTs of 1, 4 and 6 inputs equal torchlogix's eval-mode outputs on every input
    pattern, for random weights and for small integers (ties and zero sums included)."""
    torch.manual_seed(rank)
    layer = LogicDense(rank, 400, lut_rank=rank, parametrization=parametrization).eval()
    patterns = torch.tensor([[(p >> (rank - 1 - i)) & 1 for i in range(rank)] for p in range(1 << rank)]).float()
    with torch.no_grad():
        layer.weight.normal_()
        layer.weight[200:] = torch.randint(-2, 3, layer.weight[200:].shape).float()
        layer.connections.indices = torch.arange(rank)[:, None].expand(rank, 400).contiguous()
        theirs = layer(patterns).T  # (LUTs, patterns)
    ours = lut_tables(layer.weight, parametrization, rank)
    np.testing.assert_array_equal(ours, theirs.numpy().astype(bool))
    assert len({row.tobytes() for row in ours}) > 100 if rank > 2 else ours.any() and not ours.all()


def test_a_torchlogix_model_of_4_and_6_input_luts_imports_with_equal_counts(tmp_path):
    """LUTs of 4 inputs (learnable wiring) and 6 inputs become layers of two-input gates with
    torchlogix's eval-mode counts on 10,000 inputs, from the whole model and from a state dict;
    the circuit, optimised, keeps far fewer than the decomposition's gates."""
    torch.manual_seed(4)
    learnable = {"num_candidates": 8}
    model = torch.nn.Sequential(
        torch.nn.Flatten(),
        FixedBinarization(torch.tensor([0.2, 0.45, 0.7])),
        LogicDense(192, 120, lut_rank=4, parametrization="warp", connections="learnable", connections_kwargs=learnable),
        LogicDense(120, 90, lut_rank=6, parametrization="warp"),
        LogicDense(90, 60),
        GroupSum(10, tau=4.0),
    )
    model = _train_briefly(model, steps=10)
    x = _inputs(seed=4)
    with torch.no_grad():
        expected = (model(x) * 4.0).round().long().numpy()
    torch.save(model, tmp_path / "model.pt")
    summary = import_network("torchlogix", tmp_path / "model.pt", "digits", tmp_path / "run")
    assert summary["circuit_mismatches"] == 0
    assert summary["widths"][:5] == [720, 600, 360, 240, 120] and len(summary["widths"]) == 5 + 9 + 1
    _, ours, circuit = load_run(tmp_path / "run")
    np.testing.assert_array_equal(ours.counts(x).numpy(), expected)
    np.testing.assert_array_equal(predict_counts(circuit, x.numpy()), expected)
    from diffgates.circuit.passes import optimize

    assert optimize(circuit)[0].n_gates < circuit.n_gates / 2

    state = model.state_dict()
    state.update({"2.connections.indices": model[2].connections.indices, "3.indices": model[3].connections.indices})
    state["4.indices"] = model[4].connections.indices
    torch.save(state, tmp_path / "state.pt")
    args = ["import", "--from", "torchlogix", "--dataset", "digits", "--classes", "10", "--tau", "4"]
    assert main([*args, str(tmp_path / "state.pt"), "--out", str(tmp_path / "bare")]) == 2
    assert not (tmp_path / "bare").exists()
    args += ["--parametrization", "warp", str(tmp_path / "state.pt"), "--out", str(tmp_path / "sd")]
    assert main(args) == 0
    np.testing.assert_array_equal(load_run(tmp_path / "sd")[1].counts(x).numpy(), expected)


def _torchlogix_model(parametrizations, binarization, seed=0):
    torch.manual_seed(seed)
    layers = [torch.nn.Flatten(), binarization]
    width_in = 64 * 3
    for p, width in zip(parametrizations, (300, 200)):
        layers.append(LogicDense(width_in, width, parametrization=p, connections_kwargs={"init_method": "random"}))
        width_in = width
    return torch.nn.Sequential(*layers, GroupSum(10, tau=4.0))


def _train_briefly(model, steps=40):
    """A few Adam steps on digits, so the gates are the trained ones, not the initialisation."""
    ds = load_dataset("digits")
    x, y = torch.as_tensor(ds.x_train), torch.as_tensor(ds.y_train).long()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model.train()
    for step in range(steps):
        i = torch.randint(0, len(x), (128,), generator=torch.Generator().manual_seed(step))
        loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _inputs(n=10_000, features=64, seed=0):
    return torch.as_tensor(np.random.default_rng(seed).random((n, features), dtype=np.float32))


@pytest.mark.parametrize(
    "parametrizations, learnable",
    [(("raw", "warp"), False), (("light", "light"), True), (("warp", "light"), True)],
)
def test_a_trained_torchlogix_model_imports_with_equal_scores(tmp_path, parametrizations, learnable):
    thresholds = torch.tensor([0.2, 0.45, 0.7])
    binarization = LearnableBinarization(thresholds.clone()) if learnable else FixedBinarization(thresholds)
    model = _train_briefly(_torchlogix_model(parametrizations, binarization))
    torch.save(model, tmp_path / "model.pt")
    summary = import_network("torchlogix", tmp_path / "model.pt", "digits", tmp_path / "run")
    assert summary["circuit_mismatches"] == 0 and summary["gates"] == 500
    _, ours, circuit = load_run(tmp_path / "run")
    x = _inputs()
    with torch.no_grad():
        theirs = model(x)
    counts = theirs * 4.0
    assert torch.equal(counts, counts.round())
    np.testing.assert_array_equal(ours.counts(x).numpy(), counts.long().numpy())
    np.testing.assert_array_equal(predict_counts(circuit, x.numpy()), counts.long().numpy())
    digits = load_dataset("digits")
    with torch.no_grad():
        accuracy = float((model(torch.as_tensor(digits.x_test)).argmax(1).numpy() == digits.y_test).mean())
    assert summary["test_acc_discrete"] == summary["test_acc_circuit"] == pytest.approx(accuracy, abs=1e-12)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_an_imported_torchlogix_run_compiles_and_verifies(tmp_path, capsys, kind):
    if kind == "dense":
        model = _torchlogix_model(("light", "light"), FixedBinarization(torch.tensor([0.2, 0.45, 0.7])))
    else:
        model = _torchlogix_conv_model()
    model = _train_briefly(model)
    torch.save(model if kind == "dense" else model[1:], tmp_path / "model.pt")
    run = tmp_path / "run"
    args = ["import", "--from", "torchlogix", str(tmp_path / "model.pt"), "--dataset", "digits"]
    assert main([*args, "--out", str(run)]) == 0
    assert "imported" in capsys.readouterr().out
    assert main(["eval", str(run)]) == 0
    export = tmp_path / "export"
    assert main(["compile", str(run), "--out", str(export), "--target", "all", "--vectors", "300"]) == 0
    x = np.loadtxt(export / "golden_features.txt", dtype=np.float32)
    with torch.no_grad():
        expected = (model(torch.as_tensor(x)) * 4.0).round().long().numpy()
    np.testing.assert_array_equal(np.loadtxt(export / "golden_counts.txt", dtype=np.int64), expected)
    assert find("gcc", "cc") and find("iverilog")  # make test installs them
    assert main(["verify", str(export)]) == 0


def test_a_state_dict_with_the_indices_beside_it_imports_and_one_without_is_refused(tmp_path, capsys):
    model = _torchlogix_model(("warp", "warp"), FixedBinarization(torch.tensor([0.5])), seed=1)
    model[2] = LogicDense(64, 300, parametrization="warp")  # one threshold: 64 input bits
    _train_briefly(model, steps=5)
    state = model.state_dict()
    torch.save(state, tmp_path / "bare.pt")
    args = ["import", "--from", "torchlogix", "--dataset", "digits", "--classes", "10", "--parametrization", "warp"]
    assert main([*args, str(tmp_path / "bare.pt"), "--out", str(tmp_path / "bare")]) == 2
    err = capsys.readouterr().err
    assert "no wiring for layer '2'" in err and "'2.indices'" in err
    assert not (tmp_path / "bare").exists()
    state.update({f"{i}.indices": model[i].connections.indices for i in (2, 3)})
    torch.save(state, tmp_path / "with-indices.pt")
    assert main([*args, "--tau", "4", str(tmp_path / "with-indices.pt"), "--out", str(tmp_path / "run")]) == 0
    _, ours, _ = load_run(tmp_path / "run")
    x = _inputs(seed=1)
    with torch.no_grad():
        np.testing.assert_array_equal(ours.counts(x).numpy(), (model(x) * 4.0).round().long().numpy())


@pytest.mark.parametrize("candidates", [-1, 8])
def test_torchlogix_learnable_connections_import_as_the_inputs_of_largest_weight(tmp_path, capsys, candidates):
    """A model whose layers learn their wiring (every input a candidate, or 8 random candidates per
    gate input) imports with torchlogix's eval-mode counts, from the whole model and from a state
    dict with the candidates beside it; with Gumbel noise on, the imported network is the one
    without the noise."""
    torch.manual_seed(3)
    kwargs = {"num_candidates": candidates}
    model = torch.nn.Sequential(
        torch.nn.Flatten(),
        FixedBinarization(torch.tensor([0.2, 0.45, 0.7])),
        LogicDense(192, 300, parametrization="light", connections="learnable", connections_kwargs=kwargs),
        LogicDense(300, 200, connections="learnable", connections_kwargs=kwargs),
        GroupSum(10, tau=4.0),
    )
    model = _train_briefly(model, steps=10)
    for i in (2, 3):  # most gate inputs read another candidate than the first
        assert (model[i].connections.weights.argmax(0) != 0).float().mean() > 0.5
    x = _inputs(seed=3)
    with torch.no_grad():
        expected = (model(x) * 4.0).round().long().numpy()
    for i in (2, 3):
        model[i].connections.gumbel = True
    torch.save(model, tmp_path / "model.pt")
    assert import_network("torchlogix", tmp_path / "model.pt", "digits", tmp_path / "run")["circuit_mismatches"] == 0
    _, ours, circuit = load_run(tmp_path / "run")
    np.testing.assert_array_equal(ours.counts(x).numpy(), expected)
    np.testing.assert_array_equal(predict_counts(circuit, x.numpy()), expected)

    state = model.state_dict()
    torch.save(state, tmp_path / "bare.pt")
    args = ["import", "--from", "torchlogix", "--dataset", "digits", "--classes", "10", "--tau", "4"]
    args += ["--parametrization", "light"]
    assert main([*args, str(tmp_path / "bare.pt"), "--out", str(tmp_path / "bare")]) == 2
    assert "'2.connections.indices', the (candidates, 2, gates) candidates" in capsys.readouterr().err
    state.update({f"{i}.connections.indices": model[i].connections.indices for i in (2, 3)})
    torch.save(state, tmp_path / "with-candidates.pt")
    assert main([*args, str(tmp_path / "with-candidates.pt"), "--out", str(tmp_path / "sd")]) == 0
    np.testing.assert_array_equal(load_run(tmp_path / "sd")[1].counts(x).numpy(), expected)


class _Image(torch.nn.Module):
    """digits as torchlogix's convolutions take them: (batch, 1, 8, 8)."""

    def forward(self, x):
        return x.view(-1, 1, 8, 8)


def _torchlogix_conv_model():
    torch.manual_seed(2)
    return torch.nn.Sequential(
        _Image(),
        FixedBinarization(torch.tensor([0.25, 0.5, 0.75]), feature_dim=1),
        LogicConv2d(in_dim=8, channels=3, num_kernels=8, tree_depth=2, receptive_field_size=3, padding=1),
        OrPooling2d(kernel_size=2, stride=2, padding=0),
        LogicConv2d(in_dim=4, channels=8, num_kernels=16, tree_depth=3, receptive_field_size=3, parametrization="warp"),
        torch.nn.Flatten(),
        LogicDense(64, 200, parametrization="light"),
        GroupSum(10, tau=4.0),
    )


def test_a_trained_torchlogix_convolutional_model_imports_with_equal_scores(tmp_path):
    model = _train_briefly(_torchlogix_conv_model())
    torch.save(model[1:], tmp_path / "model.pt")  # as saved: the image reshaping stays with the user
    summary = import_network("torchlogix", tmp_path / "model.pt", "digits", tmp_path / "run")
    _, ours, circuit = load_run(tmp_path / "run")
    # trees of depth 2, then 3
    assert ours.config.conv == ["8:3:1:2:0:1:2", "16:3:0:1:0:1:3"] and ours.config.image_shape == [1, 8, 8]
    x = _inputs()
    with torch.no_grad():
        counts = (model(x) * 4.0).round().long().numpy()
    assert len(np.unique(counts)) > 10
    np.testing.assert_array_equal(ours.counts(x).numpy(), counts)
    np.testing.assert_array_equal(predict_counts(circuit, x.numpy()), counts)
    assert summary["circuit_mismatches"] == 0


def test_unsupported_torchlogix_layers_are_refused_by_name(tmp_path):
    rank4 = _torchlogix_conv_model()[1:]
    rank4[1] = LogicConv2d(
        in_dim=8,
        channels=3,
        num_kernels=8,
        tree_depth=2,
        receptive_field_size=3,
        padding=1,
        lut_rank=4,
        parametrization="warp",
    )
    conv = _torchlogix_conv_model()[1:]
    conv[2] = OrPooling2d(kernel_size=2, stride=1)
    cases = [
        ("rank4", rank4, "lut_rank=4"),
        ("pool", conv, "stride"),
    ]
    for name, model, message in cases:
        torch.save(model, tmp_path / f"{name}.pt")
        with pytest.raises(DiffgatesError, match=message):
            import_network("torchlogix", tmp_path / f"{name}.pt", "digits", tmp_path / name)
        assert not (tmp_path / name).exists()


def test_a_checkpoint_in_torch_s_format_before_1_6_imports_with_equal_counts(tmp_path):
    """torch.save(..., _use_new_zipfile_serialization=False) writes a plain pickle stream with
    header records; a whole model and a state dict with its indices read as the zip format does."""
    model = _train_briefly(_torchlogix_model(("warp", "warp"), FixedBinarization(torch.tensor([0.3, 0.5, 0.7]))), 5)
    state = {**model.state_dict(), **{f"{i}.indices": model[i].connections.indices for i in (2, 3)}}
    torch.save(model, tmp_path / "model.pt", _use_new_zipfile_serialization=False)
    torch.save(state, tmp_path / "state.pt", _use_new_zipfile_serialization=False)
    import_network("torchlogix", tmp_path / "model.pt", "digits", tmp_path / "whole")
    import_network(
        "torchlogix", tmp_path / "state.pt", "digits", tmp_path / "dict", classes=10, tau=4.0, parametrization="warp"
    )
    x = _inputs(seed=3)
    with torch.no_grad():
        expected = (model(x) * 4.0).round().long().numpy()
    for run in ("whole", "dict"):
        np.testing.assert_array_equal(load_run(tmp_path / run)[1].counts(x).numpy(), expected)


@pytest.mark.parametrize("weight", [torch.zeros(()), torch.zeros(300)], ids=["0-d", "1-d"])
def test_a_state_dict_weight_that_is_not_a_matrix_is_refused_naming_its_layer(tmp_path, capsys, weight):
    state = {"2.weight": weight, "2.indices": torch.zeros(2, 300, dtype=torch.long)}
    torch.save(state, tmp_path / "state.pt")
    args = ["import", "--from", "torchlogix", "--dataset", "digits", "--classes", "10", str(tmp_path / "state.pt")]
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    assert (
        f"layer '2''s weight must be (gates, weights per gate), got {tuple(weight.shape)}." in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "damage, named",
    [
        (lambda m: setattr(m[-1], "k", torch.tensor([10, 10])), "GroupSum is not laid out"),
        (lambda m: setattr(m[-1], "tau", float("nan")), "tau > 0"),
        (lambda m: setattr(m[1], "feature_dim", torch.tensor([1, 2])), "FixedBinarization is not laid out"),
        (lambda m: setattr(m[2], "lut_rank", torch.tensor([2, 2])), "LogicDense is not laid out"),
        (lambda m: m._modules.__setitem__("3", torch.zeros(3)), "Sequential holds something other than modules"),
    ],
    ids=["k", "tau", "feature_dim", "lut_rank", "module"],
)
def test_a_whole_model_of_another_layout_is_refused_naming_its_layer(tmp_path, capsys, damage, named):
    """Attributes of other types than the library writes (a damaged file, another version) are
    one sentence that names the layer, not an internal error."""
    model = _torchlogix_model(("warp", "warp"), FixedBinarization(torch.tensor([0.25, 0.5, 0.75])))
    damage(model)
    torch.save(model, tmp_path / "model.pt")
    args = ["import", "--from", "torchlogix", "--dataset", "digits", str(tmp_path / "model.pt")]
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1 and "internal" not in err
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"0.weight": torch.zeros(2, 16), "evil": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(DiffgatesError, match="system"):
        pickles.read(tmp_path / "evil.pt")
    assert not marker.exists()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DiffgatesError, match="not a torch.save file"):
        pickles.read(tmp_path / "junk.pt")
    (tmp_path / "broken.pt").write_bytes(b"PK\x03\x04 a zip archive cut short")
    with pytest.raises(DiffgatesError, match="not a readable torch.save file"):
        pickles.read(tmp_path / "broken.pt")
    (tmp_path / "damaged.pt").write_bytes(b"\x80\x02}q\x00K\x01a.")  # appends to a dict
    with pytest.raises(DiffgatesError, match="not a readable torch.save file .'dict' object has no attribute"):
        pickles.read(tmp_path / "damaged.pt")


# difflogic needs CUDA to install. Its checkpoints are written here by a stand-in package that
# has difflogic's module path, class names and attributes (difflogic/difflogic.py: LogicLayer keeps
# `weights` (out, 16) and the plain attribute `indices` = (a, b); GroupSum keeps k and tau), saved in
# a separate process, and read back in this one where no `difflogic` module exists.
DIFFLOGIC_STANDIN = """
import torch


class LogicLayer(torch.nn.Module):
    def __init__(self, in_dim, out_dim, device="cpu", grad_factor=1.0, implementation="python", connections="random"):
        super().__init__()
        self.weights = torch.nn.Parameter(torch.randn(out_dim, 16) * 3)
        self.in_dim, self.out_dim, self.device, self.grad_factor = in_dim, out_dim, device, grad_factor
        self.implementation, self.connections = implementation, connections
        c = torch.randperm(2 * out_dim) % in_dim
        c = c[torch.randperm(2 * out_dim)].reshape(2, out_dim)
        self.indices = c[0], c[1]
        self.num_neurons = self.num_weights = out_dim


class GroupSum(torch.nn.Module):
    def __init__(self, k, tau=1.0, device="cpu"):
        super().__init__()
        self.k, self.tau, self.device = k, tau, device
"""

SAVE = """
import sys, torch
sys.path.insert(0, sys.argv[1])
from difflogic.difflogic import LogicLayer, GroupSum
torch.manual_seed(3)
model = torch.nn.Sequential(torch.nn.Flatten(), LogicLayer(64, 400), LogicLayer(400, 300), GroupSum(10, tau=3.0))
torch.save(model, sys.argv[2])
state = model.state_dict()
state.update({f"{i}.indices": torch.stack(model[i].indices) for i in (1, 2)})
torch.save(state, sys.argv[3])
torch.save(model.state_dict(), sys.argv[4])
"""

# difflogic's eval-mode gates (difflogic/functional.py bin_op), on real values in {0, 1}
BIN_OP = [
    lambda a, b: a * 0,
    lambda a, b: a * b,
    lambda a, b: a - a * b,
    lambda a, b: a,
    lambda a, b: b - a * b,
    lambda a, b: b,
    lambda a, b: a + b - 2 * a * b,
    lambda a, b: a + b - a * b,
    lambda a, b: 1 - (a + b - a * b),
    lambda a, b: 1 - (a + b - 2 * a * b),
    lambda a, b: 1 - b,
    lambda a, b: 1 - b + a * b,
    lambda a, b: 1 - a,
    lambda a, b: 1 - a + a * b,
    lambda a, b: 1 - a * b,
    lambda a, b: a * 0 + 1,
]


def difflogic_counts(weights, indices, x, k):
    """Class counts of a difflogic network, computed from its own formulas with numpy."""
    h = (x > 0.5).astype(np.float64)
    for w, (ia, ib) in zip(weights, indices):
        a, b, op = h[:, ia], h[:, ib], w.argmax(1)
        h = np.stack([BIN_OP[g](a[:, j], b[:, j]) for j, g in enumerate(op)], 1)
    return h.reshape(len(x), k, -1).sum(-1).round().astype(np.int64)


@pytest.fixture
def difflogic_files(tmp_path):
    package = tmp_path / "standin" / "difflogic"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "difflogic.py").write_text(textwrap.dedent(DIFFLOGIC_STANDIN))
    files = [tmp_path / f"{n}.pt" for n in ("model", "with-indices", "bare")]
    subprocess.run([sys.executable, "-c", SAVE, str(tmp_path / "standin"), *map(str, files)], check=True)
    return files


def test_a_difflogic_model_imports_with_the_counts_of_its_own_gates(difflogic_files, tmp_path):
    whole, with_indices, _ = difflogic_files
    assert "difflogic" not in sys.modules
    state = pickles.read(with_indices)
    weights = [state[f"{i}.weights"].numpy() for i in (1, 2)]
    indices = [state[f"{i}.indices"].numpy() for i in (1, 2)]
    x = _inputs(seed=2).numpy()
    expected = difflogic_counts(weights, indices, x, 10)
    assert len(np.unique(expected)) > 5
    for name, source, extra in [("whole", whole, {}), ("state", with_indices, {"classes": 10, "tau": 3.0})]:
        import_network("difflogic", source, "digits", tmp_path / name, **extra)
        _, model, circuit = load_run(tmp_path / name)
        np.testing.assert_array_equal(model.counts(torch.as_tensor(x)).numpy(), expected)
        np.testing.assert_array_equal(predict_counts(circuit, x), expected)
        assert circuit.tau == 3.0
        assert json.loads((tmp_path / name / "summary.json").read_text())["imported_from"] == "difflogic"


def test_a_difflogic_state_dict_without_wiring_is_a_clear_error(difflogic_files, tmp_path, capsys):
    bare = difflogic_files[2]
    args = ["import", "--from", "difflogic", str(bare), "--dataset", "digits", "--classes", "10"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "no wiring for layer '1'" in err and "torch.save(model)" in err
    assert not (tmp_path / "run").exists()
    # the wrong number of input features is refused too
    rng = np.random.default_rng(0)
    data = {f"x_{s}": rng.random((50, 20), dtype=np.float32) for s in ("train", "test")}
    np.savez(tmp_path / "narrow.npz", **data, y_train=np.arange(50) % 10, y_test=np.arange(50) % 10)
    with pytest.raises(DiffgatesError, match="reads 64 inputs, but it is given 20 features"):
        import_network("difflogic", difflogic_files[0], str(tmp_path / "narrow.npz"), tmp_path / "narrow")
