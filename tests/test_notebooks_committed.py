"""Committed notebooks follow the course conventions (DEVELOPERS.md, "Notebooks").

They are stored executed top to bottom in one quick-mode run, without errors
and without giant outputs; each has a title with what you will learn and the
time in both modes, a Colab-only install cell and a config cell; reusable code
comes from imagegen.
"""

import json
import pathlib
import re

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_the_course_has_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb found"


@pytest.fixture(params=NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def notebook(request):
    return request.param, json.loads(request.param.read_text())


def code_cells(notebook_json):
    return [cell for cell in notebook_json["cells"] if cell["cell_type"] == "code" and "".join(cell["source"]).strip()]


def test_executed_top_to_bottom_in_one_run(notebook):
    path, content = notebook
    counts = [cell["execution_count"] for cell in code_cells(content)]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: re-run it with `make notebooks` (counts {counts})"


def test_no_stored_errors(notebook):
    path, content = notebook
    errors = [output.get("ename") for cell in code_cells(content) for output in cell.get("outputs", []) if output["output_type"] == "error"]
    assert not errors, f"{path.name} stores errors: {errors}"


def test_no_tensorflow_log_lines_in_outputs(notebook):
    """TensorFlow's C++ lines (I0000 ..., absl's note) are stopped at the source: imagegen.tf_logs, in the config cell."""
    path, content = notebook
    for index, cell in enumerate(content["cells"]):
        for output in cell.get("outputs", []):
            lines = "".join(output.get("text", [])).splitlines() if output.get("output_type") == "stream" else []
            logs = [line for line in lines if line.startswith(("I0000 ", "W0000 ", "E0000 ")) or "absl::InitializeLog" in line]
            assert not logs, f"{path.name}, cell {index}: TensorFlow's C++ log in the output: {logs[0][:100]}"


def test_outputs_stay_small(notebook):
    path, content = notebook
    assert path.stat().st_size < 5_000_000, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB"
    for cell in code_cells(content):
        text = "".join("".join(output.get("text", "")) for output in cell.get("outputs", []))
        assert text.count("\n") < 200, f"{path.name}: a cell prints {text.count(chr(10))} lines; keep logs short"


def test_sources_hold_no_control_characters(notebook):
    """A cell written from a Python string without r"" turns LaTeX's \\bar, \\alpha, \\varepsilon into \\b, \\a, \\v."""
    path, content = notebook
    for index, cell in enumerate(content["cells"]):
        found = sorted(set(re.findall(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "".join(cell["source"]))))
        assert not found, f"{path.name}, cell {index}: control characters {[hex(ord(c)) for c in found]}; escape the backslashes"


def test_title_goals_and_times(notebook):
    path, content = notebook
    first = "".join(content["cells"][0]["source"])
    assert first.startswith("# "), f"{path.name}: the first cell must be a '# Title' markdown cell"
    lowered = first.lower()
    assert "you will learn" in lowered and "quick mode" in lowered and "full mode" in lowered


def test_colab_install_and_config_cells(notebook):
    path, content = notebook
    sources = ["".join(cell["source"]) for cell in code_cells(content)]
    assert "google.colab" in sources[0] and "pip" in sources[0], f"{path.name}: the first code cell installs in Colab only"
    assert any("print_environment()" in source for source in sources[:3]), f"{path.name}: a config cell prints the environment"
    assert any("from imagegen" in source or "import imagegen" in source for source in sources)


def test_no_frozen_widgets_or_object_reprs(notebook):
    """Executed copies show text, not a progress widget stuck at 0% nor a repr such as ``VBox(children=...)``."""
    path, content = notebook
    for index, cell in enumerate(content["cells"]):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            plain = "".join(data.get("text/plain", "")) if output.get("output_type") != "stream" else ""
            widget = "application/vnd.jupyter.widget-view+json" in data
            assert not (widget and re.search(r"\d+%\|", plain)), f"{path.name}, cell {index}: a frozen progress widget; use imagegen.progress"
            repr_like = re.match(r"^(<[\w.]+ object at 0x|<keras\.|[A-Z]\w*Box\(children=)", plain)
            assert not repr_like, f"{path.name}, cell {index}: an object's repr is the output: {plain[:80]!r}"


def test_exercises_with_answers(notebook):
    """2 to 4 exercises at '## Exercises', each '### Exercise N' with a code cell to run and a hidden answer."""
    path, content = notebook
    cells = content["cells"]
    sources = ["".join(cell["source"]) for cell in cells]
    starts = [i for i, source in enumerate(sources) if cells[i]["cell_type"] == "markdown" and source.startswith("## Exercises")]
    assert len(starts) == 1, f"{path.name}: needs one markdown cell starting '## Exercises'"
    exercises = [i for i, source in enumerate(sources) if cells[i]["cell_type"] == "markdown" and source.startswith("### Exercise")]
    assert 2 <= len(exercises) <= 4 and all(i > starts[0] for i in exercises), f"{path.name}: 2 to 4 '### Exercise' cells after '## Exercises'"
    bounds = exercises[1:] + [next((i for i, s in enumerate(sources) if i > exercises[-1] and s.startswith("## ")), len(cells))]
    for first, end in zip(exercises, bounds):
        kinds = [(cells[i]["cell_type"], sources[i]) for i in range(first + 1, end)]
        title = sources[first].splitlines()[0]
        assert any(kind == "code" and source.strip() for kind, source in kinds), f"{path.name}: {title!r} has no code cell"
        assert "predict" in sources[first].lower(), f"{path.name}: {title!r} must ask for a prediction before the run"
        answers = [source for kind, source in kinds if kind == "markdown" and "<summary>Answer</summary>" in source]
        assert answers and "</details>" in answers[0], f"{path.name}: {title!r} needs a hidden '<details><summary>Answer</summary>' cell"


def test_papers_and_further_reading_last(notebook):
    path, content = notebook
    last = "".join(content["cells"][-1]["source"])
    assert last.startswith("## Papers and further reading"), f"{path.name}: the last cell is '## Papers and further reading'"
    assert len(re.findall(r"\]\(https?://", last)) >= 2, f"{path.name}: the reading list links its sources"
