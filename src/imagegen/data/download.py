"""Downloads that are pinned, atomic and fail fast offline.

Why: weights and data files are large, and a course run on a laptop or in CI
may be offline. A download here
- checks first that the host answers within seconds (tfds alone retries for
  minutes), and otherwise raises ``OfflineError`` naming the file, its URL and
  the cache path where it can be put by hand;
- streams to a temporary file next to the target, checks its sha256, and only
  then renames it into place, so the cache never holds a half-written file;
- returns the cached file at once when it is already there with the right hash.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import pathlib
import socket
import tempfile
import urllib.parse
import urllib.request

from imagegen import config, rehearsal

_CHUNK_BYTES = 1 << 20


class OfflineError(ConnectionError):
    """A file or data set is needed from the network and the network cannot be reached."""


class ChecksumError(ValueError):
    """A downloaded file's sha256 differs from its pin; nothing was kept."""


def is_reachable(url, timeout=3.0):
    """Whether ``url``'s host accepts a TCP connection within ``timeout`` seconds.

    Name resolution and the connection share the time limit, so this returns
    within about ``timeout`` seconds even when DNS or a firewall drops packets.
    ``IMAGEGEN_OFFLINE=1`` makes it return False without touching the network.
    """
    if config.offline_forced():
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


_DIGEST_LENGTHS = {"sha256": 64, "md5": 32}


def sha256_of(path, algorithm="sha256"):
    """The hex digest of a file (sha256, or ``algorithm``: "md5" where a publisher pins only that)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(_CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url, sha256, filename=None, subdir="downloads", timeout=3.0, progress=True, algorithm="sha256"):
    """Fetch ``url`` into the cache once, verified against ``sha256``; return its path.

    url: http(s) or file URL.
    sha256: the expected hex digest (pinned next to the URL in our code).
    filename: the cached file's name (default: the URL's last part).
    subdir: folder under the cache (``imagegen.config.cache_dir``).
    timeout: seconds to wait for the host before failing as offline.
    algorithm: "sha256", or "md5" for files whose publisher pins only an md5 (Keras' InceptionV3).

    Raises ``OfflineError`` quickly when the host is unreachable, and
    ``ChecksumError`` when the content does not match the pin (the bad
    download is deleted; nothing is left in the cache). In a rehearsal of full
    mode the pin is the local stand-in's (``imagegen.rehearsal``).
    """
    if algorithm not in _DIGEST_LENGTHS or not sha256 or len(sha256) != _DIGEST_LENGTHS[algorithm]:
        raise ValueError(f"a {algorithm} pin ({_DIGEST_LENGTHS.get(algorithm, 64)} hex digits) is required to download "
                         f"{url}, got {sha256!r}")
    algorithm, sha256 = rehearsal.pin(url, algorithm, sha256)
    filename = filename or pathlib.PurePosixPath(urllib.parse.urlparse(url).path).name
    target = config.cache_dir(subdir) / filename
    if target.exists():
        if sha256_of(target, algorithm) == sha256.lower():
            return target
        print(f"{target} does not match its pinned sha256; downloading it again.")
        target.unlink()

    if not is_reachable(url, timeout=timeout):
        raise OfflineError(
            f"cannot download {filename}: {urllib.parse.urlparse(url).netloc or url} is unreachable "
            f"(offline, or blocked).\n  URL: {url}\n  Fix: connect to the internet and retry, or download "
            f"the file elsewhere and place it at {target} ({algorithm} {sha256})."
        )

    temporary = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{filename}.", suffix=".part", delete=False)
    try:
        digest = hashlib.new(algorithm)
        with temporary, urllib.request.urlopen(url, timeout=max(timeout, 30)) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = _progress_bar(total, filename) if progress else None
            for block in iter(lambda: response.read(_CHUNK_BYTES), b""):
                temporary.write(block)
                digest.update(block)
                if bar is not None:
                    bar.update(len(block))
            if bar is not None:
                bar.close()
        actual = digest.hexdigest()
        if actual != sha256.lower():
            raise ChecksumError(
                f"{filename} from {url} has {algorithm} {actual}, expected {sha256}. The file was deleted; "
                "retry, and if it persists the file at that URL has changed."
            )
        os.replace(temporary.name, target)
    except BaseException:
        pathlib.Path(temporary.name).unlink(missing_ok=True)
        raise
    return target


def _progress_bar(total, name):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=name, leave=False)
