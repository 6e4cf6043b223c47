"""Top levels that put an exported model (``dg_model`` of :mod:`diffgates.backends.verilog`) on
real pins, and their self-checking testbench.

- ``stream``: the image arrives ``word_bits`` bits per clock (valid/ready; ready is always high,
  since the pipelined model takes a new image every cycle), features in order, feature f's code in
  bits ``[bits*f +: bits]`` of the concatenated stream. ``out_valid`` pulses with the class and the
  counts of each image. Initiation interval: ceil(features x bits / word_bits) cycles.
- ``wide``: the whole image in one cycle, registered; for use inside a larger design. Initiation
  interval: 1 cycle.

- ``pixels``: an image network (outputs that are values) over whole frames: one pixel code per
  clock in raster order (valid/ready); ``patch - 1`` rows sit in a line buffer (one memory of
  ``patch - 1`` codes a word, a word per column) and a ``patch`` x ``patch`` window of registers
  shifts a column per clock. The edges are repeated inside, as diffgates' software pads: after
  each row ``in_ready`` drops for ``patch // 2`` clocks and after each frame for ``patch // 2``
  rows of them while the last column and row are repeated. Every pixel gives one output block
  (``out_counts``: its values' counts) in raster order. Frames follow each other without a gap;
  ``in_valid`` may pause anywhere. Initiation interval: (width + r) x (height + r) clocks.

All register their inputs and outputs: the latency is the model's register stages + 2 (+ 3 for
``pixels``: the line buffer's read).
"""

from __future__ import annotations

import math

import numpy as np

from ..circuit.ir import Circuit
from ..errors import DiffgatesError, InternalError
from .verilog import InputFormat, _hex_row, class_width, count_width, latency

MODES = ("stream", "wide", "pixels")


def window_patch(circuit: Circuit) -> int:
    """The side of the square window an image network reads (its features, row-major)."""
    patch = math.isqrt(circuit.n_features)
    if patch * patch != circuit.n_features or patch % 2 == 0:
        raise DiffgatesError(
            f"an image network reads an odd square window of pixels; this one reads {circuit.n_features} features."
        )
    return patch


def interface(
    circuit: Circuit, fmt: InputFormat, mode: str, word_bits: int = 8, frame: tuple[int, int] | None = None
) -> dict:
    """Widths, latency and initiation interval of a top level; ``frame`` (width, height): the
    image size of ``pixels``."""
    if mode == "pixels":
        if frame is None:
            raise InternalError("the pixels top level needs the frame size")
        patch = window_patch(circuit)
        (width, height), r = frame, patch // 2
        return {
            "mode": mode,
            "pixel_bits": fmt.bits,
            "patch": patch,
            "frame": [width, height],
            "line_buffer_bits": (patch - 1) * fmt.bits * width,
            "count_bits": count_width(circuit),
            "outputs_per_frame": width * height,
            # a clock a pixel, and one for each of r flush columns a row and r flush rows a frame
            "initiation_interval": (width + r) * (height + r),
        }
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


def top_latency(circuit: Circuit, stage_levels: int, mode: str) -> int:
    """Cycles from the clock edge that takes an input's last word (or pixel) to ``out_valid``."""
    return latency(circuit, stage_levels) + (3 if mode == "pixels" else 2)


def top_level(
    circuit: Circuit,
    fmt: InputFormat,
    stage_levels: int,
    mode: str,
    word_bits: int = 8,
    frame: tuple[int, int] | None = None,
) -> str:
    """Verilog of ``dg_top`` around ``dg_model``; latency: :func:`top_latency`."""
    if mode == "pixels":
        return _pixels_top(circuit, fmt, stage_levels, frame)
    io = interface(circuit, fmt, mode, word_bits)
    n_bits, k, cw, kw = io["image_bits"], circuit.n_classes, io["count_bits"], io["class_bits"]
    stages = latency(circuit, stage_levels)  # the model's register stages
    lines = [
        f"// dg_top ({mode}): {io['initiation_interval']} cycle(s) per image, "
        f"latency {top_latency(circuit, stage_levels, mode)} cycles",
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
    lines += _model_and_outputs(circuit, "image", stages, init)
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
    about = f"""Streams {n} golden images through dg_top ({mode}, {words} word(s) of {w} bits each) and checks
every result in order against the software model's class and counts."""
    tb = f"""{_tb_head(about)}
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
{_checker(n, "{out_class, out_counts}", (n * words + 64) * 4 + 1000, "image", "words")}endmodule
"""
    return {"tb_top.v": tb, "top_in.hex": vin, "top_out.hex": vout}


def _tb_head(about: str) -> str:
    """The opening of a top level's testbench: ``about`` as comment lines, the module, its clock."""
    comment = "\n".join(f"// {line}" for line in about.splitlines())
    return f"""`timescale 1ns/1ps
// verilator lint_off DECLFILENAME
{comment}
module tb_top;
    reg clk;
    initial clk = 1'b0;
    always #5 clk = ~clk;"""


def _checker(n: int, result: str, limit: int, item: str, unit: str) -> str:
    """A testbench's checking process: each ``out_valid`` result (``result``) against ``vout`` in
    order, within ``limit`` cycles; prints PASS or FAIL (``stalls``: input ``unit`` refused)."""
    return f"""    initial begin
        got = 0; errors = 0; cycles = 0;
        while (got < {n} && cycles < {limit}) begin
            @(posedge clk); #1; cycles = cycles + 1;
            if (out_valid === 1'b1) begin
                if ({result} !== vout[got]) begin
                    if (errors < 10) $display("MISMATCH {item} %0d: got %h expected %h", got, {result}, vout[got]);
                    errors = errors + 1;
                end
                got = got + 1;
            end
        end
        if (stalls != 0) $display("FAIL in_ready was low on %0d {unit}", stalls);
        else if (got < {n}) $display("FAIL %0d of %0d {item}s never came out", {n} - got, {n});
        else if (errors == 0) $display("PASS %0d vectors", {n});
        else $display("FAIL %0d of %0d vectors", errors, {n});
        $finish;
    end
"""


def _model_and_outputs(circuit: Circuit, x: str, stages: int, init: list[str]) -> list[str]:
    """The end of a top level: the model reading ``x``, ``start`` delayed through the model's
    register stages (it marks the outputs of the input that raised it), the registered outputs
    and the initial values (``init``, to which the delay line adds its own)."""
    k, cw, kw = circuit.n_classes, count_width(circuit), class_width(circuit)
    lines, ports, outputs = [f"    wire [{k * cw - 1}:0] counts;"], ".counts(counts)", ["out_counts <= counts;"]
    if circuit.argmax:
        lines.append(f"    wire [{kw - 1}:0] class_out;")
        ports, outputs = ports + ", .class_out(class_out)", ["out_class <= class_out;", *outputs]
    lines.append(f"    dg_model model (.clk(clk), .x({x}), {ports});")
    ready = "start"
    if stages:
        init.append("valid_pipe = 0;")
        pipe = f"{{valid_pipe[{stages - 2}:0], start}}" if stages > 1 else "start"
        lines += [f"    reg [{stages - 1}:0] valid_pipe;", f"    always @(posedge clk) valid_pipe <= {pipe};"]
        ready = f"valid_pipe[{stages - 1}]"
    return [
        *lines,
        "    always @(posedge clk) begin",
        *(f"        {o}" for o in outputs),
        f"        out_valid <= {ready};",
        "    end",
        f"    initial begin {' '.join(init)} end",
        "endmodule",
    ]


def _pixels_top(circuit: Circuit, fmt: InputFormat, stage_levels: int, frame) -> str:
    """The ``pixels`` top level. Positions (vy, vx) run over the frame plus r = patch // 2 flush
    columns after each row and r flush rows after the frame, one a clock; the frame's own positions
    take a pixel (``in_ready``), the flush positions take none. Each position's column of the
    window (its row and the p - 1 above, read from the line buffer one clock before) slides into
    the window registers; rows above the frame read as its first row, flush rows repeat its last
    row (read back from the line buffer), flush columns repeat its last column, and the first
    column fills the whole window: the edges repeated, as the software pads. The window of
    position (vy, vx) is the one of pixel (vy - r, vx - r); window feature ``dy * patch + dx``
    is the pixel ``dy`` rows and ``dx`` columns from its top left, as
    :func:`diffgates.image.data.windows` orders them."""
    io = interface(circuit, fmt, "pixels", frame=frame)
    b, p, k, cw = fmt.bits, io["patch"], circuit.n_classes, io["count_bits"]
    r, (width, height) = p // 2, io["frame"]
    stages = latency(circuit, stage_levels)
    cb, rb = max(1, (width + r - 1).bit_length()), max(1, (height + r - 1).bit_length())
    lb = (p - 1) * b  # a line-buffer word: the column's p - 1 rows above, the oldest in the high bits
    aw = max(1, (width - 1).bit_length())  # its address
    init = ["window = 0;", "start = 1'b0;", "out_valid = 1'b0;", "out_counts = 0;", "pixel = 0;", "taken = 1'b0;"]
    lines = [
        f"// dg_top (pixels): {width} x {height} frames a pixel per clock, edges repeated inside; a {p} x {p} "
        f"window; latency {top_latency(circuit, stage_levels, 'pixels')} cycles",
        "`timescale 1ns/1ps",
        "// verilator lint_off DECLFILENAME",
        "module dg_top (",
        "    input  wire clk,",
        f"    input  wire [{b - 1}:0] in_data,",
        "    input  wire in_valid,",
        "    output wire in_ready,",
        f"    output reg  [{k * cw - 1}:0] out_counts,",
        "    output reg  out_valid",
        ");",
        f"    reg [{b - 1}:0] pixel;  // the pixel taken last clock",
        f"    reg [{p * p * b - 1}:0] window;",
        "    reg taken, start;  // a position was passed last clock; its window is whole",
    ]
    if p == 1:  # no rows to keep, nothing to repeat
        lines += [
            "    assign in_ready = 1'b1;",
            "    always @(posedge clk) begin",
            "        taken <= in_valid;",
            "        if (in_valid) pixel <= in_data;",
            "        start <= taken;",
            "        if (taken) window <= pixel;",
            "    end",
        ]
        return "\n".join(lines + _model_and_outputs(circuit, "window", stages, init)) + "\n"
    lines += [
        f"    reg [{cb - 1}:0] vx;  // the position: a column of the frame or a flush column",
        f"    reg [{rb - 1}:0] vy;  // a row of the frame or a flush row",
        "    reg complete;  // the window of the position passed last clock is whole",
    ]
    init += ["vx = 0;", "vy = 0;", "complete = 1'b0;"]
    init += ["above = 0;", "at = 0;", "row = 0;", "first = 1'b0;", "flush_col = 1'b0;", "flush_row = 1'b0;"]
    init += ["last_column = 0;", "read_at = 0;"]
    next_read = []  # one column: always 0
    if width > 1:
        step = f"read_at == {aw}'d{width - 1} ? read_at : read_at + {aw}'d1"
        next_read = [f"            read_at <= vx == {cb}'d{width + r - 1} ? {aw}'d0 : {step};"]
    lines += [
        f"    reg [{lb - 1}:0] lines [0:{width - 1}];",
        f"    reg [{lb - 1}:0] above;  // the p - 1 rows above the position passed last clock,",
        f"    reg [{aw - 1}:0] at;  // its column",
        f"    reg [{rb - 1}:0] row;  // and row",
        "    reg first, flush_col, flush_row;",
        f"    reg [{p * b - 1}:0] last_column;",
        f"    assign in_ready = vy < {rb}'d{height} && vx < {cb}'d{width};",
        "    wire advance = in_ready ? in_valid : 1'b1;",
        # the column read, vx held at the last column through the flush columns: a register of its
        # own (a multiplexer between a register and the read made Yosys' tree of distributed RAM
        # reads four times larger)
        f"    reg [{aw - 1}:0] read_at;",
        f"    wire [{b - 1}:0] own = flush_row ? above[{b - 1}:0] : pixel;  // a flush row repeats the last",
    ]
    # slot i of above holds the row i + 1 above; rows above the frame's first read as the first
    # (the one at distance `row`), in rows the counter reaches
    last_row = height + r - 1
    for i in range(p - 1):
        first_row = "own"
        for k in range(1, min(i, last_row) + 1):
            first_row = f"row == {rb}'d{k} ? above[{b * (k - 1)} +: {b}] : {first_row}"
        inside = f"row >= {rb}'d{i + 1} ? above[{b * i} +: {b}] : ({first_row})" if i < last_row else first_row
        lines.append(f"    wire [{b - 1}:0] above_{i} = {inside};")
    if last_row <= p - 2:  # a frame too short for the oldest row above ever to be read
        lines.append(f"    wire _unused_ok = &{{1'b0, above[{lb - 1}:{lb - b}], 1'b0}};")
    stacked = ", ".join(f"above_{i}" for i in reversed(range(p - 1)))
    kept = f"{{above[{lb - b - 1}:0], own}}" if p > 2 else "own"
    lines += [
        f"    wire [{p * b - 1}:0] column = flush_col ? last_column : {{{stacked}, own}};",
        "    always @(posedge clk) begin",
        "        taken <= advance;",
        "        if (advance) begin",
        "            above <= lines[read_at];",
        "            pixel <= in_data;",
        "            at <= read_at;",
        *next_read,
        "            row <= vy;",
        f"            first <= vx == {cb}'d0;",
        f"            flush_col <= vx >= {cb}'d{width};",
        f"            flush_row <= vy >= {rb}'d{height};",
        f"            complete <= vy >= {rb}'d{r} && vx >= {cb}'d{r};",
        f"            if (vx == {cb}'d{width + r - 1}) begin",
        f"                vx <= {cb}'d0;",
        f"                vy <= vy == {rb}'d{height + r - 1} ? {rb}'d0 : vy + {rb}'d1;",
        f"            end else vx <= vx + {cb}'d1;",
        "        end",
        "        start <= taken && complete;",
        "        if (taken) begin",
        "            if (!flush_col) begin",
        f"                lines[at] <= {kept};",
        "                last_column <= column;",
        "            end",
    ]
    for dy in range(p):
        for dx in range(p):
            f = dy * p + dx
            new = f"column[{b * (p - 1 - dy)} +: {b}]"
            src = new if dx == p - 1 else f"first ? {new} : window[{b * (f + 1)} +: {b}]"
            lines.append(f"            window[{b * f} +: {b}] <= {src};")
    lines += ["        end", "    end", *_model_and_outputs(circuit, "window", stages, init)]
    return "\n".join(lines) + "\n"


def frame_windows(frames: np.ndarray, patch: int) -> np.ndarray:
    """Every pixel's window of frames (n, height, width), edges repeated, as the ``pixels`` top
    level sees them: (n * height * width, patch * patch), frame after frame, row-major."""
    r = patch // 2
    padded = np.pad(frames, ((0, 0), (r, r), (r, r)), mode="edge")
    view = np.lib.stride_tricks.sliding_window_view(padded, (patch, patch), axis=(1, 2))
    return view.reshape(-1, patch * patch)


def pixels_testbench(
    circuit: Circuit, fmt: InputFormat, frames: np.ndarray, counts: np.ndarray, stage_levels: int
) -> dict[str, str]:
    """A testbench that streams ``frames`` (n, height, width) of codes through the ``pixels`` top
    level back to back, honouring ``in_ready`` and pausing every 13 pixels, and checks every
    output block in order against ``counts`` (one row per window): {filename: text}. Prints
    PASS or FAIL."""
    n, height, width = frames.shape
    io = interface(circuit, fmt, "pixels", frame=(width, height))
    k, cw, b = circuit.n_classes, io["count_bits"], fmt.bits
    pixels, outputs = frames.size, len(counts)
    vin = "\n".join(format(int(v), "x") for v in frames.reshape(-1)) + "\n"
    vout = "\n".join(_hex_row(row, [cw] * k) for row in counts[:, ::-1]) + "\n"
    limit = (
        (n * io["initiation_interval"] * 14 // 13 + 64) * 4 + 1000 + 10 * top_latency(circuit, stage_levels, "pixels")
    )
    about = f"""Streams {n} frame(s) of {width} x {height} pixels through dg_top (pixels), waiting while in_ready is
low and pausing every 13 pixels, and checks every output block in order against the software
model's counts."""
    tb = f"""{_tb_head(about)}
    reg [{b - 1}:0] in_data = 0;
    reg in_valid = 0;
    wire in_ready;
    wire [{k * cw - 1}:0] out_counts;
    wire out_valid;
    reg [{b - 1}:0] vin [0:{pixels - 1}];
    reg [{k * cw - 1}:0] vout [0:{outputs - 1}];
    integer i, tries, got, errors, cycles, stalls;
    dg_top dut (.clk(clk), .in_data(in_data), .in_valid(in_valid), .in_ready(in_ready),
                .out_counts(out_counts), .out_valid(out_valid));
    initial begin
        $readmemh("top_in.hex", vin);
        $readmemh("top_out.hex", vout);
        stalls = 0;  // waiting on in_ready is no fault here
        i = 0;
        tries = 0;
        while (i < {pixels}) begin
            @(negedge clk);
            tries = tries + 1;
            in_valid = tries % 13 != 0;
            in_data = vin[i];
            if (in_valid && in_ready) i = i + 1;  // taken at the coming edge
        end
        @(negedge clk); in_valid = 0;
    end
{_checker(outputs, "out_counts", limit, "output", "pixels")}endmodule
"""
    return {"tb_top.v": tb, "top_in.hex": vin, "top_out.hex": vout}
