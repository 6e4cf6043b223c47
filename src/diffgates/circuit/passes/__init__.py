"""Optimisation passes: each a function Circuit -> Circuit that never changes any output.

:func:`optimize` runs the pipeline and reports gates per layer after each pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..ir import Circuit
from .constants import propagate_constants
from .dead import remove_dead
from .fold import fold_wires
from .inputs import remove_unused_inputs
from .strash import hash_structure

PIPELINE: tuple[tuple[str, Callable[[Circuit], Circuit]], ...] = (
    ("constants", propagate_constants),
    ("fold", fold_wires),
    ("strash", hash_structure),
    ("dead", remove_dead),
    ("inputs", remove_unused_inputs),
)


@dataclass
class PassLog:
    name: str
    gates: int
    inputs: int
    per_layer: dict[int, int]


def optimize(circuit: Circuit, rounds: int = 2) -> tuple[Circuit, list[PassLog]]:
    """Run the pipeline ``rounds`` times (later rounds catch what earlier ones exposed)."""
    log = [PassLog("input", circuit.n_gates, circuit.n_inputs, circuit.layer_counts())]
    for r in range(rounds):
        for name, fn in PIPELINE:
            circuit = fn(circuit)
            label = name if rounds == 1 else f"{name}#{r + 1}"
            log.append(PassLog(label, circuit.n_gates, circuit.n_inputs, circuit.layer_counts()))
    return circuit, log


__all__ = [
    "PIPELINE",
    "PassLog",
    "fold_wires",
    "hash_structure",
    "optimize",
    "propagate_constants",
    "remove_dead",
    "remove_unused_inputs",
]
