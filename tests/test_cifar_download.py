"""CIFAR-10 python batches and checked downloads, with generated files served from loopback."""

import hashlib
import http.server
import pickle
import tarfile
import threading
from functools import partial

import numpy as np
import pytest

from diffgates import DiffgatesError
from diffgates.cli import main
from diffgates.data import download as dl
from diffgates.data import load_dataset
from diffgates.data.cifar import read_batch
from test_data import write_fake_mnist


def write_batch(path, rng, n):
    d = {
        b"batch_label": b"generated",
        b"labels": rng.integers(0, 10, n).tolist(),
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"img%d.png" % i for i in range(n)],
    }
    path.write_bytes(pickle.dumps(d, protocol=2))
    return d


def write_fake_cifar(root, rng):
    batches = root / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    written = [write_batch(batches / f"data_batch_{i}", rng, 7) for i in range(1, 6)]
    written.append(write_batch(batches / "test_batch", rng, 5))
    return written


def test_cifar10_loader_reads_the_python_batches(tmp_path, rng):
    written = write_fake_cifar(tmp_path, rng)
    ds = load_dataset("cifar10", str(tmp_path))
    assert ds.x_train.shape == (35, 3072) and ds.x_test.shape == (5, 3072)
    assert np.array_equal(ds.x_train[7], written[1][b"data"][0] / np.float32(255))
    assert ds.y_test.tolist() == written[5][b"labels"]


def test_cifar10_loader_extracts_the_archive(tmp_path, rng):
    src = tmp_path / "src"
    write_fake_cifar(src, rng)
    data = tmp_path / "data"
    data.mkdir()
    with tarfile.open(data / "cifar-10-python.tar.gz", "w:gz") as t:
        t.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    assert load_dataset("cifar10", str(data)).x_train.shape == (35, 3072)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_batch_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Evil(), b"labels": [1]}))
    with pytest.raises(DiffgatesError, match="not a CIFAR-10 python batch"):
        read_batch(path)


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def _pin(monkeypatch, name, root):
    """Point the dataset's digests at the generated files (the real ones pin the real files)."""
    base, files = dl.SOURCES[name]
    pinned = [dl.Remote(f.name, hashlib.sha256((root / f.name).read_bytes()).hexdigest()) for f in files]
    monkeypatch.setitem(dl.SOURCES, name, (base, pinned))


def test_mnist_download_verifies_and_loads(server, tmp_path, rng, monkeypatch):
    root, url = server
    write_fake_mnist(root, rng)
    _pin(monkeypatch, "mnist", root)
    dest = tmp_path / "mnist"
    assert main(["download", "mnist", "--dir", str(dest), "--base-url", url]) == 0
    assert load_dataset("mnist", str(dest)).x_train.shape == (50, 784)
    mtime = (dest / "train-images-idx3-ubyte.gz").stat().st_mtime_ns
    assert main(["download", "mnist", "--data-dir", str(dest), "--base-url", url]) == 0  # present and valid: kept
    assert (dest / "train-images-idx3-ubyte.gz").stat().st_mtime_ns == mtime


def test_download_with_wrong_checksum_fails_and_keeps_nothing(server, tmp_path, rng, monkeypatch, capsys):
    root, url = server
    write_fake_cifar(root / "src", rng)
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as t:
        t.add(root / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    dest = tmp_path / "cifar"
    # the real digest pins the real archive, so the generated one must be refused
    assert main(["download", "cifar10", "--dir", str(dest), "--base-url", url]) == 2
    assert "SHA-256" in capsys.readouterr().err
    assert not dest.exists() or list(dest.iterdir()) == []
    _pin(monkeypatch, "cifar10", root)
    assert main(["download", "cifar10", "--dir", str(dest), "--base-url", url]) == 0
    assert load_dataset("cifar10", str(dest)).x_test.shape == (5, 3072)


def test_download_from_a_dead_server_is_a_clear_error(tmp_path):
    with pytest.raises(DiffgatesError, match="cannot download"):
        dl.fetch("http://127.0.0.1:9/none", tmp_path / "f", "0" * 64, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_models_lists_the_paper_presets_with_gate_counts(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("mnist-s", "mnist-m", "mnist-l", "cifar10-s", "cifar10-m", "cifar10-b", "cifar10-l", "cifar10-g"):
        assert name in out
    # MNIST-S: 16, 48, 144 trees of 7 gates on 24x24, 10x10, 4x4 maps, then 20480 + 10240 + 5120 dense gates
    ours = 7 * (16 * 24 * 24 + 48 * 10 * 10 + 144 * 4 * 4) + 20480 + 10240 + 5120
    assert f"{ours:,}" in out and "147,000" in out
