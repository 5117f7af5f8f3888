"""Progress bars as one line of plain text, the same in a terminal, a live notebook and an executed copy.

``tqdm.auto`` draws an ipywidgets bar in a notebook. An executed copy (nbval, ``make notebooks``,
GitHub's viewer) stores such a bar without its widget state, so a reader sees it frozen at 0%, or
sees its repr. tqdm's plain bar writes text with carriage returns instead: Jupyter shows it updating
in place while the cell runs, and the stored copy keeps its last state, e.g.
``denoising: 100%|##########| 25/25 [00:01<00:00, 19.8it/s]``.
"""

from __future__ import annotations

import sys


def progress_bar(iterable=None, *, desc=None, total=None, leave=True, disable=False, **options):
    """A plain-text tqdm bar on stderr over ``iterable`` (or updated by hand with ``total``)."""
    from tqdm.std import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=leave, disable=disable, file=sys.stderr, ascii=True,
                ncols=90, **options)
