"""The benchmark driver: rows, rounds and the bfloat16 row, on tiny models."""

import json

import numpy as np
import pytest

from diffgates import bench
from diffgates.cli import main


def test_rounds_take_turns_and_report_the_median(monkeypatch):
    calls = []
    times = {"a": iter([5.0, 1.0, 3.0]), "b": iter([2.0, 9.0, 4.0])}

    def fake_worker(args, timeout):
        calls.append(args[1])
        ms = next(times[args[1]])
        row = {"ms_per_step": ms, "forward_ms": ms / 2, "peak_mb": 10.0 + len(calls)}
        return row if args[1] == "b" else {**row, "limit_ms": 1.0, "of_limit": 1.0 / ms}

    monkeypatch.setattr(bench, "run_worker", fake_worker)
    rows = bench.bench_train(["a", "b"], 8, [4], [16], [1], 3, "truth4", rounds=3)
    assert calls == ["a", "b", "a", "b", "a", "b"]  # interleaved, not one implementation after the other
    a, b = rows
    assert (a["impl"], a["ms_per_step"], a["ms_rounds"], a["peak_mb"]) == ("a", 3.0, [5.0, 1.0, 3.0], 15.0)
    assert (a["forward_ms"], a["of_limit"]) == (1.5, 1 / 3)  # the phases and the limit: medians too
    assert (b["impl"], b["ms_per_step"], b["forward_ms"], b["peak_mb"]) == ("b", 4.0, 2.0, 16.0)
    assert "vs_reference" not in a and "of_limit" not in b  # no baseline ran; b has no limit


def test_speedups_pair_each_round_with_the_baselines_run_beside_it(monkeypatch):
    """The machine slows down in round 2: paired, the row is 4x the reference in every round,
    while the ratio of the two medians (20 / 4) would say 5x."""
    times = {
        "diffgates": iter([5.0, 20.0, 4.0]),
        "reference": iter([20.0, 80.0, 16.0]),
        "torchlogix": iter([10.0, None, 12.0]),
    }

    def fake_worker(args, timeout):
        ms = next(times[args[1]])
        return {"error": "killed"} if ms is None else {"ms_per_step": ms, "peak_mb": 1.0}

    monkeypatch.setattr(bench, "run_worker", fake_worker)
    rows = {r["impl"]: r for r in bench.bench_train(list(times), 8, [4], [16], [1], 3, "truth4", rounds=3)}
    assert rows["diffgates"]["vs_reference"] == 4.0
    assert rows["diffgates"]["vs_torchlogix"] == 2.5  # the median of 2.0 and 3.0; round 2 failed
    assert rows["torchlogix"]["vs_reference"] == pytest.approx(1.6666, abs=1e-3)  # 2.0 and 1.333
    assert "vs_reference" not in rows["reference"]


def test_infer_rounds_alternate_the_thread_counts_and_report_medians(monkeypatch):
    calls = []
    rates = {"1": iter([4.0, 6.0, 5.0]), "2": iter([7.0, 10.0, 9.0])}

    def fake_worker(args, timeout):
        impl, threads = args[1], args[4]
        calls.append((impl, threads))
        if impl != "diffgates":
            return {"img_per_s": 1.0}
        rate = next(rates[threads])
        return {"img_per_s": rate, "img_per_s_features": rate / 2}

    monkeypatch.setattr(bench, "run_worker", fake_worker)
    monkeypatch.setattr(bench.os, "cpu_count", lambda: 2)
    rows = bench.bench_infer(8, [16], [1, 2], 100, 1, rounds=3)
    executor = [("diffgates", "1"), ("diffgates", "2")]
    assert calls == executor * 3 + [("exported-c", "1"), ("torchlogix", "1")]  # thread counts take turns
    one, two, c, _ = rows
    assert (one["threads"], one["img_per_s"], one["img_per_s_features"], one["img_per_s_rounds"]) == (
        1,
        5.0,
        2.5,
        [4.0, 6.0, 5.0],
    )
    assert (two["threads"], two["img_per_s"]) == (2, 9.0) and "img_per_s_rounds" not in c
    calls.clear()
    rows = bench.bench_infer(8, [16], [1], 100, 1, impls=["torchlogix", "exported-c"])
    assert calls == [("exported-c", "1"), ("torchlogix", "1")]
    assert [r["impl"] for r in rows] == ["exported-c", "torchlogix"]


def test_bench_train_runs_the_fused_bfloat16_learned_and_gate_cost_rows(capsys):
    impls = "diffgates,diffgates-bf16,diffgates-learned,diffgates-gate-cost,diffgates-layers"
    argv = ["bench", "train", "--json", "--impls", impls, "--widths", "60,60"]
    assert main([*argv, "--n-in", "32", "--batches", "16", "--threads", "1", "--steps", "2"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["impl"] for r in rows] == impls.split(",")
    assert all("error" not in r and r["ms_per_step"] > 0 for r in rows)
    plain, learned = "32->2x60->GroupSum(10)", "32->2x60->GroupSum(10) learned 8"
    assert [r["model"] for r in rows] == [plain, plain, learned, plain, plain]
    for r in rows:  # the phases add up to the step, and the fused rows state their memory limit
        phases = r["forward_ms"] + r["backward_ms"] + r["optimizer_ms"]
        assert min(r["forward_ms"], r["backward_ms"], r["optimizer_ms"]) > 0 and phases == pytest.approx(
            r["ms_per_step"], rel=0.5
        )
    # the bytes to memory (the limit divides them by a bandwidth each process measures anew)
    assert 0 < rows[1]["memory_mb"] < rows[0]["memory_mb"]  # bfloat16 activations move fewer bytes
    assert rows[0]["memory_mb"] < rows[4]["memory_mb"]  # stacked layers move fewer than one by one
    for r in (rows[0], rows[1], rows[4]):
        assert r["limit_ms"] > 0 and r["of_limit"] == pytest.approx(r["limit_ms"] / r["ms_per_step"])


def test_step_bytes_counts_the_rows_and_the_optimiser():
    from diffgates.bench import step_bytes

    # one layer of 10 gates on 4 inputs, batch 2, float32, truth4: rows 3*10 + 4*10 + 4 = 74
    assert step_bytes(4, [10], 2, 4, 4) == 74 * 2 * 4 + 7 * 4 * 40
    # stacked 4 -> 6 -> 10 in tiles of 8 samples, batch 20 (3 tiles): the input and the hidden
    # rows written and read once; four float32 sums per gate and tile, written and read
    assert step_bytes(4, [6, 10], 20, 4, 4, tile=8) == 2 * 10 * 20 * 4 + 2 * 3 * 4 * 4 * 16 + 7 * 4 * 64


def test_bench_refuses_bad_options_before_running_anything(capsys):
    assert main(["bench", "train", "--rounds", "0"]) == 2
    assert "--rounds" in capsys.readouterr().err
    assert main(["bench", "train", "--widths", "64,64"]) == 2
    assert "multiple of the 10 classes" in capsys.readouterr().err
    assert main(["bench", "conv", "--impls", "diffgates-learned"]) == 2
    assert "bench train" in capsys.readouterr().err
    assert main(["bench", "infer", "--impls", "diffgates,reference"]) == 2
    assert "unknown: reference" in capsys.readouterr().err
    assert main(["bench", "train", "--impls", "diffgates,exported-c"]) == 2
    assert "unknown: exported-c" in capsys.readouterr().err
    assert main(["bench", "epoch", "--engines", "cpu-bf16,gpu"]) == 2
    assert "unknown: gpu" in capsys.readouterr().err
    assert main(["bench", "infer", "--circuit", "missing.npz"]) == 2
    assert "no circuit file at missing.npz" in capsys.readouterr().err


def test_bench_infer_takes_a_run_directory_and_names_its_layers(tmp_path, monkeypatch):
    from conftest import random_circuit

    c = random_circuit(n_features=5, n_inputs=12, n_gates=9, n_classes=2, group=2)
    layer = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2])  # 5, 3 and 1 gates, each layer reading the one before
    first = np.array([0, 12, 17])[layer]
    size = np.array([12, 5, 3])[layer]
    c = c.replace(a=first + c.a % size, b=first + c.b % size, layer=layer, outputs=[20, 18, 19, 20])
    c.save(tmp_path / "circuit.npz")
    row = bench.infer_worker("diffgates", 0, 0, 1, 3000, 1, str(tmp_path / "circuit.npz"))
    assert "error" not in row and row["model"] == "12->5->3->1->GroupSum(2)"
    seen = []
    monkeypatch.setattr(bench, "run_worker", lambda args, timeout: seen.append(args) or {"img_per_s": 1.0})
    assert main(["bench", "infer", "--circuit", str(tmp_path), "--impls", "diffgates", "--threads", "1"]) == 0
    assert seen and all(args[-1] == str(tmp_path / "circuit.npz") for args in seen)


def test_bench_infer_checks_and_times_bits_and_raw_features():
    # the worker in-process: one random network from bits, packed bits and features, each checked against the oracle
    row = bench.infer_worker("diffgates", 40, 60, 1, 3000, 1)
    assert "error" not in row and min(row["img_per_s"], row["img_per_s_packed"], row["img_per_s_features"]) > 0
    assert row["model"] == "40->6x60->GroupSum(10)"
    assert row["of_limit"] == pytest.approx(row["img_per_s"] / row["limit_img_per_s"])
    assert 1e8 / 40 < row["limit_img_per_s"] < 1e12 / 40  # one read of 40 input bytes per image
    assert 0 < row["ops_run"] <= row["gates_after"]  # gates, a fused pair counting once


def test_read_bandwidth_reads_the_whole_array_on_each_thread_count(monkeypatch):
    import numpy as np

    read, reduce = [], np.bitwise_or.reduce

    class Spy:  # numpy's bitwise_or, counting the bytes each reduction reads
        @staticmethod
        def reduce(part):
            read.append(part.nbytes)
            return reduce(part)

    monkeypatch.setattr(np, "bitwise_or", Spy)
    for threads in (1, 3):
        read.clear()
        assert bench.read_bandwidth(threads, mb=4) > 0
        assert sum(read) == 5 * (4 << 20) and len(read) == 5 * threads  # five timings of all 4 MB
