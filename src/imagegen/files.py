"""Writing files so that nothing is ever left half-written: a temporary name, then a rename."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success rename it into place, on failure delete it.

    Works for a file or a folder (e.g. a saved preset): a reader sees the old thing or the whole new one.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    _remove(temporary)
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
