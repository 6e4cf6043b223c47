import io
import tarfile
import zipfile

import pytest

from diffgates import DiffgatesError
from diffgates.data.archive import safe_extract


def make_tar(path, members):
    with tarfile.open(path, "w:gz") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def test_normal_archives_extract(tmp_path):
    make_tar(tmp_path / "a.tar.gz", [("d/x.bin", b"123"), ("y.bin", b"4")])
    safe_extract(tmp_path / "a.tar.gz", tmp_path / "out")
    assert (tmp_path / "out" / "d" / "x.bin").read_bytes() == b"123"
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as z:
        z.writestr("z/w.txt", "hi")
    safe_extract(tmp_path / "b.zip", tmp_path / "out2")
    assert (tmp_path / "out2" / "z" / "w.txt").read_text() == "hi"


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil-abs.txt", "d/../../evil.txt"])
def test_paths_leaving_the_target_are_refused_and_nothing_is_written(tmp_path, name):
    make_tar(tmp_path / "bad.tar.gz", [("ok.txt", b"fine"), (name, b"boom")])
    with pytest.raises(DiffgatesError, match="outside"):
        safe_extract(tmp_path / "bad.tar.gz", tmp_path / "out")
    assert not (tmp_path / "out" / "ok.txt").exists()  # checked before anything is written
    assert not (tmp_path / "evil.txt").exists()


def test_zip_slip_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as z:
        z.writestr("../evil.txt", "boom")
    with pytest.raises(DiffgatesError, match="outside"):
        safe_extract(tmp_path / "bad.zip", tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_links_are_refused(tmp_path):
    with tarfile.open(tmp_path / "link.tar", "w") as t:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        t.addfile(info)
    with pytest.raises(DiffgatesError, match="link or device"):
        safe_extract(tmp_path / "link.tar", tmp_path / "out")
