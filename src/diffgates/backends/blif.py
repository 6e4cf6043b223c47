"""Circuit -> BLIF of the gate network (input bits in, GroupSum bits out), for ABC and Yosys."""

from __future__ import annotations

from .. import gates
from ..circuit.ir import Circuit


def to_blif(circuit: Circuit, name: str = "dg_model") -> str:
    n_in = circuit.n_inputs
    sig = [f"i{j}" for j in range(n_in)] + [f"g{g}" for g in range(circuit.n_gates)]
    lines = [f"# {name}: exported by diffgates; input bit j is feature {{in_feature[j]}} > threshold", f".model {name}"]
    lines.append(".inputs " + " ".join(sig[:n_in]))
    lines.append(".outputs " + " ".join(f"o{k}" for k in range(len(circuit.outputs))))
    for g in range(circuit.n_gates):
        op, a, b = int(circuit.ops[g]), sig[circuit.a[g]], sig[circuit.b[g]]
        rows = [f"{p >> 1}{p & 1} 1" for p in range(4) if gates.TRUTH[op, p]]
        # constant 0: a node without inputs and rows (ABC refuses inputs with an empty cover)
        lines.append(f".names {a} {b} {sig[n_in + g]}" if rows else f".names {sig[n_in + g]}")
        lines += rows
    for k, s in enumerate(circuit.outputs):
        lines.append(f".names {sig[s]} o{k}")
        lines.append("1 1")
    lines.append(".end")
    return "\n".join(lines) + "\n"
