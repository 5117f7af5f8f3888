"""Colab: the install cells, badges and README table match pyproject's URL, and the install cell works.

The install cell only runs in Colab, so here it runs in a subprocess with a fake ``google.colab`` module,
installing this checkout (``IMAGEGEN_INSTALL_SOURCE``) into a temporary ``--target`` folder without the network.
"""

import importlib.metadata
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys

import nbformat
import pytest

from imagegen import colab

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = colab.notebook_paths(ROOT)
SYNC = "run `python -m imagegen.colab sync` (the URL lives in [project.urls] of pyproject.toml)"
FORK = "https://github.com/someone/fork-of-the-course"

# Runs an install cell as Colab would: google.colab importable (added next to a real `google` namespace package,
# such as protobuf's, rather than shadowing it), a drive.mount that only reports, then the state the cell leaves.
WRAPPER = """
import json, os, sys, types
if sys.argv[2] == "colab":
    try:
        import google
    except ImportError:
        sys.modules["google"] = types.ModuleType("google")
    colab, drive = types.ModuleType("google.colab"), types.ModuleType("google.colab.drive")
    drive.mount = lambda path: print("mounted", path)
    colab.drive = drive
    sys.modules.update({"google.colab": colab, "google.colab.drive": drive})
if os.environ.get("TEST_WITHOUT_TENSORFLOW"):  # as on Colab's TPU runtime
    import importlib.util
    find_spec = importlib.util.find_spec
    importlib.util.find_spec = lambda name, *rest: None if name.split(".")[0] == "tensorflow" else find_spec(name, *rest)
exec(compile(open(sys.argv[1]).read(), "install_cell", "exec"), {"__name__": "__main__"})
state = {name: os.environ.get(name) for name in ("KERAS_BACKEND", "IMAGEGEN_CACHE", "TFDS_DATA_DIR")}
if len(sys.argv) > 3:
    sys.path.insert(0, sys.argv[3])
    import imagegen
    state["imagegen"] = imagegen.__file__
print(json.dumps(state))
"""


def run_cell(tmp_path, source, env=None, in_colab=True, import_from=None):
    """Run an install cell's source in a fresh Python; return the process (the state is stdout's last line)."""
    (tmp_path / "cell.py").write_text(source)
    (tmp_path / "wrapper.py").write_text(WRAPPER)
    clean = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "COLAB_TPU_ADDR", "TPU_NAME")}
    clean = {k: v for k, v in clean.items() if not k.startswith(("IMAGEGEN_INSTALL", "IMAGEGEN_PIP"))}
    args = [sys.executable, str(tmp_path / "wrapper.py"), str(tmp_path / "cell.py"), "colab" if in_colab else "local"]
    args += [str(import_from)] if import_from else []
    return subprocess.run(args, cwd=tmp_path, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=300)


def state(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_url_lives_in_pyproject():
    tomllib = pytest.importorskip("tomllib")
    url = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    assert colab.repository_url(ROOT) == url
    assert f"imagegen @ git+{url}" in colab.install_cell()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_install_cell_and_badge_are_generated(path):
    cells = nbformat.read(path, as_version=4).cells
    assert cells[1].source == colab.install_cell(), f"{path.name}: cell 1 is stale; {SYNC}"
    assert cells[1].outputs == [], f"{path.name}: the install cell stores no outputs (it only runs in Colab)"
    lines = cells[0].source.splitlines()
    assert lines[1:3] == ["", colab.badge(path)], f"{path.name}: no current Colab badge under the title; {SYNC}"


def test_readme_badge_table_is_generated():
    text = (ROOT / "README.md").read_text()
    assert colab.badge_table(NOTEBOOKS) in text, f"README.md's Colab badge table is stale; {SYNC}"
    assert text.count(colab.README_START) == 1


def test_a_fork_changes_one_line(tmp_path):
    """A fork's pyproject gives its own install URL and badges; sync rewrites only cells 0 and 1 and the table."""
    pyproject = (ROOT / "pyproject.toml").read_text().replace(colab.repository_url(ROOT), FORK)
    (tmp_path / "pyproject.toml").write_text(pyproject)
    (tmp_path / "notebooks").mkdir()
    kept = [path for path in NOTEBOOKS if path.stem in ("00_setup", "08_live_demo")]
    for path in kept:
        shutil.copy(path, tmp_path / "notebooks")
    shutil.copy(ROOT / "README.md", tmp_path)
    assert colab.repository_url(tmp_path) == FORK
    assert colab.sync(tmp_path) == [tmp_path / "notebooks" / path.name for path in kept] + [tmp_path / "README.md"]
    assert colab.sync(tmp_path) == [], "a second sync changes nothing"
    for path in kept:
        before = nbformat.read(path, as_version=4)
        after = nbformat.read(tmp_path / "notebooks" / path.name, as_version=4)
        assert f"git+{FORK}" in after.cells[1].source
        assert "github/someone/fork-of-the-course/blob/main" in after.cells[0].source
        assert after.cells[0].source.count("colab-badge.svg") == 1
        assert after.cells[1].execution_count == before.cells[1].execution_count and after.cells[1].outputs == []
        assert after.cells[2:] == before.cells[2:], "every other cell, outputs included, is kept"
    assert colab.badge_table(kept, FORK) in (tmp_path / "README.md").read_text()


def test_badges_need_a_github_url():
    with pytest.raises(ValueError, match="github.com"):
        colab.badge("03_ddim", "https://gitlab.com/someone/course")
    assert colab.github_path("https://github.com/a/b.git") == "a/b"


def test_the_module_imports_no_deep_learning_framework():
    code = "import sys, imagegen.colab; print(sorted({'keras', 'tensorflow', 'jax'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


def test_outside_colab_the_cell_does_nothing(tmp_path):
    result = run_cell(tmp_path, colab.install_cell(), {"IMAGEGEN_INSTALL_DRY_RUN": "1"}, in_colab=False)
    assert result.stdout.splitlines()[:-1] == [] and result.stderr == ""
    assert state(result)["KERAS_BACKEND"] is None


def test_colab_installs_the_package(tmp_path):
    """The real pip, on a copy of this checkout, into a --target folder: no network, a few seconds."""
    source = tmp_path / "checkout"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    target = tmp_path / "site-packages"
    pip_args = f"--no-deps --no-build-isolation --no-index --target {target}"
    env = {"IMAGEGEN_INSTALL_SOURCE": str(source), "IMAGEGEN_PIP_ARGS": pip_args}
    result = run_cell(tmp_path, colab.install_cell(), env, import_from=target)
    installed = pathlib.Path(state(result)["imagegen"])
    assert installed.is_relative_to(target), f"imagegen imported from {installed}, not from the pip --target {target}"
    assert (installed.parent / "colab.py").exists()
    # An installed copy (no pyproject.toml next to it) reads the URL from its metadata.
    metadata = next(importlib.metadata.distributions(name="imagegen", path=[str(target)])).metadata
    assert f"Repository, {colab.repository_url(ROOT)}" in metadata.get_all("Project-URL")


def test_colab_gpu_runtime_installs_only_the_package(tmp_path):
    if pathlib.Path("/dev/accel0").exists():
        pytest.skip("this machine is a TPU VM")
    result = run_cell(tmp_path, colab.install_cell(), {"IMAGEGEN_INSTALL_DRY_RUN": "1"})
    command = result.stdout.splitlines()[0]
    assert f"git+{colab.repository_url(ROOT)}" in command
    has_tensorflow = importlib.util.find_spec("tensorflow") is not None  # the same Python runs the cell
    assert ("tensorflow-cpu" in command) != has_tensorflow, "tensorflow-cpu only where TensorFlow is missing"
    assert state(result)["KERAS_BACKEND"] is None, "the next cell's default (TensorFlow) applies"


def test_colab_tpu_runtime_adds_tensorflow_cpu_and_runs_on_jax(tmp_path):
    env = {"IMAGEGEN_INSTALL_DRY_RUN": "1", "COLAB_TPU_ADDR": "10.0.0.2:8470", "TEST_WITHOUT_TENSORFLOW": "1"}
    result = run_cell(tmp_path, colab.install_cell(), env)
    assert result.stdout.splitlines()[0].endswith("tensorflow-cpu tensorflow-datasets")
    assert state(result)["KERAS_BACKEND"] == "jax"


def test_a_tpu_runtime_with_tensorflow_keeps_it(tmp_path):
    """tensorflow-cpu on top of an installed TensorFlow would mix two builds in one folder."""
    result = run_cell(tmp_path, colab.install_cell(), {"IMAGEGEN_INSTALL_DRY_RUN": "1", "COLAB_TPU_ADDR": "10.0.0.2:8470"})
    assert "tensorflow" not in result.stdout.splitlines()[0].split("-q", 1)[1]
    assert state(result)["KERAS_BACKEND"] == "jax"


def test_drive_cache_is_opt_in(tmp_path):
    source = colab.install_cell().replace("USE_DRIVE_CACHE = False", "USE_DRIVE_CACHE = True")
    result = run_cell(tmp_path, source, {"IMAGEGEN_INSTALL_DRY_RUN": "1"})
    assert "mounted /content/drive" in result.stdout
    assert state(result)["IMAGEGEN_CACHE"] == "/content/drive/MyDrive/imagegen-cache"
    assert state(result)["TFDS_DATA_DIR"].startswith("/content/drive/MyDrive/imagegen-cache/")
    assert "mounted" not in run_cell(tmp_path, colab.install_cell(), {"IMAGEGEN_INSTALL_DRY_RUN": "1"}).stdout


def test_a_failed_install_says_what_to_fix(tmp_path):
    pip_args = f"--no-index --no-deps --target {tmp_path / 'target'}"
    env = {"IMAGEGEN_INSTALL_SOURCE": str(tmp_path / "missing"), "IMAGEGEN_PIP_ARGS": pip_args}
    result = run_cell(tmp_path, colab.install_cell(), env)
    assert result.returncode != 0
    assert "RuntimeError: pip could not install" in result.stderr and "[project.urls]" in result.stderr
    assert "CalledProcessError" not in result.stderr
