"""The course runner behind `make course` and `make notebooks`."""

import json

import nbformat
import pytest

from imagegen import course


def write_notebook(path, *sources):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# A test notebook")]
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(notebook, path)


def test_find_notebooks_in_course_order(tmp_path):
    for name in ("10_late.ipynb", "02_b.ipynb", "01_a.ipynb", "scratch.ipynb"):
        write_notebook(tmp_path / name)
    assert [path.name for path in course.find_notebooks(tmp_path)] == ["01_a.ipynb", "02_b.ipynb", "10_late.ipynb"]
    assert [path.name for path in course.find_notebooks(tmp_path, only="02")] == ["02_b.ipynb"]


@pytest.fixture(autouse=True)
def restore_environment(monkeypatch):
    """course.run sets IMAGEGEN_MODE and MPLBACKEND for its kernels; put them back afterwards."""
    monkeypatch.setenv("IMAGEGEN_MODE", "quick")
    monkeypatch.setenv("MPLBACKEND", "Agg")


def test_run_executes_in_order_writes_html_and_reports_times(tmp_path, capsys):
    notebooks, build = tmp_path / "notebooks", tmp_path / "build"
    notebooks.mkdir()
    write_notebook(notebooks / "00_ok.ipynb", "import os\nprint(os.environ['IMAGEGEN_MODE'])", "1 + 1",
                   "import matplotlib.pyplot as plt\nplt.plot([1, 2]);")
    write_notebook(notebooks / "01_broken.ipynb", "raise RuntimeError('boom')")
    failures = course.run(notebooks, build)
    assert failures == 1
    executed = nbformat.read(build / "00_ok.ipynb", as_version=4)
    assert [cell.execution_count for cell in executed.cells[1:]] == [1, 2, 3]
    assert executed.cells[1].outputs[0]["text"].strip() == "quick"
    assert any("image/png" in output.get("data", {}) for output in executed.cells[3].outputs)  # figures, even under MPLBACKEND=Agg
    assert (build / "00_ok.html").read_text().count("<html") == 1
    times = json.loads((build / "times.json").read_text())
    assert times["00_ok"]["ok"] and not times["01_broken"]["ok"] and times["00_ok"]["mode"] == "quick"
    output = capsys.readouterr().out
    assert "[1/2] 00_ok.ipynb (quick mode)" in output and "[2/2] 01_broken.ipynb" in output
    assert "FAILED: RuntimeError: boom" in output
    assert any(line.startswith("total") for line in output.splitlines())


def test_in_place_rewrites_the_notebook(tmp_path):
    write_notebook(tmp_path / "00_x.ipynb", "print('hello')")
    assert course.run(tmp_path, tmp_path / "build", in_place=True) == 0
    executed = nbformat.read(tmp_path / "00_x.ipynb", as_version=4)
    assert executed.cells[1].execution_count == 1 and "execution" not in executed.cells[1].metadata


def test_table_lists_each_notebook_and_the_total():
    table = course.format_table([("00_setup", 12.3, None), ("01_vae", 95.0, "boom")], "quick")
    lines = table.splitlines()
    assert lines[2].split() == ["00_setup", "quick", "12s", "ok"]
    assert lines[3].split() == ["01_vae", "quick", "1m35s", "FAILED"]
    assert lines[4].split() == ["total", "1m47s"]
