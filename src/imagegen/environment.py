"""The run's environment, told and made repeatable: what every notebook prints at the top, and the seed.

Why: a figure or a timing means little without the mode, backend, device and
library versions it came from, so every notebook starts with
``environment.print_environment()``; ``set_seed`` makes a run draw the same
numbers again. The settings themselves live in ``imagegen.modes`` (quick or
full), ``imagegen.devices`` (accelerator, distribution, precision) and
``imagegen.paths`` (the cache).

Environment variables the course reads:
- ``IMAGEGEN_MODE``: quick, full or auto (default; ``imagegen.modes``).
- ``IMAGEGEN_CACHE``: where downloads and weights go (default ~/.cache/imagegen; ``imagegen.paths``).
- ``IMAGEGEN_OFFLINE=1``: never touch the network (downloads fail at once; ``imagegen.network``).
- ``KERAS_BACKEND``: tensorflow (default) or jax.
- ``IMAGEGEN_REHEARSAL=1``: rehearse full mode on a CPU, offline (``imagegen.rehearsal``).
"""

from __future__ import annotations

import contextlib
import os
import sys

from imagegen import devices, modes, rehearsal


def set_seed(seed=0):
    """Seed Python, numpy and the backend so that a run repeats."""
    import keras

    keras.utils.set_random_seed(int(seed))


def versions():
    """Versions of Python and the libraries the course uses, as {name: version}."""
    import importlib.metadata as metadata

    found = {"python": sys.version.split()[0]}
    for package in ("imagegen", "keras", "tensorflow", "tensorflow-cpu", "jax", "keras-cv", "tensorflow-datasets", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            name = "tensorflow" if package == "tensorflow-cpu" else package
            found.setdefault(name, metadata.version(package))
    return found


def describe():
    """A short multi-line summary: mode, backend, device and versions."""
    accelerator = devices.detect_accelerator()
    count = accelerator.count or "?"
    device = "CPU" if accelerator.kind == "cpu" else f"{count} x {accelerator.kind.upper()} ({accelerator.name})"
    how = " (rehearsal)" if rehearsal.active() else " (auto)" if modes.requested_mode() == "auto" else ""
    lines = [
        f"mode:     {modes.mode()}{how}",
        f"backend:  {devices.backend()}",
        f"device:   {device}, {os.cpu_count()} CPU cores",
        "versions: " + ", ".join(f"{name} {version}" for name, version in versions().items()),
    ]
    return "\n".join(lines)


def print_environment():
    """Print ``describe()``; the first code cell after the install cell of every notebook calls this."""
    print(describe())
