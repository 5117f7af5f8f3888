"""Which lines of the notebooks ask for the mode, and whether a rehearsal executed every one of them.

A notebook differs between quick and full mode only where it calls ``modes.pick``,
``modes.is_quick`` or ``modes.mode``. In a rehearsal of full mode each such call
takes the full side and is logged (``imagegen.rehearsal.record_call``). A call that
the rehearsal never reached guards full-mode code that nothing ran: ``uncovered``
names it, and the runner fails. So does a mode kept in a variable and branched on
later (``QUICK = modes.is_quick()`` then ``if QUICK:``): the rehearsal could not see
that branch, so notebooks call ``modes.is_quick()`` in the condition itself, and import
``modes`` only as ``from imagegen import modes``.
"""

from __future__ import annotations

import ast
import dataclasses
import json

MODE_CALLS = ("pick", "is_quick", "mode")
MODULE = "modes"  # notebooks call MODULE.pick(...) after `from imagegen import modes`


@dataclasses.dataclass(frozen=True)
class Site:
    """One call of ``modes.pick/is_quick/mode`` in a notebook cell: lines first..last of cell ``cell``."""

    notebook: str
    cell: int
    first: int
    last: int
    text: str

    def __str__(self):
        return f"{self.notebook}, cell {self.cell}, line {self.first}: {self.text}"


def _python(source):
    """A cell's source without IPython's magics and shell escapes (kept as blank lines: line numbers hold)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _is_mode_call(node):
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MODE_CALLS
            and isinstance(node.func.value, ast.Name) and node.func.value.id == MODULE)


def mode_sites(notebook, name):
    """(sites, hidden): every mode call of an nbformat notebook, and the branches on a stored mode."""
    sites, hidden = [], []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        tree = ast.parse(_python(cell.source))
        lines = cell.source.splitlines()
        stored = set()
        for node in ast.walk(tree):
            if _is_mode_call(node):
                sites.append(Site(name, index, node.lineno, node.end_lineno, lines[node.lineno - 1].strip()))
            if isinstance(node, ast.Assign) and any(_is_mode_call(n) for n in ast.walk(node.value)):
                if not any(_is_mode_call(n) and n.func.attr == "pick" for n in ast.walk(node.value)):
                    stored |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        stored |= _stored_elsewhere(notebook, index)
        for node in ast.walk(tree):
            if _renames_modes(node):  # modes.pick under another name: invisible to the check
                hidden.append(Site(name, index, node.lineno, node.end_lineno, lines[node.lineno - 1].strip()))
            if isinstance(node, (ast.If, ast.IfExp)) and {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)} & stored:
                hidden.append(Site(name, index, node.lineno, node.end_lineno, lines[node.lineno - 1].strip()))
    return sites, hidden


def _renames_modes(node):
    """``from imagegen.modes import pick``, ``import imagegen.modes``, or ``modes`` imported under another name."""
    if isinstance(node, ast.ImportFrom) and node.module == f"imagegen.{MODULE}":
        return True
    if isinstance(node, ast.ImportFrom) and node.module == "imagegen":
        return any(alias.name == MODULE and alias.asname not in (None, MODULE) for alias in node.names)
    return isinstance(node, ast.Import) and any(alias.name == f"imagegen.{MODULE}" for alias in node.names)


def _stored_elsewhere(notebook, before):
    """Names that earlier cells set from ``modes.is_quick()`` or ``modes.mode()``."""
    names = set()
    for cell in notebook.cells[:before]:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(_python(cell.source))):
            if isinstance(node, ast.Assign) and any(_is_mode_call(n) and n.func.attr != "pick" for n in ast.walk(node.value)):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def read_log(path):
    """The rehearsal's log: {cell source (stripped): set of executed line numbers}."""
    executed = {}
    with open(path, encoding="utf-8") as file:
        for line in file:
            entry = json.loads(line)
            executed.setdefault(entry["cell"].strip(), set()).add(entry["line"])
    return executed


def uncovered(notebooks, executed):
    """The mode sites of ``notebooks`` ({name: nbformat notebook}) that the log ``executed`` never reached."""
    missing = []
    for name, notebook in notebooks.items():
        sites, _ = mode_sites(notebook, name)
        for site in sites:
            lines = executed.get(notebook.cells[site.cell].source.strip(), set())
            if not any(site.first <= line <= site.last for line in lines):
                missing.append(site)
    return missing


def report(notebooks, log_path):
    """Lines describing every full-mode branch the rehearsal left unexecuted or could not see; [] when none."""
    executed = read_log(log_path)
    problems = [f"not executed in the rehearsal: {site}" for site in uncovered(notebooks, executed)]
    for name, notebook in notebooks.items():
        problems += [f"hidden from the rehearsal (branch on modes.is_quick() itself; import only "
                     f"`from imagegen import modes`): {site}"
                     for site in mode_sites(notebook, name)[1]]
    return problems
