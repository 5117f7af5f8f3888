"""The course's two modes: which one this process runs in, and the settings each one picks.

"quick": offline, 2 CPU cores, minutes, small sizes. "full": real data,
pretrained weights, full sizes on a GPU or TPU. The same notebook code runs in
both; only sizes and data sources change, written side by side::

    EPOCHS = modes.pick(quick=3, full=50)
    if modes.is_quick():
        ...

``IMAGEGEN_MODE`` asks for quick, full or auto (the default): auto means full
only when an accelerator *and* the network are both there. A rehearsal
(``IMAGEGEN_REHEARSAL=1``, ``imagegen.rehearsal``) is full mode at quick sizes;
every call of ``pick``, ``is_quick`` and ``mode`` is logged for it, so notebooks
call them as ``modes.pick(...)`` after ``from imagegen import modes`` (``imagegen.branches``).
"""

from __future__ import annotations

import functools
import os

from imagegen import devices, rehearsal
from imagegen.network import network_available

MODES = ("quick", "full", "auto")


def requested_mode():
    """The mode asked for in ``IMAGEGEN_MODE`` (quick, full or auto), before auto is resolved."""
    value = os.environ.get("IMAGEGEN_MODE", "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"IMAGEGEN_MODE must be one of quick, full, auto; got {value!r}. Example: IMAGEGEN_MODE=quick")
    return value


def resolve_mode(requested=None, accelerator=None, network=None):
    """Turn a requested mode into "quick" or "full".

    requested: "quick", "full", "auto" or None (read ``IMAGEGEN_MODE``).
    accelerator, network: override detection (for tests); by default auto
        mode detects the accelerator first and probes the network only if one
        is present, so a CPU machine never waits on the network.
    """
    requested = requested_mode() if requested is None else requested
    if requested not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {requested!r}")
    if requested != "auto":
        return requested
    has_accelerator = (devices.detect_accelerator().kind != "cpu") if accelerator is None else bool(accelerator)
    if not has_accelerator:
        return "quick"
    has_network = network_available() if network is None else bool(network)
    return "full" if has_network else "quick"


@functools.lru_cache(maxsize=None)
def _cached_mode(requested):
    return resolve_mode(requested)


def mode():
    """The course mode for this process: "quick" or "full" (resolved once, then cached; a rehearsal is full)."""
    rehearsal.record_call()
    return "full" if rehearsal.active() else _cached_mode(requested_mode())


def is_quick():
    """True in quick mode. Notebooks branch on it: ``if modes.is_quick(): ... else: ...``."""
    rehearsal.record_call()
    return mode() == "quick"


def pick(quick, full):
    """The quick-mode or full-mode value of a setting, e.g. ``epochs = pick(quick=3, full=50)``.

    A rehearsal of full mode takes full's choices at quick's sizes (``rehearsal.rehearsal_value``).
    """
    rehearsal.record_call()
    if rehearsal.active():
        return rehearsal.rehearsal_value(quick, full)
    return quick if mode() == "quick" else full
