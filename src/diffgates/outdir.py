"""Output directories and files that never lose data.

Every directory diffgates writes (a run, a merged ensemble, a CNN teacher, an export) carries a
marker file, ``.diffgates``, naming its kind. ``--overwrite`` replaces only such a directory, never
one that is an input of the same command, and never by deleting first: the new result is built in
a sibling directory (``.NAME.partial``) and renamed into place once complete, so a failure leaves
the old result as it was. While training writes a run, its marker names the process; no other
command replaces or resumes that run until the process ends. A ``.NAME.partial`` is never removed
while the process writing it runs, nor while it holds an interrupted run that ``diffgates train
--resume`` can finish.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import DiffgatesError

MARKER = ".diffgates"
RUN_KINDS = ("run", "ensemble", "teacher")  # what 'train', 'merge' and 'teacher' write
EXPORT_KINDS = ("export", "fpga")  # what 'compile' and 'fpga' write

#: files that identify directories written before the marker existed
_SIGNATURES = {
    "ensemble": ("ensemble.json",),
    "teacher": ("teacher.safetensors",),
    "run": ("config.yaml", "model.safetensors"),
    "export": ("compile.json", "golden_counts.txt"),
}


def kind_of(path: Path) -> str | None:
    """The kind of diffgates directory ``path`` is, or None if diffgates did not write it."""
    if (path / MARKER).is_file():
        kind = marker(path).get("kind")
        return kind if isinstance(kind, str) else None
    for kind, names in _SIGNATURES.items():
        if all((path / n).is_file() for n in names):
            return kind
    return None


def mark(path: Path, kind: str, **extra) -> None:
    (path / MARKER).write_text(json.dumps({"kind": kind, **extra}) + "\n")


def marker(path: Path) -> dict:
    try:
        data = json.loads((path / MARKER).read_text())
    except (ValueError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def check_output(out: Path, overwrite: bool, kinds: tuple[str, ...], inputs: Iterable = ()) -> bool:
    """Refuse an output directory that would lose data; True when it holds a result to replace.

    ``inputs`` are the files and directories the command reads: ``out`` may lie inside one (as
    ``RUN/export`` does) but may neither be one nor contain one."""
    here = out.resolve()
    for given in inputs:
        if given and _inside(Path(given).resolve(), here):
            raise DiffgatesError(f"--out {out} would replace {given}, which this command reads; pick another --out.")
    if not out.exists():
        return False
    if not out.is_dir():
        raise DiffgatesError(f"--out {out} is a file, not a directory; pick another --out.")
    if not any(out.iterdir()):
        return False
    if not overwrite:
        raise DiffgatesError(f"{out} already exists and is not empty; pick another --out or pass --overwrite.")
    kind = kind_of(out)
    if kind not in kinds:
        what = f"a diffgates {kind} directory" if kind else "files that diffgates did not write"
        wanted = "an export" if kinds == EXPORT_KINDS else "a run"
        raise DiffgatesError(
            f"{out} holds {what}; --overwrite only replaces {wanted} directory that diffgates wrote, "
            "so pick another --out or move it away yourself."
        )
    _refuse_live_writer(marker(out), str(out))
    _check_partial(out)
    return True


def check_output_file(path: str | os.PathLike, overwrite: bool, inputs: Iterable = ()) -> Path:
    """Refuse, before any work, an output file that is one of the command's ``inputs``, exists
    without ``overwrite``, is a directory, or has no folder to go in."""
    out = Path(path)
    if out.exists() and any(Path(i).exists() and Path(i).resolve() == out.resolve() for i in inputs):
        raise DiffgatesError(f"{out} is the input; write elsewhere.")
    if out.exists() and not overwrite:
        raise DiffgatesError(f"{out} exists; pass --overwrite to replace it.")
    if out.is_dir():
        raise DiffgatesError(f"{out} is a directory; name a file.")
    if not out.parent.is_dir():
        raise DiffgatesError(f"the folder of {out} does not exist.")
    return out


def partial_dir(out: Path) -> Path:
    """Where a result that will replace ``out`` is built."""
    return out.parent / f".{out.name}.partial"


def make_writable(path: Path, kind: str, **extra) -> None:
    """Create ``path`` (and its parents) with its marker, or say in one sentence why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        mark(path, kind, **extra)
    except OSError as e:
        raise DiffgatesError(f"cannot write to {path}: {e.strerror or e}.") from e


def _writer(info: dict) -> int | None:
    """The process on this machine that a marker names as writing its directory, if it still runs."""
    pid = info.get("pid")
    if not isinstance(pid, int) or pid == os.getpid() or info.get("host") != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # another user's process: it runs
        pass
    return pid


def _check_partial(out: Path) -> None:
    """Refuse to start replacing ``out`` while its ``.NAME.partial`` is still being written, or
    holds an interrupted run that ``--resume`` can finish; anything else diffgates left there may
    go."""
    work = partial_dir(out)
    if not work.exists():
        return
    info = marker(work)
    if info.get("replaces") != out.name:
        raise DiffgatesError(f"{work} exists and was not left by diffgates; move it away and run again.")
    _refuse_live_writer(info, f"the replacement of {out} in {work}", "pick another --out")
    if (work / "train_state.safetensors").is_file():
        raise DiffgatesError(
            f"{work} holds an interrupted run that would replace {out}; finish it with "
            f"'diffgates train --resume {work}', or delete it to start again."
        )


def _refuse_live_writer(info: dict, what: str, instead: str = "stop it first") -> None:
    """Refuse to touch ``what`` while the process its marker ``info`` names still writes it."""
    pid = _writer(info)
    if pid is not None:
        raise DiffgatesError(f"process {pid} is writing {what}; wait for it to finish or {instead}.")


def claim(path: Path) -> None:
    """Mark a directory that training writes as written by this process until :func:`finish`,
    refusing one that another process still writes (a run resumed twice)."""
    info = marker(path)
    _refuse_live_writer(info, str(path))
    if "kind" in info:
        mark(path, **{**info, "pid": os.getpid(), "host": socket.gethostname()})


def start_partial(out: Path, kind: str) -> Path:
    """A fresh ``.NAME.partial`` beside ``out``, marked as replacing it and as written by this
    process. An earlier one that diffgates left behind is removed, unless its process still runs
    or it holds a run to resume; anything else there is refused."""
    work = partial_dir(out)
    _check_partial(out)
    if work.exists():
        shutil.rmtree(work)
    make_writable(work, kind, replaces=out.name, pid=os.getpid(), host=socket.gethostname())
    return work


def _settle(path: Path, **extra) -> None:
    """Rewrite the marker of a directory in its final place: it no longer replaces anything nor
    names a process writing it (``extra`` is added)."""
    info = marker(path)
    for key in ("replaces", "pid", "host"):
        info.pop(key, None)
    if "kind" in info:
        mark(path, **info, **extra)


def swap_in(work: Path, out: Path) -> None:
    """Put the completed ``work`` directory where ``out`` is, by renames only: the old ``out`` is
    moved aside first and removed last."""
    old = out.parent / f".{out.name}.old{os.getpid()}"
    had_old = out.exists()
    if had_old:
        os.replace(out, old)
    try:
        os.replace(work, out)
    except OSError:
        if had_old:
            os.replace(old, out)
        raise
    _settle(out)
    if had_old:
        shutil.rmtree(old, ignore_errors=True)


def finish(work: Path) -> Path:
    """For a directory that :func:`start_partial` made: swap it into place and return where the
    result now is. Any other directory is already in place (its marker no longer names a writer)."""
    replaces = marker(work).get("replaces")
    if not replaces or not work.name.endswith(".partial"):
        _settle(work)
        return work
    out = work.parent / replaces
    swap_in(work, out)
    return out


def set_aside(work: Path, out: Path) -> Path:
    """Keep a failed ``work`` directory for inspection as ``NAME.failed`` beside ``out`` (which stays
    as it was), replacing only an earlier one that diffgates set aside; returns where it now is."""
    kept = out.parent / f"{out.name}.failed"
    if kept.exists() and not marker(kept).get("failed"):
        kept = out.parent / f"{out.name}.failed{os.getpid()}"
    elif kept.exists():
        shutil.rmtree(kept)
    os.replace(work, kept)
    _settle(kept, failed=True)
    return kept


@contextmanager
def staged(out: str | os.PathLike, overwrite: bool, kind: str, inputs: Iterable = ()) -> Iterator[Path]:
    """Yield a directory to write the result into; it becomes ``out`` only if the block completes.

    >>> with staged("runs/merged", overwrite, "ensemble", inputs=runs) as work:
    ...     save(work / "model.safetensors")
    """
    out = Path(out)
    kinds = EXPORT_KINDS if kind in EXPORT_KINDS else RUN_KINDS
    check_output(out, overwrite, kinds, inputs)
    made = [d for d in [out.parent, *out.parent.parents] if not d.exists()]  # folders this call creates
    work = start_partial(out, kind)
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        for d in made:  # innermost first: a failure leaves no empty folders behind
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        raise
    swap_in(work, out)


def read_json(path: Path, what: str = "file"):
    """The JSON in ``path``, or one sentence saying it is missing or corrupt."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DiffgatesError(f"no {what} at {path}.") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise DiffgatesError(f"{path} is corrupt (not valid JSON: {e}); restore it or write it again.") from None


def read_jsonl(path: Path, what: str = "file") -> list[dict]:
    """One JSON object per line (blank lines skipped), or one sentence naming the bad line."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise DiffgatesError(f"no {what} at {path}.") from None
    except UnicodeDecodeError as e:
        raise DiffgatesError(f"{path} is corrupt (not text: {e}).") from None
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise DiffgatesError(f"{path} line {i} is corrupt (not valid JSON: {e}).") from None
        if not isinstance(row, dict):
            raise DiffgatesError(f"{path} line {i} is not a JSON object.")
        rows.append(row)
    return rows


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
