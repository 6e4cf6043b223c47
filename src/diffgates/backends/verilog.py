"""Circuit -> Verilog-2001: encoder comparators, one scalar wire per gate, GroupSum adder trees,
argmax, optional register stages; plus a self-checking testbench with golden vectors.

Inputs are unsigned integer codes ``q`` of ``input_bits`` bits whose real value is
``float32(q) / input_divisor`` (pixels: 8 bits, divisor 255). Each threshold ``t`` becomes the
integer comparison ``q >= Q`` with ``Q`` the smallest code whose value exceeds ``t`` in float32,
computed here exactly as the model compares: the hardware encoder is bit-exact by construction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .. import gates
from ..circuit.graph import input_centroids, levels
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
    """Register stages inside the gate network (with ``stage_levels > 0``): the encoder's bits are
    registered, then a stage every ``stage_levels`` logic levels."""
    if stage_levels <= 0:
        return 0
    return 1 + (int((levels(circuit).max() - 1) // stage_levels) if circuit.n_gates else 0)


def head_latency(circuit: Circuit, stage_levels: int) -> int:
    """Register stages of the pipelined head (with ``stage_levels > 0``): one per level of the
    deepest class's adder tree and one per level of the argmax tree (a circuit with one)."""
    if stage_levels <= 0:
        return 0
    depth = max(_heap_depth(_class_terms(circuit, c)[0]) for c in range(circuit.n_classes))
    return depth + (_argmax_depth(circuit.n_classes) if circuit.argmax else 0)


def latency(circuit: Circuit, stage_levels: int) -> int:
    """Clock cycles from the input to ``counts`` and ``class_out`` (where the circuit has an argmax)."""
    return network_latency(circuit, stage_levels) + head_latency(circuit, stage_levels)


def _argmax_depth(n: int) -> int:
    return max(0, int(n - 1).bit_length())


def _class_terms(circuit: Circuit, c: int, where: np.ndarray | None = None) -> tuple[list[tuple[int, int]], int]:
    """What class ``c`` counts: (signal, how often it is listed) for every signal that is not a
    constant gate, and the constant the TRUE gates add. Equal outputs become one weighted term.
    The terms are ordered by ``where`` (:func:`~diffgates.circuit.graph.input_centroids`): the
    adder tree then first adds up signals computed from nearby inputs, which a placer puts near
    one another, and gathers across the chip only the partial counts (the difference between a
    convolutional model that routes on an FPGA and one that does not)."""
    group = circuit.outputs[c * circuit.group_size : (c + 1) * circuit.group_size]
    signals, times = np.unique(group, return_counts=True)
    if where is not None:
        order = np.argsort(where[signals], kind="stable")
        signals, times = signals[order], times[order]
    ops = np.full(len(signals), -1)
    is_gate = signals >= circuit.n_inputs
    ops[is_gate] = circuit.ops[signals[is_gate] - circuit.n_inputs]
    constant = int(times[ops == gates.TRUE].sum())
    keep = (ops != gates.TRUE) & (ops != gates.FALSE)
    return [(int(s), int(m)) for s, m in zip(signals[keep], times[keep])], constant


def _columns(terms: list[tuple[int, int]]) -> dict[int, list]:
    """Bit heap of weighted terms: column ``k`` lists the terms with bit ``k`` set in their weight."""
    heap: dict[int, list] = {}
    for t, m in terms:
        for k in range(m.bit_length()):
            if m >> k & 1:
                heap.setdefault(k, []).append(t)
    return heap


def _heap_depth(terms: list[tuple[int, int]]) -> int:
    """Register stages of a class's pipelined adder tree: its full-adder levels, then the final adder."""
    sizes = {k: len(v) for k, v in _columns(terms).items()}
    levels = 0
    while any(n > 2 for n in sizes.values()):
        nxt: dict[int, int] = {}
        for k, n in sizes.items():
            nxt[k] = nxt.get(k, 0) + n // 3 + n % 3
            nxt[k + 1] = nxt.get(k + 1, 0) + n // 3
        sizes, levels = nxt, levels + 1
    return levels + 1


def count_width(circuit: Circuit) -> int:
    """Bits of one class count (0 .. group size)."""
    return int(np.ceil(np.log2(circuit.group_size + 1))) if circuit.group_size else 1


def class_width(circuit: Circuit) -> int:
    """Bits of a class index."""
    return max(1, int(circuit.n_classes - 1).bit_length())


def to_verilog(
    circuit: Circuit,
    fmt: InputFormat,
    stage_levels: int = 0,
    name: str = "dg_model",
    bits_in: bool = False,
    class_names: list[str] | None = None,
) -> str:
    """The model as one Verilog module; ``stage_levels > 0`` adds registers every that many levels.
    ``bits_in``: the module reads the encoder's bits (port ``bits``) instead of the features, so the
    encoder is left out (for measuring the parts of a design). ``class_names``: listed in the
    header comment, what each class output stands for."""
    n_in, n_f, k = circuit.n_inputs, circuit.n_features, circuit.n_classes
    w = fmt.bits
    depth = levels(circuit) if circuit.n_gates else np.zeros(0, dtype=np.int64)
    stage = np.zeros(circuit.n_signals, dtype=np.int64)
    if stage_levels > 0:  # the encoder's bits are registered: the gates start at stage 1
        stage[n_in:] = 1 + (depth - 1) // stage_levels
    last = network_latency(circuit, stage_levels)
    piped = stage_levels > 0
    base = [f"i{j}" for j in range(n_in)] + [f"g{g}" for g in range(circuit.n_gates)]
    # how far each signal must be delayed: to the latest stage that reads it
    need = stage.copy()
    reads_a, reads_b = gates.READS_A[circuit.ops], gates.READS_B[circuit.ops]  # what each gate's expression reads
    for src, reads in ((circuit.a, reads_a), (circuit.b, reads_b)):
        np.maximum.at(need, src[reads], stage[n_in:][reads])
    where = input_centroids(circuit)
    counted = [_class_terms(circuit, c, where) for c in range(k)]  # what each class's adder tree sums
    summed = np.array([s for terms, _ in counted for s, _ in terms], dtype=np.int64)
    need[summed] = last

    def ref(sig: int, at: int) -> str:
        return base[sig] if at == stage[sig] else f"{base[sig]}_p{at}"

    count_w = count_width(circuit)
    class_w = class_width(circuit)
    lines = [
        f"// {name}: logic gate network exported by diffgates: {n_f} features x {w} bits in,",
        f"// {circuit.n_gates} gates, {k} classes x {circuit.group_size} outputs. "
        f"Latency: {latency(circuit, stage_levels)} clock cycles.",
        *(f"// class {c}: {json.dumps(n)}" for c, n in enumerate((class_names or [])[:k])),
        "`timescale 1ns/1ps",
        "// verilator lint_off DECLFILENAME",
        f"module {name} (",
        "    input  wire clk,",
        f"    input  wire [{n_in - 1}:0] bits,       // the encoder's bits"
        if bits_in
        else f"    input  wire [{n_f * w - 1}:0] x,        // feature f is x[{w}*f +: {w}]",
        f"    output wire [{k * count_w - 1}:0] counts{',' if circuit.argmax else ' '}  "
        f"// output c's count is counts[{count_w}*c +: {count_w}]",
        *([f"    output wire [{class_w - 1}:0] class_out  // argmax, first maximum wins"] if circuit.argmax else []),
        ");",
    ]
    q = fmt.thresholds(circuit.in_threshold)
    for j in range(n_in):
        f = int(circuit.in_feature[j])
        expr = f"bits[{j}]" if bits_in else _at_least([f"x[{w * f + i}]" for i in range(w)], int(q[j]))
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
    tree_depth = max(_heap_depth(terms) for terms, _ in counted) if piped else 0  # head_latency's trees
    named = [sorted(((ref(s, last), m) for s, m in terms), key=lambda t: t[1]) for terms, _ in counted]
    shared_lines, shared, named = _shared_adders(named, piped)
    lines += shared_lines
    for c, (terms, (_, constant)) in enumerate(zip(named, counted)):
        lines += _adder_tree(f"c{c}", terms, constant, count_w, tree_depth, shared[c])
    if circuit.argmax:
        lines += _argmax(k, count_w, class_w, piped)
    else:
        lines.append(f"    assign counts = {{{', '.join(f'c{c}' for c in reversed(range(k)))}}};")
    read = np.zeros(circuit.n_signals, dtype=bool)
    read[circuit.a[reads_a]], read[circuit.b[reads_b]], read[summed] = True, True, True
    unread = ", ".join(base[s] for s in np.flatnonzero(~read))  # in circuits exported unoptimised
    port = "bits" if bits_in else "x"
    unread = f"{port}, {unread + ', ' if unread else ''}"
    lines.append(f"    wire _unused_ok = &{{1'b0, clk, {unread}1'b0}};  // inputs not read")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def _at_least(bits: list[str], q: int) -> str:
    """``value >= q`` for the unsigned number with ``bits`` (least significant first), as AND/OR
    logic: from the top, a set bit of ``q`` needs its bit and the rest at least the rest of ``q``; a
    clear bit is passed by its bit or by the rest. Lookup tables, where an adder's comparison would
    take a carry chain per threshold."""
    if q <= 0:
        return "1'b1"
    if q >= 2 ** len(bits):
        return "1'b0"
    top, rest, low = bits[-1], bits[:-1], q & ((1 << (len(bits) - 1)) - 1)
    below = _at_least(rest, low)
    if q >> (len(bits) - 1):
        return top if below == "1'b1" else f"{top} & ({below})"
    return top if below == "1'b0" else f"{top} | ({below})"


def head_only(circuit: Circuit) -> Circuit:
    """The adder trees and argmax of ``circuit`` alone: every signal its classes count becomes an
    input bit (its constant gates stay), for measuring the head apart from the network."""
    summed = np.unique([s for c in range(circuit.n_classes) for s, _ in _class_terms(circuit, c)[0]]).astype(np.int64)
    n_in = max(1, len(summed))
    is_gate = circuit.outputs >= circuit.n_inputs
    op = np.full(len(circuit.outputs), -1)
    op[is_gate] = circuit.ops[circuit.outputs[is_gate] - circuit.n_inputs]
    constant = (op == gates.TRUE) | (op == gates.FALSE)
    outputs = np.where(constant, n_in + (op == gates.TRUE), np.searchsorted(summed, circuit.outputs))
    return circuit.replace(
        in_feature=np.zeros(n_in, dtype=np.int32),
        in_threshold=np.zeros(n_in, dtype=np.float32),
        ops=np.array([gates.FALSE, gates.TRUE], dtype=np.uint8),
        a=np.zeros(2, dtype=np.int32),
        b=np.zeros(2, dtype=np.int32),
        outputs=outputs,
        layer=np.zeros(2, dtype=np.int32),
    )


def _node(name: str, width: int, expr: str, registered: bool) -> list[str]:
    """A head node: a wire, or a register loaded every clock (a pipeline stage)."""
    if not registered:
        return [f"    wire [{width - 1}:0] {name} = {expr};"]
    return [f"    reg [{width - 1}:0] {name};", f"    always @(posedge clk) {name} <= {expr};"]


def _full_adder(name: str, bits: list[str], piped: bool) -> list[str]:
    """``name`` (2 bits): the sum of three 1-bit signals, its bit 0 the sum and bit 1 the carry."""
    return _node(name, 2, " + ".join(f"{{1'b0, {b}}}" for b in bits), piped)


def _shared_adders(classes: list[list[tuple[str, int]]], piped: bool) -> tuple[list[str], list[list[str]], list]:
    """Full adders over three terms that two classes both count once, built once for both:
    (their Verilog, each class's shared adders, each class's terms without the shared ones).
    Pairs of classes with the most such terms in common go first."""
    units = [{t for t, m in terms if m == 1} for terms in classes]
    shared: list[list[str]] = [[] for _ in classes]
    lines: list[str] = []
    while True:
        common, a, b = max(
            ((len(units[a] & units[b]), a, b) for a in range(len(units)) for b in range(a + 1, len(units))),
            default=(0, 0, 0),
        )
        if common < 3:
            break
        in_both = units[a] & units[b]
        both = [t for t, _ in classes[a] if t in in_both]  # in class a's order
        for i in range(0, common - common % 3, 3):
            f = f"h_f{sum(map(len, shared)) // 2}"  # each shared adder is listed by two classes
            lines += _full_adder(f, both[i : i + 3], piped)
            shared[a].append(f)
            shared[b].append(f)
            units[a] -= set(both[i : i + 3])
            units[b] -= set(both[i : i + 3])
    rest = [[(t, m) for t, m in terms if m != 1 or t in units[c]] for c, terms in enumerate(classes)]
    return lines, shared, rest


def _adder_tree(
    name: str, terms: list[tuple[str, int]], constant: int, width: int, depth: int, shared: list[str] = ()
) -> list[str]:
    """Sum of weighted 1-bit terms (signal, weight) plus ``constant`` into ``name`` (``width`` bits).

    The terms form a bit heap (a term of weight 6 sits in columns 1 and 2); levels of full adders
    take three bits of a column at a time into a sum bit there and a carry bit one column up (a
    Wallace tree: two LUT4s per bit removed), until no column holds more than two bits; one adder
    of the two remaining numbers (a carry chain) finishes the count. ``shared``: level-0 adders of
    three column-0 terms built outside (see :func:`_shared_adders`). ``depth > 0``: a register
    after every level and after the final adder, then registered copies until ``depth`` levels
    (so all classes arrive together)."""
    piped = depth > 0
    lines = []
    heap = _columns(terms)
    level = 0
    while shared or any(len(bits) > 2 for bits in heap.values()):
        nxt: dict[int, list] = {}
        for f in shared:  # level 0's adders built outside, shared with another class
            nxt.setdefault(0, []).append(f"{f}[0]")
            nxt.setdefault(1, []).append(f"{f}[1]")
        shared = ()
        for k in sorted(heap):
            bits = heap[k]
            for i in range(0, len(bits) - len(bits) % 3, 3):
                f = f"{name}_f{level}_{k}_{i // 3}"
                lines += _full_adder(f, bits[i : i + 3], piped)
                nxt.setdefault(k, []).append(f"{f}[0]")
                nxt.setdefault(k + 1, []).append(f"{f}[1]")
            for j, b in enumerate(bits[len(bits) - len(bits) % 3 :]):
                if piped:  # bits left over wait a level beside the adders
                    lines += _node(f"{name}_w{level}_{k}_{j}", 1, b, True)
                    b = f"{name}_w{level}_{k}_{j}"
                nxt.setdefault(k, []).append(b)
        heap, level = nxt, level + 1
    rows = [
        "{" + ", ".join(heap[k][r] if k in heap and len(heap[k]) > r else "1'b0" for k in reversed(range(width))) + "}"
        for r in range(2)
    ]
    total = " + ".join(rows) + (f" + {width}'d{constant}" if constant else "")
    out = f"{name}_s" if piped else name
    lines += _node(out, width, total, piped)
    for pad in range(level + 1, depth):  # a class with fewer terms waits for the deepest
        lines += _node(f"{name}_d{pad}", width, out, True)
        out = f"{name}_d{pad}"
    if piped:
        lines.append(f"    wire [{width - 1}:0] {name} = {out};")
    return lines


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
    expected = counts[:, ::-1]  # c_{k-1} .. c_0, after the class where the circuit has an argmax
    widths = [count_w] * k
    if circuit.argmax:
        expected, widths = np.concatenate([counts.argmax(1)[:, None], expected], axis=1), [class_w, *widths]
    out_w, got = sum(widths), "{class_out, counts}" if circuit.argmax else "counts"
    vin = "\n".join(_hex_row(row[::-1], w) for row in codes) + "\n"
    vout = "\n".join(_hex_row(row, widths) for row in expected) + "\n"
    ports = ".counts(counts), .class_out(class_out)" if circuit.argmax else ".counts(counts)"
    tb = f"""`timescale 1ns/1ps
// verilator lint_off DECLFILENAME
// Self-checking testbench: {n} golden vectors computed by diffgates from the software model.
module tb;
    reg clk = 0;
    reg [{n_f * w - 1}:0] x;
    wire [{k * count_w - 1}:0] counts;
    {f"wire [{class_w - 1}:0] class_out;" if circuit.argmax else "// no class_out: the outputs are values"}
    reg [{n_f * w - 1}:0] vin [0:{n - 1}];
    reg [{out_w - 1}:0] vout [0:{n - 1}];
    integer i, c, errors;
    {name} dut (.clk(clk), .x(x), {ports});
    initial begin
        $readmemh("golden_in.hex", vin);
        $readmemh("golden_out.hex", vout);
        errors = 0;
        for (i = 0; i < {n}; i = i + 1) begin
            x = vin[i];
            #1;
            for (c = 0; c < {lat}; c = c + 1) begin clk = 1; #1; clk = 0; #1; end
            if ({got} !== vout[i]) begin
                if (errors < 10) $display("MISMATCH vector %0d: got %h expected %h", i, {got}, vout[i]);
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
