"""Safe extraction of dataset archives (.tar, .tar.gz, .zip): nothing may land outside the target."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

from ..errors import DiffgatesError


def _inside(root: Path, name: str) -> Path:
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        raise DiffgatesError(f"archive member {name!r} would be written outside {root}; refusing to extract.")
    return target


def safe_extract(archive: str | Path, dest: str | Path) -> list[Path]:
    """Extract ``archive`` into ``dest``; refuses absolute paths, '..' escapes, links and devices."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    written = []
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    _inside(root, info.filename)
                for info in z.infolist():
                    written.append(Path(z.extract(info, root)))
            return written
        with tarfile.open(archive) as t:
            members = t.getmembers()
            for m in members:
                _inside(root, m.name)
                if not (m.isfile() or m.isdir()):
                    raise DiffgatesError(f"archive member {m.name!r} is a link or device; refusing to extract.")
            for m in members:
                extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.10.12
                t.extract(m, root, set_attrs=False, **extra)
                written.append(root / m.name)
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as e:
        raise DiffgatesError(f"cannot extract {archive}: {e}.") from e
    return written
