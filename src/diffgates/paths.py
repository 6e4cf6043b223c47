"""Where diffgates keeps things between runs: the one place that knows the cache and data folders."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_HOME = Path.home() / ".cache" / "diffgates"


def cache_dir() -> Path | None:
    """Built C libraries and teacher scores: ``$DIFFGATES_CACHE``, else ``~/.cache/diffgates``;
    None for ``DIFFGATES_CACHE=off`` (nothing is kept between runs)."""
    where = os.environ.get("DIFFGATES_CACHE", str(DEFAULT_HOME))
    return None if where == "off" else Path(where)


@functools.cache
def scratch_dir() -> Path:
    """A folder of this process's own, for what would be cached if the cache were on; removed
    when the process exits."""
    path = Path(tempfile.mkdtemp(prefix="diffgates-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def data_home() -> Path:
    """Where ``diffgates download`` puts datasets: ``$DIFFGATES_DATA``, else ``~/.cache/diffgates``."""
    return Path(os.environ.get("DIFFGATES_DATA") or DEFAULT_HOME)


def data_dirs(name: str) -> list[Path]:
    """Where dataset ``name`` is looked for after ``--data-dir``: ``$DIFFGATES_DATA/NAME``, then
    ``~/.cache/diffgates/NAME``."""
    return list(dict.fromkeys([data_home() / name, DEFAULT_HOME / name]))


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield where to write a file that replaces ``path``: a hidden sibling named for this process,
    created like any other file (the umask applies), renamed into place if the block completes and
    removed if it does not, so ``path`` is replaced whole or not at all."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
