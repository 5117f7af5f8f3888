"""Is the network there? The one place that asks, and the one guard that fails fast when it is not.

Why: weights and data sets are large downloads, and a course run on a laptop
or in CI may be offline. Libraries such as tensorflow-datasets retry for
minutes before giving up; here a host is probed in seconds, and whatever needs
it raises ``OfflineError`` saying what could not be fetched and what to do.

- ``IMAGEGEN_OFFLINE=1`` (``offline_forced``): never touch the network.
- ``is_reachable(url)``: does the URL's host accept a connection within seconds?
- ``require_reachable(url, what, fix)``: the offline guard every download uses.
- ``network_available()``: the probe behind auto mode (``imagegen.modes``).

This module reads only ``imagegen.rehearsal``: downloads and the mode import it, never the other way round.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
import urllib.parse

from imagegen import rehearsal

# Probed by auto mode: tensorflow-datasets' and our weights' download hosts.
NETWORK_PROBE_URL = "https://storage.googleapis.com"


class OfflineError(ConnectionError):
    """A file or data set is needed from the network and the network cannot be reached."""


def offline_forced():
    """True when ``IMAGEGEN_OFFLINE`` is set to 1/true/yes: no network access is attempted."""
    return os.environ.get("IMAGEGEN_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def is_reachable(url, timeout=3.0):
    """Whether ``url``'s host accepts a TCP connection within ``timeout`` seconds.

    Name resolution and the connection share the time limit, so this returns
    within about ``timeout`` seconds even when DNS or a firewall drops packets.
    ``IMAGEGEN_OFFLINE=1`` makes it return False without touching the network.
    """
    if offline_forced():
        return False
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return True
    host = parsed.hostname
    if not host:
        raise ValueError(f"not a URL with a host: {url!r}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)

    def connect():
        with socket.create_connection((host, port), timeout=timeout):
            return True

    # getaddrinfo has no timeout of its own: run the whole attempt in a thread.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(connect).result(timeout=timeout)
    except (OSError, concurrent.futures.TimeoutError):
        return False
    finally:
        pool.shutdown(wait=False)


def require_reachable(url, what, fix, timeout=3.0):
    """Return quietly when ``url``'s host answers; otherwise raise ``OfflineError`` at once.

    what: what cannot be done without the host, e.g. "cannot download unet.h5".
    fix: what the reader can do instead, e.g. "connect to the internet and retry, or ...".
    The message reads "{what}: {host} is unreachable (why).\\n  URL: {url}\\n  Fix: {fix}",
    where "why" says whether ``IMAGEGEN_OFFLINE`` forbade the attempt.
    """
    if is_reachable(url, timeout=timeout):
        return
    host = urllib.parse.urlparse(url).netloc or url
    why = "IMAGEGEN_OFFLINE is set" if offline_forced() else "offline, or blocked"
    raise OfflineError(f"{what}: {host} is unreachable ({why}).\n  URL: {url}\n  Fix: {fix}")


def network_available(timeout=3.0):
    """Whether the download hosts answer within ``timeout`` seconds (in a rehearsal, the stand-ins answer)."""
    if rehearsal.active():
        return True
    return is_reachable(NETWORK_PROBE_URL, timeout=timeout)
