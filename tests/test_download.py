"""Download: verified by content checksum, sources tried in order, nothing half-written.

HTTP cases run against a loopback server (no network here; users have one)."""

import gzip
import http.server
import threading
from pathlib import Path

import pytest

from imgclf.data.sources import DownloadError, fetch_all
from tests.conftest import real_fashion_mnist_dirs


@pytest.fixture
def http_server(tmp_path):
    """Serves files from a directory; paths in `overrides` serve fixed bytes instead."""
    root = tmp_path / "www"
    root.mkdir()
    overrides: dict[str, bytes] = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def do_GET(self):
            if self.path in overrides:
                body = overrides[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root, overrides
    server.shutdown()
    server.server_close()


def _no_temp_files(dest: Path):
    return [p.name for p in dest.iterdir() if p.name.startswith(".")] == []


def test_local_directory_source_is_verified(idx_dir, tmp_path):
    src, sums = idx_dir
    dest = tmp_path / "raw"
    report = fetch_all(sums, [str(src)], dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted(sums)
    assert set(report.files.values()) == {str(src)}


def test_checksum_mismatch_falls_through_to_next_source(idx_dir, tmp_path):
    src, sums = idx_dir
    bad = tmp_path / "bad-mirror"
    bad.mkdir()
    for name in sums:
        (bad / name).write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07"))
    dest = tmp_path / "raw"
    report = fetch_all(sums, [str(bad), str(src)], dest)
    assert set(report.files.values()) == {str(src)}
    assert len(report.failures) == 4 and all("checksum mismatch" in f for f in report.failures)
    assert _no_temp_files(dest)


def test_no_source_works_error_names_each_source_and_reason(idx_dir, tmp_path):
    _, sums = idx_dir
    wrong = dict(sums, **{"train-labels-idx1-ubyte.gz": "0" * 64})
    missing = tmp_path / "nowhere"
    dest = tmp_path / "raw"
    with pytest.raises(DownloadError) as err:
        fetch_all(wrong, [str(missing), str(idx_dir[0])], dest)
    msg = str(err.value)
    assert "train-labels-idx1-ubyte.gz" in msg
    assert f"{missing}: {missing}/train-labels-idx1-ubyte.gz does not exist" in msg
    assert "checksum mismatch" in msg
    assert not (dest / "train-labels-idx1-ubyte.gz").exists() and _no_temp_files(dest)


def test_http_source_with_html_and_truncated_gzip_mirrors(idx_dir, tmp_path, http_server):
    src, sums = idx_dir
    url, root, overrides = http_server
    names = list(sums)
    for name in names:
        (root / name).write_bytes((src / name).read_bytes())
    good = (src / names[0]).read_bytes()
    overrides[f"/html/{names[0]}"] = b"<!DOCTYPE html><html><body>Access denied</body></html>"
    overrides[f"/trunc/{names[0]}"] = good[: len(good) // 2]
    dest = tmp_path / "raw"
    report = fetch_all({names[0]: sums[names[0]]}, [f"{url}/html", f"{url}/trunc", url], dest, retries=0)
    assert report.files == {names[0]: url}
    assert "expected gzip data but got an HTML page" in report.failures[0]
    assert "corrupt or truncated gzip" in report.failures[1]
    assert _no_temp_files(dest)


def test_http_404_and_unreachable_are_reported(idx_dir, tmp_path, http_server):
    _, sums = idx_dir
    url, _, _ = http_server
    name = next(iter(sums))
    with pytest.raises(DownloadError) as err:
        fetch_all({name: sums[name]}, [url, "http://127.0.0.1:9"], tmp_path / "raw", retries=0, timeout=2)
    assert "HTTP 404" in str(err.value) and "http://127.0.0.1:9: cannot connect" in str(err.value)


@pytest.mark.parametrize("directory", real_fashion_mnist_dirs() or [None], ids=str)
def test_real_fashion_mnist_matches_published_content_checksums(tmp_path, directory):
    """Each local copy of the real data (the Debian package's, $FASHION_MNIST_DIR) has the content
    params.yaml's checksums name."""
    import yaml

    from tests.conftest import REPO
    if directory is None:
        pytest.skip("no local Fashion-MNIST (apt-get install dataset-fashion-mnist, or set FASHION_MNIST_DIR)")
    files = yaml.safe_load((REPO / "params.yaml").read_text())["download"]["files"]
    report = fetch_all(files, ["/nonexistent", str(directory)], tmp_path / "raw")
    assert report.files == {n: str(directory) for n in files}
