"""Colab: the notebooks' install cell, their "Open in Colab" badges and the README's badge table.

All three are generated from one line, ``Repository`` in ``[project.urls]`` of pyproject.toml, so that a fork
changes that line and runs ``python -m imagegen.colab sync``; tests/test_colab.py checks that the notebooks and
the README match what this module renders. Nothing here imports Keras or TensorFlow.
"""

import importlib.metadata
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the checkout, when imagegen is installed with `pip install -e .`
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_ALT = "Open In Colab"
README_START, README_END = "<!-- colab-badges:start -->", "<!-- colab-badges:end -->"

# The first cell of every notebook. The first thing a learner runs, so it stays short and says what it does.
INSTALL_CELL = '''\
# Colab only: install the course package; elsewhere this cell does nothing (run `make lab`).
# Written by `python -m imagegen.colab sync` from src/imagegen/colab.py and the URL in pyproject.toml.
USE_DRIVE_CACHE = False  # True: keep downloads, weights and training checkpoints on Google Drive across Colab sessions

import importlib.util, os, shlex, subprocess, sys

if "google.colab" in sys.modules:
    # Colab has Keras and JAX, and on GPU runtimes TensorFlow and tensorflow-datasets: only the course is new.
    packages = [os.environ.get("IMAGEGEN_INSTALL_SOURCE") or "imagegen @ git+{url}"]
    tpu = (bool(os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME")) or os.path.exists("/dev/accel0")
           or importlib.util.find_spec("libtpu") is not None)
    if importlib.util.find_spec("tensorflow") is None:  # a TPU runtime has no TensorFlow; tf.data needs it
        packages += ["tensorflow-cpu", "tensorflow-datasets"]
    if tpu:
        os.environ["KERAS_BACKEND"] = "jax"  # on a TPU the models run on JAX
    # For tests: IMAGEGEN_PIP_ARGS adds pip options, IMAGEGEN_INSTALL_DRY_RUN=1 prints the command instead.
    command = [sys.executable, "-m", "pip", "install", "-q", *packages]
    command += shlex.split(os.environ.get("IMAGEGEN_PIP_ARGS", ""))
    if os.environ.get("IMAGEGEN_INSTALL_DRY_RUN"):
        print(shlex.join(command))
    elif subprocess.run(command).returncode != 0:
        raise RuntimeError(
            f"pip could not install {{packages}} (its error is above). Check that this runtime has internet access. "
            "A fork sets its own URL in [project.urls] of pyproject.toml, then runs `python -m imagegen.colab sync`."
        )
    if USE_DRIVE_CACHE:
        from google.colab import drive

        drive.mount("/content/drive")
        os.environ["IMAGEGEN_CACHE"] = "/content/drive/MyDrive/imagegen-cache"  # weights, checkpoints
        os.environ["TFDS_DATA_DIR"] = "/content/drive/MyDrive/imagegen-cache/tensorflow_datasets"  # data sets
'''


def repository_url(root=ROOT):
    """The course's repository URL: pyproject.toml in a checkout (the source of truth), else installed metadata."""
    pyproject = pathlib.Path(root) / "pyproject.toml"
    if pyproject.exists() and sys.version_info >= (3, 11):  # tomllib; Python 3.10 reads the metadata below
        import tomllib

        project = tomllib.loads(pyproject.read_text()).get("project", {})
        if project.get("name") == "imagegen":
            return project["urls"]["Repository"]
    for entry in importlib.metadata.metadata("imagegen").get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip() == "Repository":
            return url.strip()
    raise LookupError("no Repository URL in [project.urls] of pyproject.toml nor in imagegen's installed metadata")


def github_path(url):
    """'owner/name' of a GitHub URL: Colab opens notebooks straight from GitHub."""
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?", url)
    if not match:
        raise ValueError(f"{url!r} is not a https://github.com/OWNER/REPO URL, which Colab's badges need")
    return f"{match[1]}/{match[2]}"


def install_cell(url=None):
    """The source of every notebook's first code cell, which installs the course in Colab."""
    return INSTALL_CELL.format(url=(url or repository_url()).rstrip("/")).rstrip("\n")


def badge(notebook, url=None):
    """The "Open in Colab" badge, as markdown, for a notebook name such as '03_ddim' or 'notebooks/03_ddim.ipynb'."""
    name = pathlib.PurePath(notebook).stem
    repository = github_path(url or repository_url())
    target = f"https://colab.research.google.com/github/{repository}/blob/main/notebooks/{name}.ipynb"
    return f"[![{BADGE_ALT}]({BADGE_IMAGE})]({target})"


def badge_table(notebooks, url=None):
    """The README's table of badges, one row per notebook, between the two HTML comment markers."""
    rows = [f"| `{pathlib.PurePath(n).stem}` | {badge(n, url)} |" for n in notebooks]
    return "\n".join([README_START, "| notebook | Colab |", "|---|---|", *rows, README_END])


def with_badge(title_source, badge_line):
    """A title cell with the badge as its own paragraph right under the '# Title' line (an old badge is replaced)."""
    title, _, rest = title_source.partition("\n")
    rest = rest.lstrip("\n")
    if rest.startswith(f"[![{BADGE_ALT}]"):
        rest = rest.partition("\n")[2].lstrip("\n")
    return f"{title}\n\n{badge_line}\n\n{rest}".rstrip("\n")


def notebook_paths(root=ROOT):
    """The course's notebooks, in order: notebooks/NN_*.ipynb."""
    return sorted((pathlib.Path(root) / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def sync(root=ROOT):
    """Rewrite cells 0 (badge) and 1 (install) of every notebook and the README's table; return the changed files.

    Only those cells' sources change: outputs, execution counts and every other cell are kept as they are.
    """
    import nbformat

    url, changed = repository_url(root), []
    for path in notebook_paths(root):
        notebook = nbformat.read(path, as_version=4)
        title, install = notebook.cells[0], notebook.cells[1]
        new_title, new_install = with_badge(title.source, badge(path, url)), install_cell(url)
        if (title.source, install.source) != (new_title, new_install):
            title.source, install.source = new_title, new_install
            nbformat.write(notebook, path)
            changed.append(path)
    readme = pathlib.Path(root) / "README.md"
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise LookupError(f"README.md needs the markers {README_START} and {README_END} where the table goes")
    head, rest = text.split(README_START, 1)
    new_text = head + badge_table(notebook_paths(root), url) + rest.split(README_END, 1)[1]
    if new_text != text:
        readme.write_text(new_text)
        changed.append(readme)
    return changed


def main(argv=None):
    """`python -m imagegen.colab sync`: regenerate from pyproject.toml; `... cell` or `... table`: print them."""
    command = ((argv if argv is not None else sys.argv[1:]) or ["sync"])[0]
    if command == "sync":
        print("\n".join(f"updated {path.relative_to(ROOT)}" for path in sync()) or "already in sync")
    elif command in ("cell", "table"):
        print(install_cell() if command == "cell" else badge_table(notebook_paths()))
    else:
        sys.exit(f"usage: python -m imagegen.colab [sync|cell|table], not {command!r}")


if __name__ == "__main__":
    main()
