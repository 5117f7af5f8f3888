"""Writing files so that nothing is ever left half-written: a temporary name, then a rename.

Why: downloads, checkpoints and saved models are large and slow to write; a
crash or a full disk in the middle must not leave a truncated file that a later
run trusts. Every writer in the package goes through ``atomic_path``.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
import shutil


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success rename it into place, on failure delete it.

    Works for a file or a folder (e.g. a saved preset): a reader sees the old thing or the whole new one.
    The temporary name, ``.partial-<random>.<name>``, is hidden, unique to this call (two processes
    writing the same file do not clash) and ends with ``path``'s own name, so writers that check the
    suffix accept it (Keras' ``model.save`` wants ".keras", ``save_weights`` ".weights.h5").
    Usage::

        with atomic_path(folder / "model.keras") as temporary:
            model.save(temporary)
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".partial-{secrets.token_hex(4)}.{path.name}")
    try:
        yield temporary
        if path.is_dir() and temporary.is_dir():
            shutil.rmtree(path)
        os.replace(temporary, path)
    finally:
        _remove(temporary)


def _remove(path):
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
