"""Downloads that are pinned, atomic and fail fast offline.

Why: weights and data files are large, and a course run on a laptop or in CI
may be offline. A download here
- checks first that the host answers within seconds (tfds alone retries for
  minutes), and otherwise raises ``OfflineError`` naming the file, its URL and
  the cache path where it can be put by hand (``imagegen.network.require_reachable``);
- streams to a temporary file next to the target, checks its sha256, and only
  then renames it into place (``imagegen.files.atomic_path``), so the cache
  never holds a half-written file;
- returns the cached file at once when it is already there with the right hash.
"""

from __future__ import annotations

import hashlib
import pathlib
import urllib.parse
import urllib.request

from imagegen import rehearsal
from imagegen.files import atomic_path
from imagegen.network import require_reachable
from imagegen.paths import cache_dir

_CHUNK_BYTES = 1 << 20


class ChecksumError(ValueError):
    """A downloaded file's sha256 differs from its pin; nothing was kept."""


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
    subdir: folder under the cache (``imagegen.paths.cache_dir``).
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
    target = cache_dir(subdir) / filename
    if target.exists():
        if sha256_of(target, algorithm) == sha256.lower():
            return target
        print(f"{target} does not match its pinned sha256; downloading it again.")
        target.unlink()

    require_reachable(url, f"cannot download {filename}", f"connect to the internet and retry, or download the file "
                      f"elsewhere and place it at {target} ({algorithm} {sha256}).", timeout=timeout)

    digest = hashlib.new(algorithm)
    with atomic_path(target) as temporary:  # deleted, not renamed, if anything below fails
        with open(temporary, "wb") as file, urllib.request.urlopen(url, timeout=max(timeout, 30)) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = _progress_bar(total, filename) if progress else None
            for block in iter(lambda: response.read(_CHUNK_BYTES), b""):
                file.write(block)
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
    return target


def _progress_bar(total, name):
    from imagegen.progress import progress_bar

    return progress_bar(total=total, unit="B", unit_scale=True, desc=name, leave=False)
