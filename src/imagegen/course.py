"""Run the course: execute every notebook in order, keep executed copies and HTML, report times.

``python -m imagegen.course run`` (what ``make course`` calls) executes
notebooks/NN_*.ipynb in order in the current environment, writes
build/NN_name.ipynb and build/NN_name.html, and ends with a table of the
time each notebook took (also saved as build/times.json). With
``--in-place`` (``make notebooks``) the executed notebooks replace the
committed ones instead, which is how they are committed: executed top to
bottom in quick mode.

``python -m imagegen.course rehearse`` (``make rehearsal``) runs every notebook
in full mode on this CPU, offline, on stand-ins for what full mode downloads
(``imagegen.rehearsal``, ``imagegen.stand_ins``), into build/rehearsal/; it fails
if a notebook fails or if a full-mode branch was left unexecuted (``imagegen.branches``).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]


def find_notebooks(folder, only=None):
    """The course notebooks (NN_name.ipynb) in order; ``only`` keeps names containing it."""
    paths = sorted(path for path in pathlib.Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [path for path in paths if only in path.stem]
    return paths


def execute(path, timeout=3600):
    """Execute one notebook in a fresh kernel, in its own folder. Returns (notebook, seconds, error or None)."""
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as failure:
        error = f"{failure.ename}: {failure.evalue}"
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)  # per-cell timestamps would make every run a diff
    return notebook, time.perf_counter() - start, error


def write_html(notebook, path):
    """Render an executed notebook to a standalone HTML page."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(notebook)
    path.write_text(body, encoding="utf-8")


def format_table(rows, mode):
    """The closing table: one line per notebook, then the total."""
    width = max([len("notebook")] + [len(name) for name, _, _ in rows])
    lines = [f"{'notebook':<{width}}  {'mode':<5}  {'time':>8}  status", "-" * (width + 26)]
    for name, seconds, error in rows:
        lines.append(f"{name:<{width}}  {mode:<5}  {_duration(seconds):>8}  {'ok' if error is None else 'FAILED'}")
    lines.append(f"{'total':<{width}}  {'':<5}  {_duration(sum(s for _, s, _ in rows)):>8}")
    return "\n".join(lines)


def _duration(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def run(folder, build, in_place=False, only=None, timeout=3600):
    """Execute the course; returns the number of notebooks that failed."""
    import nbformat

    from imagegen import modes

    mode = modes.mode()
    os.environ["IMAGEGEN_MODE"] = mode  # kernels inherit the resolved mode: no second detection
    # Figures must land in the executed notebooks and HTML, even where MPLBACKEND=Agg is exported (CI).
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    paths = find_notebooks(folder, only)
    if not paths:
        print(f"no notebooks matching NN_*.ipynb in {folder}" + (f" containing {only!r}" if only else ""))
        return 1
    build = pathlib.Path(build)
    build.mkdir(parents=True, exist_ok=True)
    rows = []
    for number, path in enumerate(paths, 1):
        print(f"[{number}/{len(paths)}] {path.name} ({mode} mode) ...", flush=True)
        notebook, seconds, error = execute(path, timeout)
        rows.append((path.stem, seconds, error))
        if in_place:
            nbformat.write(notebook, path)
        else:
            nbformat.write(notebook, build / path.name)
            write_html(notebook, build / f"{path.stem}.html")
        print(f"      {'done' if error is None else 'FAILED: ' + error} in {_duration(seconds)}", flush=True)
    print()
    print(format_table(rows, mode))
    times = {name: {"seconds": round(seconds, 1), "mode": mode, "ok": error is None} for name, seconds, error in rows}
    (build / "times.json").write_text(json.dumps(times, indent=2) + "\n")
    if not in_place:
        figures = os.environ.get("IMAGEGEN_FIGURES") or "slides/figures"
        print(f"\nExecuted notebooks and HTML in {build}/, slide figures in {figures}/.")
    return sum(error is not None for _, _, error in rows)


def rehearse(folder, root, only=None, timeout=3600):
    """Rehearse full mode: stand-ins under ``root``, every notebook run there; returns the number of failures."""
    import nbformat

    from imagegen import branches, stand_ins

    root = stand_ins.prepare(root)
    log = root / "mode_calls.jsonl"
    os.environ.update(stand_ins.environment(root), IMAGEGEN_REHEARSAL_LOG=str(log))
    log.write_text("")
    failures = run(folder, root / "notebooks", only=only, timeout=timeout)
    notebooks = {path.name: nbformat.read(path, as_version=4) for path in find_notebooks(folder, only)}
    problems = branches.report(notebooks, log)
    print("\n".join(["", *problems]) if problems else f"\nEvery full-mode branch of {len(notebooks)} notebooks was executed.")
    return failures + len(problems)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m imagegen.course", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    runner = commands.add_parser("run", help="execute the notebooks in order")
    runner.add_argument("--notebooks", default=str(REPOSITORY / "notebooks"), help="folder of NN_*.ipynb")
    runner.add_argument("--build", default=str(REPOSITORY / "build"), help="where executed copies and HTML go")
    runner.add_argument("--in-place", action="store_true", help="overwrite the notebooks with their executed copies")
    runner.add_argument("--only", help="run only notebooks whose name contains this, e.g. 03_ddim")
    runner.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    rehearsal = commands.add_parser("rehearse", help="run every notebook in full mode offline, on stand-ins (CPU)")
    rehearsal.add_argument("--notebooks", default=str(REPOSITORY / "notebooks"), help="folder of NN_*.ipynb")
    rehearsal.add_argument("--root", default=str(REPOSITORY / "build" / "rehearsal"), help="stand-ins and executed copies")
    rehearsal.add_argument("--only", help="rehearse only notebooks whose name contains this")
    rehearsal.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    arguments = parser.parse_args(argv)
    if arguments.command == "rehearse":
        failures = rehearse(arguments.notebooks, arguments.root, arguments.only, arguments.timeout)
    else:
        failures = run(arguments.notebooks, arguments.build, arguments.in_place, arguments.only, arguments.timeout)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
