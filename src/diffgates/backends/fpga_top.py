"""Top levels that put an exported model (``dg_model`` of :mod:`diffgates.backends.verilog`) on
real pins, and their self-checking testbench.

- ``stream``: the image arrives ``word_bits`` bits per clock (valid/ready; ready is always high,
  since the pipelined model takes a new image every cycle), features in order, feature f's code in
  bits ``[bits*f +: bits]`` of the concatenated stream. ``out_valid`` pulses with the class and the
  counts of each image. Initiation interval: ceil(features x bits / word_bits) cycles.
- ``wide``: the whole image in one cycle, registered; for use inside a larger design. Initiation
  interval: 1 cycle.

Both register their inputs and outputs, so the latency is the model's register stages + 2.
"""

from __future__ import annotations

import math

import numpy as np

from ..circuit.ir import Circuit
from .verilog import InputFormat, _hex_row, class_width, count_width, latency

MODES = ("stream", "wide")


def interface(circuit: Circuit, fmt: InputFormat, mode: str, word_bits: int = 8) -> dict:
    """Widths, latency and initiation interval of a top level."""
    image_bits = circuit.n_features * fmt.bits
    words = math.ceil(image_bits / word_bits) if mode == "stream" else 1
    return {
        "mode": mode,
        "image_bits": image_bits,
        "word_bits": word_bits if mode == "stream" else image_bits,
        "words_per_image": words,
        "count_bits": count_width(circuit),
        "class_bits": class_width(circuit),
        "initiation_interval": words,
    }


def top_level(circuit: Circuit, fmt: InputFormat, stage_levels: int, mode: str, word_bits: int = 8) -> str:
    """Verilog of ``dg_top`` around ``dg_model``; latency: the model's stages + 2 cycles."""
    io = interface(circuit, fmt, mode, word_bits)
    n_bits, k, cw, kw = io["image_bits"], circuit.n_classes, io["count_bits"], io["class_bits"]
    stages = latency(circuit, stage_levels)  # the model's register stages
    lat = stages + 1  # cycles from the registered image to the registered outputs
    lines = [
        f"// dg_top ({mode}): {io['initiation_interval']} cycle(s) per image, latency {lat + 1} cycles",
        "`timescale 1ns/1ps",
        "// verilator lint_off DECLFILENAME",
        "module dg_top (",
        "    input  wire clk,",
    ]
    if mode == "stream":
        w, words = io["word_bits"], io["words_per_image"]
        lines += [
            f"    input  wire [{w - 1}:0] in_data,",
            "    input  wire in_valid,",
            "    output wire in_ready,",
        ]
    else:
        lines += [f"    input  wire [{n_bits - 1}:0] in_data,", "    input  wire in_valid,"]
    lines += [
        f"    output reg  [{kw - 1}:0] out_class,",
        f"    output reg  [{k * cw - 1}:0] out_counts,",
        "    output reg  out_valid",
        ");",
        f"    reg [{n_bits - 1}:0] image;",
        "    reg start;",
    ]
    init = ["image = 0;", "start = 1'b0;", "out_valid = 1'b0;", "out_class = 0;", "out_counts = 0;"]
    if mode == "stream":
        count_w = max(1, math.ceil(math.log2(words + 1)))
        held = (words - 1) * w  # the words of an image received before its last
        incoming = "{in_data, buffer}" if held else "in_data"
        lines += [
            "    assign in_ready = 1'b1;",
            *([f"    reg [{held - 1}:0] buffer;"] if held else []),
            f"    reg [{count_w - 1}:0] received;",
            f"    wire [{words * w - 1}:0] incoming = {incoming};",
            "    always @(posedge clk) begin",
            "        start <= 1'b0;",
            "        if (in_valid) begin",
            *([f"            buffer <= incoming[{words * w - 1}:{w}];"] if held else []),
            f"            if (received == {count_w}'d{words - 1}) begin",
            f"                image <= incoming[{n_bits - 1}:0];",
            "                start <= 1'b1;",
            f"                received <= {count_w}'d0;",
            f"            end else received <= received + {count_w}'d1;",
            "        end",
            "    end",
        ]
        init += (["buffer = 0;"] if held else []) + ["received = 0;"]
        if words * w > n_bits:  # padding bits of the last word
            lines.append(f"    wire _unused_ok = &{{1'b0, incoming[{words * w - 1}:{n_bits}], 1'b0}};")
    else:
        lines += ["    always @(posedge clk) begin", "        image <= in_data;"]
        lines += ["        start <= in_valid;", "    end"]
    lines += [
        f"    wire [{k * cw - 1}:0] counts;",
        f"    wire [{kw - 1}:0] class_out;",
        "    dg_model model (.clk(clk), .x(image), .counts(counts), .class_out(class_out));",
    ]
    if stages:  # start, delayed through the model's stages, marks the outputs of that image
        pipe = f"{{valid_pipe[{stages - 2}:0], start}}" if stages > 1 else "start"
        lines.append(f"    reg [{stages - 1}:0] valid_pipe;")
        init.append("valid_pipe = 0;")
        lines.append(f"    always @(posedge clk) valid_pipe <= {pipe};")
    lines += [
        "    always @(posedge clk) begin",
        "        out_class <= class_out;",
        "        out_counts <= counts;",
        f"        out_valid <= {f'valid_pipe[{stages - 1}]' if stages else 'start'};",
        "    end",
        f"    initial begin {' '.join(init)} end",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"


def top_testbench(
    circuit: Circuit, fmt: InputFormat, codes: np.ndarray, counts: np.ndarray, mode: str, word_bits: int = 8
) -> dict[str, str]:
    """A testbench that streams the golden images back to back through ``dg_top`` and checks every
    ``out_valid`` result (class and counts) in order: {filename: text}. Prints PASS or FAIL."""
    io = interface(circuit, fmt, mode, word_bits)
    n, k, cw, kw = len(codes), circuit.n_classes, io["count_bits"], io["class_bits"]
    w, words = io["word_bits"], io["words_per_image"]
    stream = np.zeros((n, words), dtype=object)
    for i, row in enumerate(codes):
        image = int(_hex_row(row[::-1], fmt.bits), 16)
        for j in range(words):
            stream[i, j] = (image >> (j * w)) & ((1 << w) - 1)
    vin = "\n".join(format(int(v), "x") for v in stream.reshape(-1)) + "\n"
    expected = np.concatenate([counts.argmax(1)[:, None], counts[:, ::-1]], axis=1)
    vout = "\n".join(_hex_row(row, [kw] + [cw] * k) for row in expected) + "\n"
    ready_wire = "\n    wire in_ready;" if mode == "stream" else ""
    check_ready = "\n            if (in_ready !== 1'b1) stalls = stalls + 1;" if mode == "stream" else ""
    tb = f"""`timescale 1ns/1ps
// verilator lint_off DECLFILENAME
// Streams {n} golden images through dg_top ({mode}, {words} word(s) of {w} bits each) and checks
// every result in order against the software model's class and counts.
module tb_top;
    reg clk;
    initial clk = 1'b0;
    always #5 clk = ~clk;
    reg [{w - 1}:0] in_data = 0;
    reg in_valid = 0;
    wire [{kw - 1}:0] out_class;
    wire [{k * cw - 1}:0] out_counts;
    wire out_valid;{ready_wire}
    reg [{w - 1}:0] vin [0:{n * words - 1}];
    reg [{kw + k * cw - 1}:0] vout [0:{n - 1}];
    integer i, got, errors, cycles, stalls;
    dg_top dut (.clk(clk), .in_data(in_data), .in_valid(in_valid),{" .in_ready(in_ready)," if mode == "stream" else ""}
                .out_class(out_class), .out_counts(out_counts), .out_valid(out_valid));
    initial begin
        $readmemh("top_in.hex", vin);
        $readmemh("top_out.hex", vout);
        stalls = 0;
        for (i = 0; i < {n * words}; i = i + 1) begin
            @(negedge clk);{check_ready}
            in_data = vin[i]; in_valid = 1;
        end
        @(negedge clk); in_valid = 0;
    end
    initial begin
        got = 0; errors = 0; cycles = 0;
        while (got < {n} && cycles < {(n * words + 64) * 4 + 1000}) begin
            @(posedge clk); #1; cycles = cycles + 1;
            if (out_valid === 1'b1) begin
                if ({{out_class, out_counts}} !== vout[got]) begin
                    if (errors < 10)
                        $display("MISMATCH image %0d: got %h expected %h", got, {{out_class, out_counts}}, vout[got]);
                    errors = errors + 1;
                end
                got = got + 1;
            end
        end
        if (stalls != 0) $display("FAIL in_ready was low on %0d words", stalls);
        else if (got < {n}) $display("FAIL %0d of %0d images never came out", {n} - got, {n});
        else if (errors == 0) $display("PASS %0d vectors", {n});
        else $display("FAIL %0d of %0d vectors", errors, {n});
        $finish;
    end
endmodule
"""
    return {"tb_top.v": tb, "top_in.hex": vin, "top_out.hex": vout}
