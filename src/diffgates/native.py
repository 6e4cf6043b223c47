"""Build and load the package's small C libraries with the machine's C compiler, on first use.

Each ``.c`` file next to its Python module is compiled once per source, flags and CPU into a
cache directory (:func:`diffgates.paths.cache_dir`; a temporary one with the cache off) and loaded with ctypes, which
releases the GIL during calls. No compiler means :class:`NativeUnavailable`, and callers fall back
to their plain implementations.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from .paths import cache_dir, scratch_dir

FLAGS = ["-O3", "-fopenmp", "-shared", "-fPIC", "-std=c11", "-Wall"]


_threads: int | None = None  # None: every core


#: the most threads any command or executor takes (more is a typo, and beyond what torch's thread pool accepts)
MAX_THREADS = 4096


def set_threads(n: int | None) -> None:
    """The thread count of the C libraries that do not follow torch's (the circuit executor)."""
    global _threads
    _threads = n


def threads() -> int:
    return _threads or os.cpu_count() or 1


class NativeUnavailable(RuntimeError):
    """No C compiler, or the build failed: the native path cannot be used here."""


def _cpu_flags_line() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return ""


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags as Linux lists them (``avx2``, ``avx512bw``, ...); none elsewhere."""
    return frozenset(_cpu_flags_line().partition(":")[2].split())


def _cpu_signature() -> str:
    return platform.machine() + _cpu_flags_line()


@functools.cache
def l2_cache_bytes() -> int:
    """The size of a core's L2 cache (Linux sysfs), 1 MiB where the system does not say."""
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if (index / "level").read_text().strip() == "2":
                size = (index / "size").read_text().strip().upper()
                scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
                return int(size.rstrip("KM")) * scale
        except (OSError, ValueError):
            break
    return 1 << 20


def available_memory() -> int:
    """Bytes that new allocations can take without swapping: Linux's MemAvailable (free memory and
    the cache it can reclaim), else the free pages, else 8 GiB where the system does not say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")


@functools.cache
def load(source: str | Path, march: str = "native", defines: tuple[str, ...] = ()) -> ctypes.CDLL:
    """Compile ``source`` if needed and return the loaded library (headers beside it count too).
    ``march``: the instruction set (gcc's ``-march``); the machine's own by default, an older one
    to test the plainer paths of code that picks its instructions at compile time. ``defines``:
    preprocessor definitions (``"NAME=VALUE"``), each set giving its own build."""
    source = Path(source)
    cc = compiler()
    if cc is None:
        raise NativeUnavailable("no C compiler found (install gcc or set CC)")
    flags = [*FLAGS, f"-march={march}", *(f"-D{d}" for d in defines)]
    text = source.read_bytes() + b"".join(h.read_bytes() for h in sorted(source.parent.glob("*.h")))
    key = hashlib.sha256(text + " ".join([cc, *flags]).encode() + _cpu_signature().encode()).hexdigest()[:16]
    out = (cache_dir() or scratch_dir()) / f"{source.stem}-{key}.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
        os.close(fd)
        try:  # a failed or interrupted build leaves nothing in the cache
            result = subprocess.run([cc, *flags, str(source), "-o", tmp, "-lm"], capture_output=True, text=True)
            if result.returncode != 0:
                raise NativeUnavailable(f"building {source.name} failed: {result.stderr.strip()[:2000]}")
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return ctypes.CDLL(str(out))


def available(source: str | Path) -> bool:
    """Whether ``source`` builds and loads here (else callers take their plain path)."""
    try:
        load(source)
        return True
    except NativeUnavailable:
        return False


def keep_freed_memory() -> None:
    """Ask glibc to reuse freed large blocks instead of returning them to the OS.

    Training allocates and frees the same multi-megabyte activations every step; by default
    glibc maps each afresh and the page faults cost more than the kernels. No-op elsewhere.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass
