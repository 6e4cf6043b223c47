import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import assert_same_circuit, random_model
from diffgates import Circuit, DiffgatesError, load_model, save_model
from diffgates.circuit import encode_bits
from diffgates.circuit.execute import pack_bits, predict_counts, run_numpy, unpack_bits
from diffgates.nn import to_circuit


@settings(max_examples=25, deadline=None)
@given(
    n_features=st.integers(2, 20),
    widths=st.lists(st.integers(1, 12), min_size=1, max_size=4),
    n_classes=st.integers(1, 4),
    bits=st.integers(1, 3),
    param=st.sampled_from(["softmax16", "truth4"]),
    batch=st.integers(1, 150),
    seed=st.integers(0, 10_000),
)
def test_discrete_model_equals_circuit_executor(n_features, widths, n_classes, bits, param, batch, seed):
    widths = [max(w * n_classes, 2) if i == len(widths) - 1 else max(w, 2) for i, w in enumerate(widths)]
    if widths[-1] % n_classes:
        widths[-1] = n_classes * max(1, widths[-1] // n_classes)
    model = random_model(n_features, widths, n_classes, bits, param, seed)
    x = np.random.default_rng(seed).normal(size=(batch, n_features)).astype(np.float32)
    circuit = to_circuit(model)
    expected = model.counts(torch.as_tensor(x)).numpy()
    assert np.array_equal(predict_counts(circuit, x), expected)


def test_pack_unpack_round_trip(rng):
    bits = rng.integers(0, 2, size=(131, 7), dtype=np.uint8)
    packed = pack_bits(bits)
    assert packed.shape == (7, 3) and packed.dtype == np.uint64
    assert np.array_equal(unpack_bits(packed, 131), bits)
    assert int(packed[0, 0]) & 1 == bits[0, 0]


def test_circuit_save_load_identical(tmp_path, rng):
    model = random_model()
    c = to_circuit(model)
    c.save(tmp_path / "c.npz")
    d = Circuit.load(tmp_path / "c.npz")
    assert_same_circuit(c, d)
    x = rng.normal(size=(70, 12))
    assert np.array_equal(predict_counts(c, x), predict_counts(d, x))


def test_the_argmax_flag_is_saved_and_older_files_read_as_classifiers(tmp_path):
    c = to_circuit(random_model()).replace(argmax=False)
    c.save(tmp_path / "values.npz")
    assert Circuit.load(tmp_path / "values.npz").argmax is False
    with np.load(tmp_path / "values.npz") as z:
        data = {k: v for k, v in z.items() if k != "argmax"}  # a file written before the flag
    np.savez(tmp_path / "old.npz", **data)
    assert Circuit.load(tmp_path / "old.npz").argmax is True
    with pytest.raises(DiffgatesError, match="argmax must be true or false"):
        c.replace(argmax=2)


def test_circuit_file_with_newer_version_is_refused(tmp_path):
    c = to_circuit(random_model())
    c.save(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as z:
        data = dict(z)
    data["version"] = np.array(99)
    np.savez(tmp_path / "new.npz", **data)
    with pytest.raises(DiffgatesError, match="version 99"):
        Circuit.load(tmp_path / "new.npz")


def test_truncated_circuit_file_is_a_clear_error(tmp_path):
    to_circuit(random_model()).save(tmp_path / "c.npz")
    raw = (tmp_path / "c.npz").read_bytes()
    (tmp_path / "bad.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DiffgatesError, match="not a readable circuit file"):
        Circuit.load(tmp_path / "bad.npz")
    (tmp_path / "image.npz").write_bytes(b"\x89PNG\r\n\x1a\n" + raw[8:])  # not an archive at all
    with pytest.raises(DiffgatesError, match="not a diffgates circuit file"):
        Circuit.load(tmp_path / "image.npz")


def test_circuit_validation_rejects_non_topological_gates():
    c = to_circuit(random_model())
    with pytest.raises(DiffgatesError, match="topological"):
        c.replace(a=np.full_like(c.a, c.n_signals - 1))


@pytest.mark.parametrize("param", ["softmax16", "truth4"])
def test_model_save_load_gives_identical_outputs(tmp_path, rng, param):
    model = random_model(param=param)
    save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors", engine="torch")  # same kernels as the original
    x = torch.as_tensor(rng.normal(size=(33, 12)), dtype=torch.float32)
    assert torch.equal(model(x), loaded(x))
    model.train()
    loaded.train()
    assert torch.equal(model(x), loaded(x))


def test_encoder_bits_match_model_encoder(rng):
    model = random_model()
    x = rng.normal(size=(40, 12)).astype(np.float32)
    c = to_circuit(model)
    assert np.array_equal(encode_bits(c, x), model.encoder(torch.as_tensor(x)).numpy().astype(np.uint8))


def test_executor_on_bits_with_no_layers_passes_inputs_through():
    model = random_model(widths=(6,), n_classes=2)
    c = to_circuit(model)
    bits = np.random.default_rng(0).integers(0, 2, size=(10, c.n_inputs), dtype=np.uint8)
    counts = run_numpy(c, bits)
    assert counts.shape == (10, 2) and counts.max() <= 3


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    n_inputs=st.integers(1, 200),
    n_gates=st.integers(0, 300),
    n_classes=st.integers(1, 4),
    group=st.integers(1, 40),
    batch=st.integers(1, 1100),
    threads=st.sampled_from([1, 2]),
)
def test_native_executor_equals_numpy_oracle(seed, n_inputs, n_gates, n_classes, group, batch, threads):
    from conftest import random_circuit
    from diffgates.circuit import program

    c = random_circuit(seed, n_inputs=n_inputs, n_gates=n_gates, n_classes=n_classes, group=group)
    bits = np.random.default_rng(seed).integers(0, 2, size=(batch, c.n_inputs), dtype=np.uint8)
    assert np.array_equal(program.run(program.prepare(c), bits, threads), run_numpy(c, bits))


def test_native_executor_counts_large_groups_exactly():
    from conftest import random_circuit
    from diffgates.circuit import program

    c = random_circuit(7, n_inputs=50, n_gates=400, n_classes=2, group=5000)
    bits = np.random.default_rng(0).integers(0, 2, size=(700, c.n_inputs), dtype=np.uint8)
    assert np.array_equal(program.run(program.prepare(c), bits), run_numpy(c, bits))


# each instruction-set path of executor.c (packing, counting): plain C, AVX2, AVX-512
@pytest.mark.parametrize("march,needs", [("x86-64", "sse2"), ("x86-64-v3", "avx2"), ("x86-64-v4", "avx512bw")])
def test_native_executor_equals_numpy_oracle_on_each_instruction_set(monkeypatch, march, needs):
    from conftest import build_for

    build_for(monkeypatch, march, needs)
    _executor_equals_oracle()


def _build_with(monkeypatch, *defines: str) -> None:
    """Every native build of this test takes ``defines`` in place of its own."""
    from diffgates import native

    load = native.load
    monkeypatch.setattr(native, "load", lambda source, march="native", **_: load(source, march, defines))


# the signal's width in 64-bit words (small batches and the instruction set pick it) and the part
# of it counted at a time (the whole signal with AVX-512, 4 words with AVX2)
@pytest.mark.parametrize("words,cwords", [(1, 1), (2, 2), (4, 4), (8, 4), (8, 8), (16, 4), (16, 16)])
def test_native_executor_equals_numpy_oracle_at_each_block_width(monkeypatch, words, cwords):
    _build_with(monkeypatch, f"WORDS={words}", f"CWORDS={cwords}")
    _executor_equals_oracle()


# the class counts' adder tree with 0 to 3 levels above the sixteens (the executor builds 2, the
# exported C 0): groups of 16 to 5,000 signals, so every level fills, waits half full or is empty
@pytest.mark.parametrize("levels", [0, 1, 2, 3])
def test_native_executor_counts_right_with_each_adder_tree_depth(monkeypatch, levels):
    from conftest import random_circuit
    from diffgates.circuit import program

    _build_with(monkeypatch, f"BS_LEVELS={levels}")
    for seed, group in [(0, 16), (1, 40), (2, 100), (3, 1000), (4, 5000)]:
        c = random_circuit(seed, n_inputs=60, n_gates=400, n_classes=3, group=group)
        bits = np.random.default_rng(seed).integers(0, 2, size=(700, c.n_inputs), dtype=np.uint8)
        assert np.array_equal(program.run(program.prepare(c), bits, 2), run_numpy(c, bits))


def test_a_program_of_more_than_65536_slots_runs_from_int32_slot_numbers():
    """Up to 65,536 slots, each gate's four slot numbers are 16-bit; above, the kernel's build for
    int32 ones runs them (here 66,000 input bits, each its own slot), at full and small batches."""
    from conftest import random_circuit
    from diffgates.circuit import program

    small = program.prepare(random_circuit(0, n_inputs=100, n_gates=300))
    assert small.operands.dtype == np.uint16 and np.array_equal(small.operands[:, 3], small.dst)
    c = random_circuit(1, n_features=21, n_inputs=66_000, n_gates=2000, n_classes=3, group=40)
    prog = program.prepare(c)
    assert prog.n_slots > 1 << 16 and prog.operands.dtype == np.int32
    bits = np.random.default_rng(1).integers(0, 2, size=(600, c.n_inputs), dtype=np.uint8)
    for batch in (600, 100):
        assert np.array_equal(program.run(prog, bits[:batch], 2), run_numpy(c, bits[:batch]))


def test_the_gates_prefetch_the_next_blocks_input_where_the_signal_buffer_fits_half_the_l2(monkeypatch):
    """The AHEAD build (each gate prefetches a line of the thread's next block of input rows) runs
    where the program's signal buffer takes at most half of the L2, the plain build elsewhere;
    both count right from every kind of input, over several blocks claimed by two threads."""
    from conftest import random_circuit
    from diffgates import native
    from diffgates.circuit import program

    builds, load = [], native.load

    def spy(source, march="native", defines=()):
        builds.append("AHEAD=1" in defines)
        return load(source, march, defines)

    monkeypatch.setattr(native, "load", spy)
    c = random_circuit(4, n_features=21, n_inputs=90, n_gates=300, n_classes=3, group=40)
    c = c.replace(in_threshold=np.linspace(-1, 256, c.n_inputs).astype(np.float32))
    prog = program.prepare(c)
    buffer = prog.n_slots * 64
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (2600, c.n_features), dtype=np.uint8)  # 5 blocks and part of one
    bits = encode_bits(c, pixels)
    expected = run_numpy(c, bits)
    for l2, ahead in [(2 * buffer, True), (2 * buffer - 64, False)]:
        monkeypatch.setattr(native, "l2_cache_bytes", lambda l2=l2: l2)
        assert program.prefetches_ahead(prog) == ahead
        for threads in (1, 2):
            builds.clear()
            assert np.array_equal(program.run(prog, bits, threads), expected)
            packed = np.packbits(bits, axis=1, bitorder="little")
            assert np.array_equal(program.run_packed(prog, packed, threads), expected)
            for x in [pixels, pixels.astype(np.float32)]:
                assert np.array_equal(program.run_features(prog, x, threads), expected)
            assert builds == [ahead] * 4
    # a batch of one block has no next one: the narrow builds, which never prefetch
    builds.clear()
    assert np.array_equal(program.run(prog, bits[:200], 2), expected[:200]) and builds == [False]


# up to 16 classes go out 32 rows at a time through lane permutes, more a count at a time; the
# batches leave part of a group of 32 rows and part of a block
@pytest.mark.parametrize("n_classes", [1, 10, 16, 17])
def test_class_counts_reach_their_rows_for_any_number_of_classes(n_classes):
    from conftest import random_circuit
    from diffgates.circuit import program

    c = random_circuit(n_classes, n_inputs=40, n_gates=12 * n_classes + 200, n_classes=n_classes, group=12)
    prog = program.prepare(c)
    assert prog.out_offset.any() or n_classes == 1  # TRUE gates counted: offsets to add
    bits = np.random.default_rng(n_classes).integers(0, 2, size=(1100, c.n_inputs), dtype=np.uint8)
    expected = run_numpy(c, bits)
    for batch, threads in [(1100, 2), (1100, 1), (75, 1)]:
        assert np.array_equal(program.run(prog, bits[:batch], threads), expected[:batch])
    # labels found in the kernel: the first class of the largest count, as argmax; ties among them
    x = np.random.default_rng(n_classes).normal(size=(1100, c.n_features)).astype(np.float32)
    expected = run_numpy(c, encode_bits(c, x))
    assert n_classes == 1 or ((expected == expected.max(1, keepdims=True)).sum(1) > 1).mean() > 0.05
    for batch, threads in [(1100, 2), (1100, 1), (75, 1), (17, 1)]:
        labels = program.run_features(prog, x[:batch], threads, labels=True)
        assert labels.dtype == np.int64 and np.array_equal(labels, expected[:batch].argmax(1))


def test_small_batches_take_the_narrowest_block_and_count_right(monkeypatch):
    from conftest import random_circuit
    from diffgates import native
    from diffgates.circuit import program

    widths, load = [], native.load

    def spy(source, march="native", defines=()):
        widths.append(dict(d.split("=") for d in defines).get("WORDS", "default"))
        return load(source, march, defines)

    monkeypatch.setattr(native, "load", spy)
    c = random_circuit(3, n_features=21, n_inputs=90, n_gates=300, n_classes=3, group=40)
    c = c.replace(in_threshold=np.linspace(-1, 256, c.n_inputs).astype(np.float32))
    prog = program.prepare(c)
    rng = np.random.default_rng(3)
    for batch, words in [(1, "1"), (64, "1"), (65, "2"), (128, "2"), (200, "4"), (256, "4"), (257, "default")]:
        pixels = rng.integers(0, 256, (batch, c.n_features), dtype=np.uint8)
        for x in [pixels, pixels.astype(np.float32)]:  # fewer rows than a block: zero-padded columns
            widths.clear()
            assert np.array_equal(program.run_features(prog, x, 2), run_numpy(c, encode_bits(c, x)))
            assert widths == [words]
        bits = encode_bits(c, pixels)
        assert np.array_equal(program.run(prog, bits, 1), run_numpy(c, bits))


def every_gate_pair() -> Circuit:
    """Each pair of gates g(s, x) and g(x, s), s = op(x_p, x_q) read by g alone, for all 16 x 16
    ops and every choice of p, q and x among three inputs (shared inputs included); class k counts
    pair k's g alone, so one wrong truth-table bit shows in one count."""
    import itertools

    ops, a, b = [], [], []
    for op_s, op_g, side, (p, q, r) in itertools.product(
        range(16), range(16), (0, 1), itertools.product(range(3), repeat=3)
    ):
        s = 3 + len(ops)
        ops += [op_s, op_g]
        a += [p, s if side == 0 else r]
        b += [q, r if side == 0 else s]
    return on_three_inputs(ops, a, b, outputs=np.arange(4, 3 + len(ops), 2), layer=np.zeros(len(ops), dtype=np.int64))


def on_three_inputs(ops, a, b, outputs, layer) -> Circuit:
    """A circuit of three input bits (feature j > 0), each output its own class."""
    return Circuit(
        n_features=3,
        in_feature=np.arange(3),
        in_threshold=np.zeros(3, dtype=np.float32),
        ops=ops,
        a=a,
        b=b,
        outputs=outputs,
        layer=layer,
        n_classes=len(outputs),
    ).validate()


#: every pattern of three input bits, 80 times over (640 samples: a block and part of one)
EIGHT_PATTERNS = np.array([[(v >> j) & 1 for j in range(3)] for v in range(8)] * 80, dtype=np.uint8)


def test_gate_pairs_fuse_into_three_input_functions_that_count_right():
    """Pairs fuse (the executor's program holds three-input functions and fewer gates), the
    exported C's program does not; both count each pair right on every input pattern."""
    from diffgates.circuit import program

    c = every_gate_pair()
    bits = EIGHT_PATTERNS
    fused, plain = program.prepare(c), program.prepare(c, ternary=False)
    n_fused = fused.run_len[fused.run_op >= program.TERNARY].sum()
    assert n_fused > 5000 and fused.n_gates == plain.n_gates - n_fused
    assert (plain.run_op < 16).all()
    for prog in (fused, plain):
        assert np.array_equal(program.run(prog, bits), run_numpy(c, bits))


def test_a_gate_two_plain_gates_read_is_copied_into_both_as_three_input_functions():
    """s = op_s(x0, x1), read by g = op_g(s, x2) and h = op_h(x2, s) and nothing else, for every
    op_s and every two-input op_g (op_h another): each triple runs as two three-input functions
    (one op fewer), and every output counts right on every input pattern."""
    import itertools

    from diffgates.circuit import program

    two_input = [1, 2, 4, 6, 7, 8, 9, 11, 13, 14]  # the ops that read both inputs
    ops, a, b, outputs = [], [], [], []
    for op_s, k in itertools.product(range(16), range(len(two_input))):
        s = 3 + len(ops)
        ops += [op_s, two_input[k], two_input[(k + 3) % len(two_input)]]
        a += [0, s, 2]
        b += [1, 2, s]
        outputs += [s + 1, s + 2]
    c = on_three_inputs(ops, a, b, outputs, layer=np.tile([0, 1, 1], len(ops) // 3))
    prog = program.prepare(c)
    assert prog.n_gates == len(outputs) and (prog.run_op >= program.TERNARY).all()
    bits = EIGHT_PATTERNS
    assert np.array_equal(program.run(prog, bits), run_numpy(c, bits))


def test_constant_outputs_are_added_not_counted():
    """Outputs that are constants (here after optimisation) add to the counts' offsets: the
    executor reads no slot for them."""
    from diffgates import gates
    from diffgates.circuit import program
    from diffgates.circuit.passes import optimize

    c = Circuit(
        n_features=2,
        in_feature=[0, 1],
        in_threshold=[0, 0],
        ops=[gates.FALSE, gates.TRUE, gates.XOR, gates.XNOR],  # XOR(x, x) = FALSE, XNOR(x, x) = TRUE
        a=[0, 0, 1, 1],
        b=[0, 0, 1, 1],
        outputs=[2, 3, 3, 4, 5, 3],
        layer=[0, 0, 0, 0],
        n_classes=2,
    ).validate()
    opt, _ = optimize(c)
    prog = program.prepare(opt)
    assert (prog.out_idx == prog.n_slots - 1).all()
    bits = np.array([[0, 0], [1, 0]] * 40, dtype=np.uint8)
    counts = program.run_features(prog, bits.astype(np.float32))  # the optimised circuit reads no input
    assert np.array_equal(counts, run_numpy(c, bits)) and counts[0].tolist() == [2, 2]


def _executor_equals_oracle():
    from conftest import random_circuit
    from diffgates.circuit import program

    c = every_gate_pair()  # the three-input functions
    bits = EIGHT_PATTERNS
    assert np.array_equal(program.run(program.prepare(c), bits, 2), run_numpy(c, bits))

    # partial 64-byte chunks (57 = 32 + 16 + 9 bytes) and blocks; 21 features: 8 x 8 blocks and a
    # remainder; packed rows of 32, 8 and 1 bytes, and of 76 (a 64-byte span and part of one)
    for seed, n_inputs, batch in [(0, 249, 1100), (1, 64, 513), (2, 7, 64), (3, 601, 77)]:
        c = random_circuit(seed, n_features=21, n_inputs=n_inputs, n_gates=300, n_classes=3, group=40)
        rng = np.random.default_rng(seed)
        bits = rng.integers(0, 2, size=(batch, c.n_inputs), dtype=np.uint8)
        prog = program.prepare(c)
        expected = run_numpy(c, bits)
        assert np.array_equal(program.run(prog, bits, 2), expected)
        packed = np.packbits(bits, axis=1, bitorder="little")
        if c.n_inputs % 8:  # the last byte's bits past the last input are ignored
            packed[:, -1] |= np.uint8(0xFF << (c.n_inputs % 8) & 0xFF)
        assert np.array_equal(program.run_packed(prog, packed, 2), expected)
        # raw features, encoded inside the kernel: pixels (thresholds between and on the integers) and floats
        c = c.replace(in_threshold=rng.choice([-1.0, 0.0, 0.5, 3.0, 7.5, 254.5, 255.0], c.n_inputs).astype(np.float32))
        prog = program.prepare(c)
        pixels = rng.integers(0, 256, (batch, c.n_features), dtype=np.uint8)
        for x in [pixels, pixels.astype(np.float32), rng.normal(3, 4, (batch, c.n_features)).astype(np.float32)]:
            expected = run_numpy(c, encode_bits(c, x))
            assert np.array_equal(program.run_features(prog, x, 2), expected)
            assert np.array_equal(program.run_features(prog, x, 2, labels=True), expected.argmax(1))


@pytest.mark.parametrize("refused", [0, 1])
def test_a_thread_refused_its_buffers_fails_the_call_with_memory_error(monkeypatch, refused):
    from conftest import random_circuit
    from diffgates.circuit import program

    _build_with(monkeypatch, f"BUFFERS_FAIL={refused}")
    c = random_circuit(0, n_inputs=20, n_gates=30, n_classes=2, group=5)
    bits = np.zeros((5000, 20), dtype=np.uint8)
    with pytest.raises(MemoryError, match="could not allocate"):
        program.run(program.prepare(c), bits, 2)


def test_each_class_is_counted_after_its_own_gates_and_frees_their_slots():
    """The executor's program runs the gates only one class counts last, class by class, and
    counts each class right after its own: a class counted before the last run, a smaller signal
    buffer than counting every class at the end, and both count right (blocks on two threads)."""
    from diffgates.bench import random_network
    from diffgates.circuit import program
    from diffgates.circuit.passes import optimize

    c, _ = optimize(random_network(60, [300] * 4, k=5, seed=3))
    in_turn, last = program.prepare(c), program.prepare(c, classes_in_turn=False)
    n_runs = len(in_turn.run_op)
    assert (np.diff(in_turn.count_after) > 0).all() and in_turn.count_after[-1] == n_runs
    assert (last.count_after == len(last.run_op)).all()
    assert in_turn.n_slots < last.n_slots
    bits = np.random.default_rng(0).integers(0, 2, (1500, c.n_inputs), dtype=np.uint8)
    for prog in (in_turn, last):
        assert np.array_equal(program.run(prog, bits, 2), run_numpy(c, bits))


def test_the_instrumented_executor_times_each_phase_of_every_block(monkeypatch):
    """The PHASES build (benchmarks/executor_phases.py) counts every row run, over blocks and
    threads, with time in each of its four phases, and still counts right."""
    import ctypes

    from conftest import random_circuit
    from diffgates.circuit import program

    _build_with(monkeypatch, "PHASES=1")
    c = random_circuit(0, n_inputs=70, n_gates=300, n_classes=3, group=40)
    bits = np.random.default_rng(0).integers(0, 2, (1500, 70), dtype=np.uint8)
    lib = program._library(len(bits))
    seconds, rows = (ctypes.c_double * 4)(), ctypes.c_int64()
    lib.executor_phases(seconds, ctypes.byref(rows))  # from zero
    for _ in range(2):
        assert np.array_equal(program.run(program.prepare(c), bits, 2), run_numpy(c, bits))
    lib.executor_phases(seconds, ctypes.byref(rows))
    assert rows.value == 2 * len(bits) and all(s > 0 for s in seconds)
    lib.executor_phases(seconds, ctypes.byref(rows))
    assert rows.value == 0 and not any(seconds)


def test_packed_bits_are_checked_before_the_executor_reads_them():
    from conftest import random_circuit
    from diffgates.circuit import program

    prog = program.prepare(random_circuit(0, n_inputs=20, n_gates=30, n_classes=2, group=5))
    bits = np.zeros((4, 20), dtype=np.uint8)
    for bad in [bits, np.packbits(bits, axis=1)[:, :2], np.packbits(bits, axis=1).astype(np.int16)]:
        with pytest.raises(DiffgatesError, match=r"packed input bits, uint8 of shape \(batch, 3\)"):
            program.run_packed(prog, bad)


def test_input_bits_of_any_type_count_alike_and_values_besides_0_and_1_are_refused(rng):
    from conftest import random_circuit
    from diffgates.circuit import program

    c = random_circuit(0, n_inputs=20, n_gates=60, n_classes=2, group=5)
    prog = program.prepare(c)
    bits = rng.integers(0, 2, (700, 20), dtype=np.uint8)
    expected = run_numpy(c, bits)
    for same in [bits.astype(bool), bits.astype(np.int64), bits.astype(np.float32), np.asfortranarray(bits == 1)]:
        assert np.array_equal(program.run(prog, same, 2), expected), same.dtype
    wide = bits.astype(np.int64)
    for bad in [wide * 256, wide - 1, bits * 0.5]:  # 256 would wrap to 0 as a uint8
        with pytest.raises(DiffgatesError, match="input bits must be 0 or 1"):
            program.run(prog, bad)


def test_executor_api_matches_the_model(rng):
    from diffgates.circuit.program import Executor

    model = random_model(n_features=12, widths=(80, 60), n_classes=3)
    x = rng.normal(size=(700, 12)).astype(np.float32)
    ex = Executor(to_circuit(model), threads=2)
    expected = model.counts(torch.as_tensor(x)).numpy()
    assert np.array_equal(ex.counts(x), expected)
    assert np.array_equal(ex.predict(x), expected.argmax(1))
    bits = encode_bits(ex.circuit, x)
    assert np.array_equal(ex.counts_from_packed_bits(np.packbits(bits, axis=1, bitorder="little")), expected)
    assert ex.circuit.n_gates <= to_circuit(model).n_gates


def test_a_signal_counted_as_it_is_and_inverted_pairs_off_once_per_pair():
    """x counted three times and ~x twice leave one x; the pairs add 1 each."""
    from diffgates.circuit import program

    plus, minus, pairs = program._without_pairs(np.array([5, 3, 5, 7, 5]), np.array([5, 5, 9, 3, 3]))
    assert sorted(plus.tolist()) == [5, 7] and sorted(minus.tolist()) == [3, 9] and pairs == 3


def test_count_plan_skips_constant_outputs_and_absorbs_output_inverters():
    """FALSE/TRUE outputs become a constant, a NOT gate only the counts read is counted through its
    input inverted and never evaluated; a NOT gate another gate reads stays; a signal a class
    counts both as it is and inverted adds 1, and the gates behind it go. The executor agrees with
    the plain oracle on every input pattern (the C export, which shares the plan, is checked on
    random circuits with all 16 ops in test_backends)."""
    from diffgates import gates as G
    from diffgates.circuit import program

    # inputs 0..2; gates: 3 FALSE, 4 TRUE, 5 NOT_A(0), 6 NOT_B(1), 7 AND(6, 2), 8 NOT_A(7)
    c = Circuit(
        n_features=3,
        in_feature=np.arange(3),
        in_threshold=np.zeros(3, dtype=np.float32),
        ops=[G.FALSE, G.TRUE, G.NOT_A, G.NOT_B, G.AND, G.NOT_A],
        a=[0, 0, 0, 2, 6, 7],
        b=[1, 1, 1, 1, 2, 7],
        outputs=[3, 4, 5, 5, 6, 7, 8, 2],  # class 0: FALSE TRUE ~x0 ~x0; class 1: ~x1 AND ~AND x2
        layer=np.zeros(6, dtype=np.int64),
        n_classes=2,
    ).validate()
    plus, minus, n_true = program.count_plan(c)
    assert [p.tolist() for p in plus] == [[], [6, 2]]  # AND and ~AND: 1
    assert [m.tolist() for m in minus] == [[0, 0], []]
    assert n_true.tolist() == [1, 1]
    prog = program.prepare(c)
    assert prog.n_gates == 1  # NOT_B; constants, free inverters and the AND that cancelled are gone
    bits = EIGHT_PATTERNS
    assert np.array_equal(program.run(prog, bits), run_numpy(c, bits))


def test_float32_features_go_through_their_level_among_the_thresholds():
    """With AVX-512 the executor turns each float32 feature into its level (how many of the
    circuit's distinct thresholds for that feature it exceeds, a byte) and input j into level >=
    rank[j]: Program.levels must make that x > threshold for values on, just around and between
    the thresholds (duplicates, -0.0 beside 0.0); the counts then equal the oracle's. A feature
    with more than 255 thresholds (no byte holds its level) goes through float columns."""
    from conftest import random_circuit
    from diffgates.circuit import program

    rng = np.random.default_rng(7)
    c = random_circuit(7, n_features=37, n_inputs=300, n_gates=400, n_classes=3, group=40)
    c = c.replace(in_threshold=rng.choice([-1.5, -0.0, 0.0, 0.25, 2.0, 7.0], c.n_inputs).astype(np.float32))
    prog = program.prepare(c)
    table, at, rank = prog.levels
    t = prog.in_threshold
    values = np.unique(np.r_[t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf), -9.0, 9.0]).astype(np.float32)
    f = prog.in_feature
    for v in values:
        level = np.array([(v > table[at[g] : at[g + 1], i]).sum() for g, i in map(divmod, range(37), [16] * 37)])
        assert np.array_equal(level[f] >= rank, v > t), v
    x = rng.choice(values, (1100, 37))
    for dtype in (np.float32, np.float64):
        assert np.array_equal(program.run_features(prog, x.astype(dtype), 2), run_numpy(c, encode_bits(c, x)))

    many = c.replace(in_feature=np.zeros(c.n_inputs, dtype=np.int64), in_threshold=np.linspace(-2, 8, c.n_inputs))
    prog = program.prepare(many)
    assert prog.levels is None
    assert np.array_equal(program.run_features(prog, x, 2), run_numpy(many, encode_bits(many, x)))
