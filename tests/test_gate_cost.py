"""--gate-cost: the expected live gates of a network's circuit, and training that makes circuits smaller."""

import json

import numpy as np
import pytest
import torch

from conftest import random_model
from diffgates import gates
from diffgates.circuit import Circuit
from diffgates.circuit.passes import optimize
from diffgates.cli import main
from diffgates.nn import parametrization as P
from diffgates.nn import to_circuit
from diffgates.nn.cost import expected_gates
from test_conv import conv_model


def reads_inputs(g: int) -> tuple[bool, bool]:
    """(reads A, reads B), from the gate's outputs on all four inputs, independent of gates.READS_*."""
    out = {(a, b): int(gates.eval_bits(g, np.uint8(a * 255), np.uint8(b * 255))) for a in (0, 1) for b in (0, 1)}
    return out[0, 0] != out[1, 0] or out[0, 1] != out[1, 1], out[0, 0] != out[0, 1] or out[1, 0] != out[1, 1]


def enumerated_roles(weight: np.ndarray, parametrization: str) -> np.ndarray:
    """(n, 3) P(reads A), P(reads B), P(reads both), summing the probability of each of the 16 gates."""
    total = np.zeros((len(weight), 3))
    for g in range(16):
        if parametrization == "softmax16":
            e = np.exp(weight - weight.max(1, keepdims=True))
            p_gate = e[:, g] / e.sum(1)
        else:  # truth4: the four table entries are independent
            q = 1 / (1 + np.exp(-weight))
            p_gate = np.prod([q[:, p] if gates.TRUTH[g, p] else 1 - q[:, p] for p in range(4)], axis=0)
        a, b = reads_inputs(g)
        total += p_gate[:, None] * np.array([a, b, a and b])
    return total


def test_two_input_gates_are_the_ten_that_read_both_inputs():
    both = [g for g in range(16) if all(reads_inputs(g))]
    assert both == [g for g in range(16) if gates.TWO_INPUT[g]]
    assert len(both) == 10 and gates.A not in both and gates.NOT_B not in both and gates.XOR in both
    assert [g for g in range(16) if gates.READS_A[g] and not gates.READS_B[g]] == [gates.A, gates.NOT_A]


@pytest.mark.parametrize("parametrization", P.PARAMETRIZATIONS)
def test_role_probabilities_equal_the_sum_over_the_sixteen_gates(parametrization):
    w = torch.randn(300, P.n_weights(parametrization), dtype=torch.float64) * 3
    got = P.role_probabilities(w, parametrization).numpy()
    np.testing.assert_allclose(got, enumerated_roles(w.numpy(), parametrization), rtol=1e-10, atol=1e-12)
    decided = P.role_probabilities(w * 1e3, parametrization)  # saturated: the discrete gate's answer
    assert torch.equal(decided.round(), P.ROLES.double()[P.gate_ids(w, parametrization)])


def live_two_input_gates(circuit: Circuit) -> int:
    """Oracle: walk the unrolled circuit from its outputs; a gate's input is live when the gate is
    and its truth table depends on that input. Counts the live gates that read both inputs."""
    n_in = circuit.n_inputs
    live = np.zeros(n_in + circuit.n_gates, dtype=bool)
    live[circuit.outputs] = True
    for g in range(circuit.n_gates - 1, -1, -1):
        if live[n_in + g]:
            a, b = reads_inputs(int(circuit.ops[g]))
            live[circuit.a[g]] |= a
            live[circuit.b[g]] |= b
    return int(sum(all(reads_inputs(int(op))) for op in circuit.ops[live[n_in:]]))


@pytest.mark.parametrize(
    "seed,param,conv,shape,options",
    [
        (0, "softmax16", (), None, {}),
        (1, "truth4", (), None, {}),
        (2, "softmax16", ("6:3:0:2:0", "8:2:0:2:0"), (2, 9, 8), {}),
        (3, "truth4", ("4:3:0:1", "6:3:0:3:0"), (1, 10, 10), {}),
        (4, "softmax16", ("4:3:1:1:0:2", "6:2:0:2:0"), (2, 9, 9), {}),
        (5, "truth4", ("5:3:1:2:0", "4:3:1:2:0"), (3, 8, 8), {}),
        (6, "softmax16", ("5:3:1:2:0", "4:3:1:2:0", "3:2:0:1"), (2, 8, 8), {"head_blocks": 2}),
        (7, "truth4", ("5:3:1:2:0", "4:3:1:2:0"), (2, 8, 8), {"head_blocks": 2}),
        (8, "truth4", ("5:3:1:2:0", "4:3:1:2:0"), (2, 8, 8), {"head_input": "blocks+bits"}),
    ],
)
def test_discrete_cost_counts_the_live_gates_of_the_unrolled_circuit(seed, param, conv, shape, options):
    model = (
        conv_model(seed, param, conv, shape, **options)
        if conv
        else random_model(widths=(50, 40, 30), param=param, seed=seed)
    )
    live = live_two_input_gates(to_circuit(model))
    assert float(expected_gates(model, discrete=True)) == live
    assert live < model.n_gates  # the random gates leave some constants, wires and unread gates
    with torch.no_grad():
        for layer in (*model.convs, *model.layers):
            layer.weight.mul_(1e6)  # saturated: the expectation becomes the discrete count
    model.train()
    relaxed = expected_gates(model)
    assert relaxed.requires_grad
    assert float(relaxed.detach()) == pytest.approx(live, abs=1e-3)


def test_cost_gradient_points_to_smaller_circuits():
    model = conv_model(6, "truth4", ("4:3:1:2:0",), (2, 8, 8)).train()
    before = float(expected_gates(model).detach())
    expected_gates(model).backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.5 * p.grad / p.grad.abs().max()
    assert float(expected_gates(model).detach()) < before


def last_row(run):
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])


def test_gate_cost_trains_a_smaller_circuit(tmp_path):
    args = ["train", "--dataset", "digits", "--widths", "1000,1000", "--epochs", "12", "--threads", "1", "--quiet"]
    runs = {cost: tmp_path / f"cost{cost}" for cost in ("0", "2")}
    for cost, out in runs.items():
        assert main([*args, "--gate-cost", cost, "--out", str(out)]) == 0
    plain, cheap = last_row(runs["0"]), last_row(runs["2"])
    assert cheap["live_gates"] < 0.5 * plain["live_gates"]
    sizes = {cost: optimize(Circuit.load(out / "circuit.npz"))[0].n_gates for cost, out in runs.items()}
    assert sizes["2"] < 0.6 * sizes["0"]
    assert cheap["test_acc_discrete"] > 0.8  # still a classifier
    summary = json.loads((runs["2"] / "summary.json").read_text())
    assert summary["gates_optimised"] == sizes["2"]


def test_negative_gate_cost_is_refused(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--dataset", "digits", "--epochs", "1", "--gate-cost", "-1", "--out", str(out)]) == 2
    assert "--gate-cost: must be at least 0" in capsys.readouterr().err
    assert not out.exists()
