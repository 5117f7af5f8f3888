"""imagegen.network: forced offline mode and the one offline guard (no real network: refused loopback ports only)."""

import socket
import time

import pytest

from imagegen import network


def refused_url():
    """A loopback URL whose port is bound but not listening: connections are refused at once."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    return probe, f"http://127.0.0.1:{probe.getsockname()[1]}/weights.bin"


def test_offline_forced(monkeypatch):
    monkeypatch.setenv("IMAGEGEN_OFFLINE", "1")
    assert network.offline_forced() and not network.network_available()
    assert not network.is_reachable("http://127.0.0.1:1/")


def test_the_guard_names_what_the_host_and_the_fix(monkeypatch):
    monkeypatch.delenv("IMAGEGEN_OFFLINE", raising=False)
    probe, url = refused_url()
    with probe, pytest.raises(network.OfflineError) as failure:
        network.require_reachable(url, "cannot download weights.bin", "connect and retry.", timeout=2.0)
    message = str(failure.value)
    assert message.startswith("cannot download weights.bin: 127.0.0.1:") and "unreachable (offline, or blocked)" in message
    assert f"URL: {url}" in message and message.endswith("Fix: connect and retry.")


def test_the_guard_fails_at_once_when_offline_is_forced(monkeypatch):
    monkeypatch.setenv("IMAGEGEN_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: time.sleep(30))  # never reached
    start = time.perf_counter()
    with pytest.raises(network.OfflineError, match="IMAGEGEN_OFFLINE is set"):
        network.require_reachable("https://example.invalid/x", "cannot fetch x", "unset IMAGEGEN_OFFLINE.")
    assert time.perf_counter() - start < 1


def test_the_guard_passes_a_local_file_url():
    network.require_reachable("file:///dev/null", "unused", "unused")
