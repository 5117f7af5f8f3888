"""The full-mode rehearsal: full mode's code run on a CPU, offline, at quick mode's sizes.

Why: full mode (real data, pretrained weights, a GPU) is what Colab learners
run, and CI has neither a GPU nor the network. ``IMAGEGEN_REHEARSAL=1`` (what
``make rehearsal`` sets) makes this process a rehearsal of full mode:

- ``modes.mode()`` is "full", so every full-mode branch of a notebook runs as written;
- ``modes.pick(quick, full)`` keeps full mode's choices (data sets, presets, prompts,
  switches) but quick mode's sizes: ``rehearsal_value`` below;
- what full mode downloads is stood in by files written locally in the published
  formats (``imagegen.stand_ins``): tensorflow-datasets folders, KerasCV's h5 files,
  InceptionV3's h5 file, a KerasHub preset folder. ``STAND_INS`` names the manifest
  that maps each download to its stand-in's digest, so ``download`` still verifies
  every file, against the stand-in's digest instead of the real file's pin;
- the SD v1 architecture is rehearsed at tiny widths (the "rehearsal" configuration, ``model_config``).

``IMAGEGEN_REHEARSAL_LOG`` names a file where every notebook line that asked for
the mode (``pick``, ``is_quick``, ``mode``) is recorded, so the runner can show
that no full-mode branch was left unexecuted (``imagegen.course``).

This module imports nothing from ``imagegen``: ``modes``, ``devices``, ``network`` and ``download`` read it.
"""

from __future__ import annotations

import json
import linecache
import numbers
import os
import pathlib
import sys

STAND_INS = "stand-ins.json"  # in the cache folder: {key: {"algorithm", "digest"} or {"path"}}
SCALED_CONFIGS = {"sd-v1": "rehearsal"}  # a named SD configuration -> the one rehearsed (tiny widths, 77 tokens)
IMAGE_SIZE = 64  # the default image size of a rehearsed pretrained SD preset (512 in full mode)

_recorded = set()


def active():
    """True when this process rehearses full mode (``IMAGEGEN_REHEARSAL`` is 1, true or yes)."""
    return os.environ.get("IMAGEGEN_REHEARSAL", "").strip().lower() in ("1", "true", "yes")


def _is_number(value):
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def rehearsal_value(quick, full):
    """What ``modes.pick(quick, full)`` returns in a rehearsal: full mode's choice at quick mode's size.

    - numbers: the smaller of the two (epochs, steps, image sizes, batch sizes, learning rates);
    - sequences of numbers (widths of a network): the smaller one, by length then sum;
    - anything else (None for "all of the data set", strings, prompts, presets, switches): full's.
    """
    if _is_number(quick) and _is_number(full):
        return min(quick, full)
    numeric = [isinstance(v, (tuple, list)) and v and all(_is_number(x) for x in v) for v in (quick, full)]
    if all(numeric):
        return min(quick, full, key=lambda v: (len(v), sum(v)))
    return full


def model_config(name):
    """The named SD configuration to build: ``name`` itself, or its rehearsal scale ("sd-v1" -> "rehearsal")."""
    return SCALED_CONFIGS.get(name, name) if active() else name


def image_size(size):
    """A pretrained preset's default image size: ``size``, or ``IMAGE_SIZE`` in a rehearsal."""
    return IMAGE_SIZE if active() else size


def _manifest():
    root = os.environ.get("IMAGEGEN_CACHE") or pathlib.Path.home() / ".cache" / "imagegen"
    path = pathlib.Path(root).expanduser() / STAND_INS
    if not path.exists():
        raise FileNotFoundError(f"a rehearsal needs its stand-ins in {path.parent}: run `python -m imagegen.stand_ins "
                                f"{path.parent.parent}` (make rehearsal does), or unset IMAGEGEN_REHEARSAL")
    return json.loads(path.read_text())


def pin(key, algorithm, digest):
    """(algorithm, digest) to verify a download against: its pin, or in a rehearsal its stand-in's."""
    if not active():
        return algorithm, digest
    entry = _manifest().get(key)
    if entry is None:
        raise KeyError(f"the rehearsal has no stand-in for {key}; add one in imagegen.stand_ins")
    return entry["algorithm"], entry["digest"]


def stand_in_path(key):
    """The local stand-in (a file or folder) for a hub preset ``key`` in a rehearsal, else None."""
    if not active():
        return None
    entry = _manifest().get(key)
    return entry["path"] if entry else None


def record_call(depth=2):
    """Log the notebook line that asked for the mode (rehearsal only; see the module docstring).

    Only code typed in a notebook cell is logged: IPython keeps each cell's text in
    ``linecache`` under a file name of its own, outside any installed package.
    """
    log = os.environ.get("IMAGEGEN_REHEARSAL_LOG")
    if not log:
        return
    frame = sys._getframe(depth)
    filename, line = frame.f_code.co_filename, frame.f_lineno
    if (filename, line) in _recorded or "site-packages" in filename or filename.startswith(str(pathlib.Path(__file__).parent)):
        return
    _recorded.add((filename, line))
    source = "".join(linecache.getlines(filename))
    if not source:
        return
    with open(log, "a", encoding="utf-8") as file:
        file.write(json.dumps({"cell": source, "line": line}) + "\n")
