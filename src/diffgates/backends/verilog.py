"""Circuit -> Verilog-2001: encoder comparators, one scalar wire per gate, GroupSum adder trees,
argmax, optional register stages; plus a self-checking testbench with golden vectors.

Inputs are unsigned integer codes ``q`` of ``input_bits`` bits whose real value is
``float32(q) / input_divisor`` (pixels: 8 bits, divisor 255). Each threshold ``t`` becomes the
integer comparison ``q >= Q`` with ``Q`` the smallest code whose value exceeds ``t`` in float32,
computed here exactly as the model compares: the hardware encoder is bit-exact by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import gates
from ..circuit.graph import levels
from ..circuit.ir import Circuit
from ..errors import DiffgatesError

_EXPR = {
    gates.FALSE: "1'b0",
    gates.AND: "{a} & {b}",
    gates.A_AND_NOT_B: "{a} & ~{b}",
    gates.A: "{a}",
    gates.NOT_A_AND_B: "~{a} & {b}",
    gates.B: "{b}",
    gates.XOR: "{a} ^ {b}",
    gates.OR: "{a} | {b}",
    gates.NOR: "~({a} | {b})",
    gates.XNOR: "~({a} ^ {b})",
    gates.NOT_B: "~{b}",
    gates.A_OR_NOT_B: "{a} | ~{b}",
    gates.NOT_A: "~{a}",
    gates.NOT_A_OR_B: "~{a} | {b}",
    gates.NAND: "~({a} & {b})",
    gates.TRUE: "1'b1",
}


@dataclass(frozen=True)
class InputFormat:
    """How hardware inputs encode features: value = float32(code) / divisor, code < 2**bits."""

    bits: int = 8
    divisor: float = 255.0

    def values(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(codes).astype(np.float32) / np.float32(self.divisor)

    def codes(self, x: np.ndarray) -> np.ndarray:
        """Integer codes of features ``x``; error if ``x`` is not exactly representable."""
        q = np.rint(np.asarray(x, dtype=np.float64) * self.divisor)
        if q.min(initial=0) < 0 or q.max(initial=0) >= 2**self.bits or not np.array_equal(self.values(q), x):
            raise DiffgatesError(
                f"features are not {self.bits}-bit codes divided by {self.divisor:g}; "
                "pass --input-bits and --input-divisor that match the data."
            )
        return q.astype(np.int64)

    def thresholds(self, t: np.ndarray) -> np.ndarray:
        """Smallest code whose value exceeds each threshold (2**bits where none does)."""
        grid = self.values(np.arange(2**self.bits))
        return np.searchsorted(grid, np.asarray(t, dtype=np.float32), side="right")


def network_latency(circuit: Circuit, stage_levels: int) -> int:
    """Register stages inside the gate network: one every ``stage_levels`` logic levels."""
    if stage_levels <= 0 or circuit.n_gates == 0:
        return 0
    return int((levels(circuit).max() - 1) // stage_levels)


def head_latency(circuit: Circuit, stage_levels: int) -> int:
    """Register stages of the pipelined head (with ``stage_levels > 0``): one per adder-tree level
    of the class counts and one per level of the argmax tree."""
    if stage_levels <= 0:
        return 0
    return _tree_depth(circuit.group_size) + _tree_depth(circuit.n_classes)


def latency(circuit: Circuit, stage_levels: int) -> int:
    """Clock cycles from the input to ``counts`` and ``class_out``."""
    return network_latency(circuit, stage_levels) + head_latency(circuit, stage_levels)


def _tree_depth(n: int) -> int:
    return max(0, int(n - 1).bit_length())


def count_width(circuit: Circuit) -> int:
    """Bits of one class count (0 .. group size)."""
    return int(np.ceil(np.log2(circuit.group_size + 1))) if circuit.group_size else 1


def class_width(circuit: Circuit) -> int:
    """Bits of a class index."""
    return max(1, int(circuit.n_classes - 1).bit_length())


def to_verilog(circuit: Circuit, fmt: InputFormat, stage_levels: int = 0, name: str = "dg_model") -> str:
    """The model as one Verilog module; ``stage_levels > 0`` adds registers every that many levels."""
    n_in, n_f, k = circuit.n_inputs, circuit.n_features, circuit.n_classes
    w = fmt.bits
    depth = levels(circuit) if circuit.n_gates else np.zeros(0, dtype=np.int64)
    stage = np.zeros(circuit.n_signals, dtype=np.int64)
    if stage_levels > 0:
        stage[n_in:] = (depth - 1) // stage_levels
    last = network_latency(circuit, stage_levels)
    piped = stage_levels > 0
    base = [f"i{j}" for j in range(n_in)] + [f"g{g}" for g in range(circuit.n_gates)]
    # how far each signal must be delayed: to the latest stage that reads it
    need = stage.copy()
    reads_a, reads_b = gates.READS_A[circuit.ops], gates.READS_B[circuit.ops]  # what each gate's expression reads
    for src, reads in ((circuit.a, reads_a), (circuit.b, reads_b)):
        np.maximum.at(need, src[reads], stage[n_in:][reads])
    need[circuit.outputs] = last

    def ref(sig: int, at: int) -> str:
        return base[sig] if at == stage[sig] else f"{base[sig]}_p{at}"

    count_w = count_width(circuit)
    class_w = class_width(circuit)
    lines = [
        f"// {name}: logic gate network exported by diffgates: {n_f} features x {w} bits in,",
        f"// {circuit.n_gates} gates, {k} classes x {circuit.group_size} outputs. "
        f"Latency: {latency(circuit, stage_levels)} clock cycles.",
        "`timescale 1ns/1ps",
        "// verilator lint_off DECLFILENAME",
        f"module {name} (",
        "    input  wire clk,",
        f"    input  wire [{n_f * w - 1}:0] x,        // feature f is x[{w}*f +: {w}]",
        f"    output wire [{k * count_w - 1}:0] counts,  // class c count is counts[{count_w}*c +: {count_w}]",
        f"    output wire [{class_w - 1}:0] class_out  // argmax, first maximum wins",
        ");",
    ]
    q = fmt.thresholds(circuit.in_threshold)
    for j in range(n_in):
        f = int(circuit.in_feature[j])
        expr = "1'b0" if q[j] >= 2**w else ("1'b1" if q[j] == 0 else f"x[{w * f + w - 1}:{w * f}] >= {w}'d{q[j]}")
        lines.append(f"    wire i{j} = {expr};")
    for g in range(circuit.n_gates):
        s = stage[n_in + g]
        expr = _EXPR[int(circuit.ops[g])].format(a=ref(int(circuit.a[g]), s), b=ref(int(circuit.b[g]), s))
        lines.append(f"    wire g{g} = {expr};")
    regs = [(sig, t) for sig in np.flatnonzero(need > stage) for t in range(stage[sig] + 1, need[sig] + 1)]
    if regs:
        lines += [f"    reg {base[sig]}_p{t};" for sig, t in regs]
        lines.append("    always @(posedge clk) begin")
        lines += [f"        {base[sig]}_p{t} <= {ref(sig, t - 1)};" for sig, t in regs]
        lines.append("    end")
    for c in range(k):
        terms = [ref(int(s), last) for s in circuit.outputs[c * circuit.group_size : (c + 1) * circuit.group_size]]
        lines += _adder_tree(f"c{c}", terms, count_w, piped)
    lines += _argmax(k, count_w, class_w, piped)
    read = np.zeros(circuit.n_signals, dtype=bool)
    read[circuit.a[reads_a]], read[circuit.b[reads_b]], read[circuit.outputs] = True, True, True
    unread = ", ".join(base[s] for s in np.flatnonzero(~read))  # in circuits exported unoptimised
    lines.append(f"    wire _unused_ok = &{{1'b0, clk, x, {unread + ', ' if unread else ''}1'b0}};  // inputs not read")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def _bits(n: int) -> int:
    """Bits that hold 0 .. n."""
    return max(1, int(n).bit_length())


def _node(name: str, width: int, expr: str, registered: bool) -> list[str]:
    """A head node: a wire, or a register loaded every clock (a pipeline stage)."""
    if not registered:
        return [f"    wire [{width - 1}:0] {name} = {expr};"]
    return [f"    reg [{width - 1}:0] {name};", f"    always @(posedge clk) {name} <= {expr};"]


def _adder_tree(name: str, terms: list[str], width: int, piped: bool) -> list[str]:
    """Balanced tree of adders summing 1-bit terms into ``name`` (``width`` bits); every node is
    exactly as wide as the largest sum it can hold, its operands zero-extended to it. ``piped``:
    a register after every level (an odd node out is registered unchanged)."""
    lines = []
    level = [(t, 1) for t in terms] or [("1'b0", 0)]  # (signal, how many terms it sums)
    depth = 0
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), 2):
            (x, nx), (y, ny) = level[i], level[i + 1] if i + 1 < len(level) else (None, 0)
            z, wz = f"{name}_{depth}_{i // 2}", _bits(nx + ny)
            if y is None and not piped:
                nxt.append((x, nx))
                continue
            expr = _extend(x, _bits(nx), wz) + (f" + {_extend(y, _bits(ny), wz)}" if y is not None else "")
            lines += _node(z, wz, expr, piped)
            nxt.append((z, nx + ny))
        level = nxt
        depth += 1
    signal, n = level[0]
    lines.append(f"    wire [{width - 1}:0] {name} = {_extend(signal, _bits(n), width)};")
    return lines


def _extend(signal: str, width: int, to: int) -> str:
    return signal if to == width else f"{{{to - width}'d0, {signal}}}"


def _argmax(k: int, count_w: int, class_w: int, piped: bool) -> list[str]:
    """The class with the largest count (the first of equal ones) by a tree of comparisons, with
    the counts carried alongside so both leave together; ``piped``: registers after every level."""
    lines = []
    level = [(f"c{c}", f"{class_w}'d{c}", [c]) for c in range(k)]  # (best count, its class, classes)
    carried = {c: f"c{c}" for c in range(k)}
    depth = 0
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), 2):
            left = level[i]
            if i + 1 == len(level):
                if piped:
                    v, a = f"m{depth}_{i // 2}", f"a{depth}_{i // 2}"
                    lines += _node(v, count_w, left[0], True) + _node(a, class_w, left[1], True)
                    left = (v, a, left[2])
                nxt.append(left)
                continue
            right = level[i + 1]
            v, a, t = f"m{depth}_{i // 2}", f"a{depth}_{i // 2}", f"t{depth}_{i // 2}"
            lines.append(f"    wire {t} = {right[0]} > {left[0]};")
            if len(level) > 2:  # the final maximum itself is not read
                lines += _node(v, count_w, f"{t} ? {right[0]} : {left[0]}", piped)
            lines += _node(a, class_w, f"{t} ? {right[1]} : {left[1]}", piped)
            nxt.append((v, a, left[2] + right[2]))
        if piped:  # the counts travel beside the comparisons
            for c in range(k):
                lines += _node(f"k{depth}_{c}", count_w, carried[c], True)
                carried[c] = f"k{depth}_{c}"
        level = nxt
        depth += 1
    lines.append(f"    assign class_out = {level[0][1]};")
    lines.append(f"    assign counts = {{{', '.join(carried[c] for c in reversed(range(k)))}}};")
    return lines


def testbench(
    circuit: Circuit,
    fmt: InputFormat,
    codes: np.ndarray,
    counts: np.ndarray,
    stage_levels: int = 0,
    name: str = "dg_model",
) -> dict[str, str]:
    """Self-checking testbench and its golden vectors: {filename: text}. Prints PASS or FAIL."""
    n, k, n_f, w = len(codes), circuit.n_classes, circuit.n_features, fmt.bits
    count_w = count_width(circuit)
    class_w = class_width(circuit)
    lat = latency(circuit, stage_levels)
    expected = np.concatenate([counts.argmax(1)[:, None], counts[:, ::-1]], axis=1)  # class, c_{k-1} .. c_0
    vin = "\n".join(_hex_row(row[::-1], w) for row in codes) + "\n"
    vout = "\n".join(_hex_row(row, [class_w] + [count_w] * k) for row in expected) + "\n"
    tb = f"""`timescale 1ns/1ps
// verilator lint_off DECLFILENAME
// Self-checking testbench: {n} golden vectors computed by diffgates from the software model.
module tb;
    reg clk = 0;
    reg [{n_f * w - 1}:0] x;
    wire [{k * count_w - 1}:0] counts;
    wire [{class_w - 1}:0] class_out;
    reg [{n_f * w - 1}:0] vin [0:{n - 1}];
    reg [{class_w + k * count_w - 1}:0] vout [0:{n - 1}];
    integer i, c, errors;
    {name} dut (.clk(clk), .x(x), .counts(counts), .class_out(class_out));
    initial begin
        $readmemh("golden_in.hex", vin);
        $readmemh("golden_out.hex", vout);
        errors = 0;
        for (i = 0; i < {n}; i = i + 1) begin
            x = vin[i];
            #1;
            for (c = 0; c < {lat}; c = c + 1) begin clk = 1; #1; clk = 0; #1; end
            if ({{class_out, counts}} !== vout[i]) begin
                if (errors < 10) $display("MISMATCH vector %0d: got %h expected %h", i, {{class_out, counts}}, vout[i]);
                errors = errors + 1;
            end
        end
        if (errors == 0) $display("PASS %0d vectors", {n});
        else $display("FAIL %0d of %0d vectors", errors, {n});
        $finish;
    end
endmodule
"""
    return {"tb.v": tb, "golden_in.hex": vin, "golden_out.hex": vout}


def _hex_row(values, widths) -> str:
    """Concatenate unsigned fields (first = most significant) into one hex word."""
    if isinstance(widths, int):
        widths = [widths] * len(values)
    acc = 0
    for v, wd in zip(values, widths):
        acc = (acc << wd) | int(v)
    return format(acc, "x")
