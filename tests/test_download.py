"""Downloads: cached, hash-checked, atomic, and quick to fail offline (loopback servers only)."""

import hashlib
import http.server
import socket
import threading
import time

import pytest

from imagegen.data import ChecksumError, download
from imagegen.network import OfflineError, is_reachable

PAYLOAD = b"weights " * 5000
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server():
    """A loopback HTTP server serving PAYLOAD at /weights.bin and counting requests."""
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            requests.append(self.path)
            if self.path != "/weights.bin":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)

        def log_message(self, *arguments):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


def files_in(folder):
    return sorted(path.name for path in folder.rglob("*") if path.is_file())


def test_download_verifies_caches_and_returns_the_file(server, private_cache):
    base, requests = server
    path = download(f"{base}/weights.bin", PAYLOAD_SHA256, progress=False)
    assert path.read_bytes() == PAYLOAD and path.parent == private_cache / "downloads"
    assert download(f"{base}/weights.bin", PAYLOAD_SHA256, progress=False) == path
    assert requests == ["/weights.bin"]  # the second call came from the cache


def test_hash_mismatch_raises_and_leaves_nothing(server, private_cache):
    base, _ = server
    with pytest.raises(ChecksumError, match="expected"):
        download(f"{base}/weights.bin", "0" * 64, progress=False)
    assert files_in(private_cache) == []


def test_corrupted_cache_is_downloaded_again(server, private_cache):
    base, requests = server
    path = download(f"{base}/weights.bin", PAYLOAD_SHA256, progress=False)
    path.write_bytes(b"truncated")
    assert download(f"{base}/weights.bin", PAYLOAD_SHA256, progress=False).read_bytes() == PAYLOAD
    assert len(requests) == 2


def test_server_error_leaves_nothing(server, private_cache):
    base, _ = server
    with pytest.raises(OSError):
        download(f"{base}/missing.bin", PAYLOAD_SHA256, progress=False)
    assert files_in(private_cache) == []


def test_offline_download_fails_at_once_naming_url_and_cache_path(monkeypatch, private_cache):
    monkeypatch.setenv("IMAGEGEN_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(OfflineError) as failure:
        download("https://example.invalid/models/unet.h5", "a" * 64)
    assert time.perf_counter() - start < 1
    message = str(failure.value)
    assert "https://example.invalid/models/unet.h5" in message and str(private_cache / "downloads" / "unet.h5") in message
    assert files_in(private_cache) == []


def test_a_hanging_host_times_out(monkeypatch):
    """A connection that never answers (dropped packets, DNS that hangs) still returns within the timeout."""
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: time.sleep(30))
    start = time.perf_counter()
    assert is_reachable("https://hangs.example", timeout=1.0) is False
    assert time.perf_counter() - start < 3


def test_a_refused_port_is_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: connections are refused
        assert is_reachable(f"http://127.0.0.1:{port}/", timeout=2.0) is False


def test_a_listening_host_is_reachable(server):
    base, _ = server
    assert is_reachable(base, timeout=2.0)


def test_a_pin_is_required():
    with pytest.raises(ValueError, match="sha256"):
        download("https://example.invalid/x.bin", "")
