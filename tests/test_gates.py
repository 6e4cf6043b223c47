import itertools

import numpy as np
import torch

from diffgates import gates
from diffgates.kernels.reference import all_relaxed_gates

PYTHON_GATES = [
    lambda a, b: 0,
    lambda a, b: a & b,
    lambda a, b: a & (1 - b),
    lambda a, b: a,
    lambda a, b: (1 - a) & b,
    lambda a, b: b,
    lambda a, b: a ^ b,
    lambda a, b: a | b,
    lambda a, b: 1 - (a | b),
    lambda a, b: 1 - (a ^ b),
    lambda a, b: 1 - b,
    lambda a, b: a | (1 - b),
    lambda a, b: 1 - a,
    lambda a, b: (1 - a) | b,
    lambda a, b: 1 - (a & b),
    lambda a, b: 1,
]


def test_every_truth_table_matches_the_standard_numbering():
    for g, fn in enumerate(PYTHON_GATES):
        for a, b in itertools.product((0, 1), repeat=2):
            assert gates.TRUTH[g, 2 * a + b] == fn(a, b), (gates.NAMES[g], a, b)


def test_gate_id_inverts_truth_table():
    assert np.array_equal(gates.gate_id(gates.TRUTH), np.arange(16))


def test_relaxation_equals_discrete_gate_on_bits():
    for g in range(16):
        for a, b in itertools.product((0, 1), repeat=2):
            assert gates.relaxed(g, a, b) == gates.TRUTH[g, 2 * a + b]


def test_basis_relaxation_equals_the_16_written_out_formulas():
    a, b = torch.rand(100, dtype=torch.float64), torch.rand(100, dtype=torch.float64)
    for g, op in enumerate(all_relaxed_gates(a, b)):
        torch.testing.assert_close(gates.relaxed(g, a, b).to(torch.float64), op.expand_as(a))


def test_eval_bits_on_words_matches_truth_table():
    a = np.array([0b0011], dtype=np.uint64)
    b = np.array([0b0101], dtype=np.uint64)
    for g in range(16):
        out = int(gates.eval_bits(np.array([g]), a, b)[0])
        for bit in range(4):
            ai, bi = (0b0011 >> bit) & 1, (0b0101 >> bit) & 1
            assert (out >> bit) & 1 == gates.TRUTH[g, 2 * ai + bi]
        assert out >> 4 == (0xFFFFFFFFFFFFFFF if gates.TRUTH[g, 0] else 0)
