"""Where the course keeps what it downloads and trains: the cache folder.

Why one place: downloads, pretrained weights and training checkpoints are large
and slow to make, so every notebook and loader finds them in the same folder,
``IMAGEGEN_CACHE`` (on Colab it can point into Google Drive, ``imagegen.colab``)
or ~/.cache/imagegen.
"""

from __future__ import annotations

import os
import pathlib


def cache_dir(*parts):
    """The cache folder (``IMAGEGEN_CACHE`` or ~/.cache/imagegen), or a subfolder of it; created if needed."""
    root = pathlib.Path(os.environ.get("IMAGEGEN_CACHE") or pathlib.Path.home() / ".cache" / "imagegen").expanduser()
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
