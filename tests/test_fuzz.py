"""Property-based fuzzing of the command line: random and mutated configs, datasets, circuit files,
checkpoints and golden files. Whatever arrives, a command either succeeds or exits 2 (1 only for
eval's and verify's "disagrees" verdict) with one line and no traceback, changes nothing outside
its output directory, and leaves an existing output intact when it fails."""

import contextlib
import io
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from diffgates.cli import main
from diffgates.config import TrainConfig
from diffgates.outdir import mark

FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
TINY = {"epochs": 1, "widths": [20], "dataset": "digits"}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A trained run and its C export, shared by every example (copied before any mutation)."""
    root = tmp_path_factory.mktemp("fuzz")
    assert main(["train", "--epochs", "1", "--widths", "20", "--quiet", "--out", str(root / "run")]) == 0
    assert main(["compile", str(root / "run"), "--out", str(root / "export"), "--target", "c", "--vectors", "8"]) == 0
    return root


def snapshot(path: Path) -> dict:
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def cli(args: list[str], verdicts: tuple[int, ...] = ()) -> int:
    """Run the command in this process; check the exit code and that stderr is one clean line."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(a) for a in args])
    text = err.getvalue()
    assert "Traceback" not in text, text
    assert rc in (0, 2, *verdicts), (rc, text)
    if rc == 2:
        assert text.strip().startswith(("error:", "usage:")), text
    return rc


def old_output(work: Path) -> Path:
    """An existing diffgates output that a failed command must leave as it was."""
    out = work / "out"
    out.mkdir()
    mark(out, "run")
    (out / "old.txt").write_text("the previous result")
    return out


def check_outcome(work: Path, out: Path, before: dict, before_out: dict, rc: int) -> None:
    after = snapshot(work)
    outside = {k: v for k, v in after.items() if not str(k).startswith("out")}
    assert outside == {k: v for k, v in before.items() if not str(k).startswith("out")}
    if rc != 0:
        assert snapshot(out) == before_out
    assert not [p.name for p in work.iterdir() if p.name.endswith(".partial") or ".old" in p.name]


NASTY = st.sampled_from(
    [
        None,
        True,
        False,
        -1,
        0,
        1,
        2,
        3,
        0.5,
        -0.25,
        float("nan"),
        float("inf"),
        "",
        "x",
        "3",
        "1e-3",
        [],
        [0],
        [-1],
        [20],
        ["a"],
        [1.5],
        [1, 8, 8],
        {"a": 1},
        "8:3",
        ["8:3"],
        ["8:3:1:2"],
        ["x:y"],
        0.1,
        10,
        2**70,
        1e308,
        "truth4",
        "softmax16",
        "learned",
        "random",
        "hard",
        "gumbel",
        "cosine",
        "quantile",
        "gaussian",
    ]
)  # fmt: skip  (bad values, and good ones that make some combinations valid)
KEYS = st.sampled_from(sorted(f for f in TrainConfig.__dataclass_fields__ if f not in ("dataset", "data_dir")))


@settings(FUZZ, max_examples=60)
@given(
    changes=st.dictionaries(
        st.one_of(KEYS, st.sampled_from(["no_such_option", 1, None])), NASTY, min_size=1, max_size=2
    )
)
def test_fuzz_train_configs(sandbox, changes):
    with tempfile.TemporaryDirectory(dir=sandbox) as tmp:
        work = Path(tmp)
        (work / "c.yaml").write_text(yaml.safe_dump({**TINY, **changes}, sort_keys=False))
        out = old_output(work)
        before, before_out = snapshot(work), snapshot(out)
        rc = cli(["train", "--config", work / "c.yaml", "--out", out, "--overwrite", "--quiet"])
        check_outcome(work, out, before, before_out, rc)


ARRAYS = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.int64, np.float32, np.float64, np.bool_, np.dtype("U2")]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
)
KEYS_NPZ = ("x_train", "y_train", "x_test", "y_test")


@settings(FUZZ, max_examples=60)
@given(arrays=st.dictionaries(st.sampled_from(KEYS_NPZ), ARRAYS, max_size=4), junk=st.none() | st.binary(max_size=64))
def test_fuzz_datasets(sandbox, arrays, junk):
    rng = np.random.default_rng(0)
    base = {"x_train": rng.random((12, 4)), "y_train": np.arange(12) % 2, "x_test": rng.random((6, 4))}
    base["y_test"] = np.arange(6) % 2
    with tempfile.TemporaryDirectory(dir=sandbox) as tmp:
        work = Path(tmp)
        data = work / "d.npz"
        if junk is not None:
            data.write_bytes(junk)
        else:
            np.savez(data, **{**base, **arrays})
        out = old_output(work)
        before, before_out = snapshot(work), snapshot(out)
        rc = cli(["train", "--dataset", data, "--epochs", "1", "--widths", "2", "--quiet", "--out", out, "--overwrite"])
        check_outcome(work, out, before, before_out, rc)


def mutate_npz(path: Path, data) -> None:
    """Replace, drop or add one field of an .npz file, by hypothesis' choice."""
    with np.load(path, allow_pickle=False) as z:
        fields = {k: z[k] for k in z.files}
    key = data.draw(st.sampled_from(sorted(fields) + ["extra"]))
    action = data.draw(st.sampled_from(["drop", "array", "scale", "shuffle"]))
    if action == "drop":
        fields.pop(key, None)
    elif action == "array":
        fields[key] = data.draw(ARRAYS)
    elif key in fields and fields[key].dtype.kind in "iuf":
        a = fields[key].astype(np.float64)
        if action == "scale":
            with np.errstate(invalid="ignore"):  # 0 * inf is meant to make NaN
                a = a * data.draw(st.sampled_from([-1, 0, 2, 1e12, np.nan, np.inf]))
        else:
            a = np.random.default_rng(data.draw(st.integers(0, 9))).permutation(a.reshape(-1)).reshape(a.shape)
        fields[key] = a
    np.savez(path, **fields)


def run_readers(work: Path, run: Path) -> None:
    """The commands that read a run directory, each checked as :func:`check_outcome` says."""
    out = old_output(work)
    for args, verdicts in (
        (["info", run], ()),
        (["eval", run], (1,)),  # exit 1: the circuit disagrees with the model
        (["compile", run, "--out", out, "--overwrite", "--target", "c", "--vectors", "8"], ()),
    ):
        before, before_out = snapshot(work), snapshot(out)
        check_outcome(work, out, before, before_out, cli(args, verdicts))


@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_fuzz_circuit_files(sandbox, data):
    with tempfile.TemporaryDirectory(dir=sandbox) as tmp:
        work = Path(tmp)
        run = work / "run"
        shutil.copytree(sandbox / "run", run)
        mutate_npz(run / "circuit.npz", data)
        run_readers(work, run)


@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_fuzz_checkpoints(sandbox, data):
    with tempfile.TemporaryDirectory(dir=sandbox) as tmp:
        work = Path(tmp)
        run = work / "run"
        shutil.copytree(sandbox / "run", run)
        path = run / "model.safetensors"
        raw = bytearray(path.read_bytes())
        how = data.draw(st.sampled_from(["truncate", "flip", "header"]))
        if how == "truncate":
            raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
        elif how == "flip":
            for i in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=8)):
                raw[i] ^= 0xFF
        else:  # within the JSON header: metadata and tensor shapes
            header = int.from_bytes(raw[:8], "little")
            i = data.draw(st.integers(8, 8 + header - 1))
            raw[i] = data.draw(st.sampled_from(b'0129"{}[],:x '))
        path.write_bytes(bytes(raw))
        run_readers(work, run)


@settings(FUZZ, max_examples=15)
@given(
    name=st.sampled_from(["golden_counts.txt", "golden_features.txt"]),
    text=st.one_of(
        st.text(alphabet="0123456789 .-e\nnaif", max_size=80),
        st.lists(st.lists(st.integers(-3, 40), min_size=10, max_size=10), min_size=8, max_size=8).map(
            lambda rows: "".join(" ".join(map(str, r)) + "\n" for r in rows)
        ),
    ),
)
def test_fuzz_golden_files(sandbox, name, text):
    with tempfile.TemporaryDirectory(dir=sandbox) as tmp:
        work = Path(tmp)
        export = work / "out"
        shutil.copytree(sandbox / "export", export)
        (export / name).write_text(text)
        before = snapshot(work)
        cli(["verify", export], (1,))  # exit 1: mismatches found
        assert snapshot(work) == before
