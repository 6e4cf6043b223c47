"""Downloads for users who are online: each file is checked against its published SHA-256.

A download goes to a temporary file beside its destination and is renamed into place only when
its digest matches, so a failed or tampered download never leaves a file that looks valid.
Nothing here runs unless asked (``diffgates download`` or ``--download``).
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import DiffgatesError
from ..paths import replacing
from ..progress import progress_bar


@dataclass(frozen=True)
class Remote:
    name: str
    sha256: str


_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_CIFAR = "https://www.cs.toronto.edu/~kriz/"

#: base URL and files of each downloadable dataset (digests as published with the files)
SOURCES: dict[str, tuple[str, list[Remote]]] = {
    "mnist": (
        _MNIST,
        [
            Remote("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
            Remote("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
            Remote("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
            Remote("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        ],
    ),
    "cifar10": (
        _CIFAR,
        [Remote("cifar-10-python.tar.gz", "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce")],
    ),
}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, dest: Path, sha256: str, quiet: bool = False, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` unless a file with the right digest is already there."""
    dest = Path(dest)
    if dest.is_file() and sha256_of(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    try:
        with replacing(dest) as tmp:
            with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
                total = int(r.headers.get("Content-Length") or 0) or None
                with progress_bar(quiet) as bar:
                    task = bar.add_task(f"download {dest.name}", total=total)
                    for block in iter(lambda: r.read(1 << 16), b""):
                        out.write(block)
                        h.update(block)
                        bar.update(task, advance=len(block))
            if h.hexdigest() != sha256:
                raise DiffgatesError(
                    f"{url} has SHA-256 {h.hexdigest()}, expected {sha256}; the download was discarded (try again "
                    "later or fetch the file by hand)."
                )
        return dest
    except (urllib.error.URLError, OSError) as e:
        raise DiffgatesError(f"cannot download {url}: {getattr(e, 'reason', None) or e}.") from e


def download(name: str, dest: str | Path, base_url: str | None = None, quiet: bool = False) -> Path:
    """Fetch dataset ``name`` (``mnist`` or ``cifar10``) into ``dest``; ``base_url`` picks a mirror."""
    if name not in SOURCES:
        raise DiffgatesError(f"no download for {name!r}; downloadable: {', '.join(SOURCES)}.")
    base, files = SOURCES[name]
    base = base_url or base
    dest = Path(dest)
    for f in files:
        fetch(base.rstrip("/") + "/" + f.name, dest / f.name, f.sha256, quiet)
    return dest
