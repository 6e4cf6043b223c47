"""Every optimisation pass keeps the function: same class counts on the same raw inputs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import random_circuit, random_model
from diffgates import Circuit, gates
from diffgates.circuit.execute import predict_counts
from diffgates.circuit.graph import levels
from diffgates.circuit.passes import (
    PIPELINE,
    fold_wires,
    hash_structure,
    optimize,
    propagate_constants,
    remove_dead,
    remove_unused_inputs,
)
from diffgates.circuit.passes.dead import live_signals
from diffgates.nn import to_circuit

PASSES = [fn for _, fn in PIPELINE]


def assert_same_function(before: Circuit, after: Circuit, seed=0, n=300):
    x = np.random.default_rng(seed).normal(size=(n, before.n_features)).astype(np.float32)
    x[: n // 3] = np.round(x[: n // 3])  # hit thresholds exactly too
    assert np.array_equal(predict_counts(before, x), predict_counts(after, x))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    n_inputs=st.integers(1, 20),
    n_gates=st.integers(0, 120),
    window=st.sampled_from([None, 4, 20]),
    which=st.integers(0, len(PASSES) - 1),
)
def test_each_pass_keeps_the_function_of_random_circuits(seed, n_inputs, n_gates, window, which):
    c = random_circuit(seed, n_inputs=n_inputs, n_gates=n_gates, window=window)
    assert_same_function(c, PASSES[which](c), seed)


@pytest.mark.parametrize("param", ["softmax16", "truth4"])
def test_pipeline_keeps_the_function_of_model_circuits(param):
    model = random_model(n_features=20, widths=(200, 150, 60), n_classes=3, param=param, seed=5)
    c = to_circuit(model)
    opt, log = optimize(c)
    assert_same_function(c, opt)
    assert log[0].gates == c.n_gates and log[-1].gates == opt.n_gates < c.n_gates


def test_constants_pass_leaves_no_constant_gates_except_outputs():
    c = propagate_constants(random_circuit(1, n_gates=200))
    const = np.isin(c.ops, [gates.FALSE, gates.TRUE])
    assert set(np.flatnonzero(const) + c.n_inputs) <= set(c.outputs.tolist())


def test_every_pass_keeps_constant_outputs_constant_gates():
    """A TRUE output stays a TRUE gate through every pass (structural hashing once made it the
    inverted wire of the FALSE gate, which the executor then counted as a signal)."""
    c = Circuit(
        n_features=2,
        in_feature=[0, 1],
        in_threshold=[0, 0],
        ops=[gates.FALSE, gates.TRUE, gates.AND, gates.XOR, gates.NOT_A],
        a=[0, 0, 0, 4, 5],
        b=[0, 0, 1, 1, 5],
        outputs=[2, 3, 6, 2, 3, 5],
        layer=[0, 0, 0, 1, 2],
        n_classes=2,
    )
    for fn in PASSES:
        h = fn(c)
        assert_same_function(c, h)
        out = h.outputs - h.n_inputs
        assert h.ops[out[[0, 1, 3, 4]]].tolist() == [gates.FALSE, gates.TRUE] * 2
        constant = h.n_inputs + np.flatnonzero(np.isin(h.ops, [gates.FALSE, gates.TRUE]))
        assert not np.isin(np.r_[h.a, h.b], constant).any()  # no gate reads a constant


def test_fold_pass_leaves_no_wires_or_inverters_except_outputs():
    c = fold_wires(propagate_constants(random_circuit(2, n_gates=200)))
    wires = np.isin(c.ops, [gates.A, gates.B, gates.NOT_A, gates.NOT_B])
    assert set(np.flatnonzero(wires) + c.n_inputs) <= set(c.outputs.tolist())
    assert not np.any((c.a == c.b) & ~wires & ~np.isin(c.ops, [gates.FALSE, gates.TRUE]))


def test_fold_removes_double_negation():
    # input 0 -> NOT -> NOT -> output: folds to the input itself
    c = Circuit(
        n_features=1,
        in_feature=[0],
        in_threshold=[0.0],
        ops=[gates.NOT_A, gates.NOT_A],
        a=[0, 1],
        b=[0, 1],
        outputs=[2],
        layer=[0, 1],
        n_classes=1,
    )
    f = remove_dead(fold_wires(c))
    assert f.n_gates == 0 and f.outputs.tolist() == [0]
    assert_same_function(c, f)


def test_strash_merges_duplicates_and_complements():
    # g0 = AND(i0, i1); g1 = AND(i1, i0) duplicate; g2 = NAND(i0, i1) complement; outputs all three
    c = Circuit(
        n_features=2,
        in_feature=[0, 1],
        in_threshold=[0, 0],
        ops=[gates.AND, gates.AND, gates.NAND],
        a=[0, 1, 0],
        b=[1, 0, 1],
        outputs=[2, 3, 4],
        layer=[0, 0, 0],
        n_classes=1,
    )
    h = remove_dead(hash_structure(c))
    assert h.n_gates == 2  # the AND and one inverter for the complemented output
    assert_same_function(c, h)


def test_dead_pass_keeps_only_live_gates():
    c = remove_dead(random_circuit(3, n_gates=300, window=30))
    assert live_signals(c)[c.n_inputs :].all()


def test_unused_and_duplicate_inputs_are_removed():
    c = random_circuit(4, n_inputs=20, n_gates=10)
    r = remove_unused_inputs(c)
    keys = set(zip(r.in_feature.tolist(), r.in_threshold.tolist()))
    assert len(keys) == r.n_inputs < c.n_inputs
    used = np.zeros(r.n_inputs, bool)
    for refs in (r.a, r.b, r.outputs):
        used[refs[refs < r.n_inputs]] = True
    assert used.all()
    assert_same_function(c, r)


def test_optimised_circuit_stays_topological_and_levelled():
    c, _ = optimize(random_circuit(6, n_gates=500, window=50))
    c.validate()
    assert len(levels(c)) == c.n_gates
