# Theory and Application of Image Generation: course commands.
#   make course     execute every notebook (quick mode offline), HTML into build/
#   make test       unit tests + every notebook through nbval, quick mode
#   make lab        JupyterLab on the course
#   make notebooks  re-execute the committed notebooks in place, quick mode
#   make rehearsal  every notebook in full mode on this CPU, offline, on stand-ins for the downloads
#   make slides     the talk from slides/talk.md: slides/build/talk.html (reveal.js) and talk.pdf (beamer)
# Each target creates .venv and installs the tested set first if needed.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-torch

.PHONY: course test lab notebooks rehearsal slides install clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed, found " + sys.version.split()[0] + "; set PYTHON=python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -e .
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

# The tests add PyTorch (CPU), diffusers and transformers: the parity tests compare against them.
$(TEST_STAMP): requirements-torch.txt $(STAMP)
	$(PY) -m pip install --quiet -r requirements-torch.txt
	touch $(TEST_STAMP)

course: $(STAMP)
	$(PY) -m imagegen.course run

# The unit tests run again on JAX: everything in src/ must work on both backends.
# (The distribution test starts both backends itself; the notebook and slides checks do not depend on one.)
# Backend-free checks run once: the single-file and diffusers-repository tests check file selection, names and
# schedules (numpy; the diffusers folder's loading parity runs on JAX in test_stable_diffusion.py), and the device
# check's dry run forces the JAX backend itself, so the first pass already ran it on JAX.
JAX_SKIP := --ignore=tests/test_distribution.py --ignore=tests/test_course.py --ignore=tests/test_notebooks_committed.py \
            --ignore=tests/test_slides.py --ignore=tests/test_single_file.py --ignore=tests/test_device_check.py \
            --ignore=tests/test_diffusers_repository.py

# The unit tests run in two processes (pytest-xdist, one per core: most of a small test's time is Python and
# graph tracing on one core). The notebooks run one at a time, in order, since later ones read what earlier ones
# cached. The full-size Stable Diffusion parity tests (about 15 GB) run alone, in pytest processes of their own,
# so that their memory is given back to the system before the notebooks' kernels start.
XDIST := -n 2 --dist loadfile
test: $(TEST_STAMP)
	IMAGEGEN_MODE=quick $(PY) -m pytest tests -m "not full_size" $(XDIST)
	IMAGEGEN_MODE=quick $(PY) -m pytest notebooks
	$(PY) -m imagegen.course rehearse
	IMAGEGEN_MODE=quick $(PY) -m pytest -m full_size tests
	IMAGEGEN_MODE=quick KERAS_BACKEND=jax $(PY) -m pytest tests $(JAX_SKIP) -m "not full_size" $(XDIST)
	IMAGEGEN_MODE=quick KERAS_BACKEND=jax $(PY) -m pytest -m full_size tests

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

# Full mode rehearsed: the full-mode code of every notebook, offline, at quick sizes, on stand-ins written in the
# published formats (imagegen.stand_ins); fails if a notebook fails or a full-mode branch was not executed.
rehearsal: $(STAMP)
	$(PY) -m imagegen.course rehearse

notebooks: $(STAMP)
	IMAGEGEN_MODE=quick $(PY) -m imagegen.course run --in-place

# The talk's slides from one source. Needs pandoc and LaTeX (README, "Slides"), and npm once for reveal.js,
# which lands in slides/build/node_modules so that talk.html works offline; figures are copied next to it.
REVEALJS_VERSION := 4.6.1
SLIDES_BUILD ?= slides/build
SLIDES_OUT := $(abspath $(SLIDES_BUILD))
PANDOC_SLIDES := pandoc talk.md --from markdown --slide-level 2 --standalone

slides: $(SLIDES_BUILD)/node_modules/reveal.js/dist/reveal.js
	mkdir -p $(SLIDES_BUILD) && rm -rf $(SLIDES_BUILD)/figures && cp -R slides/figures $(SLIDES_BUILD)/figures
	cd slides && $(PANDOC_SLIDES) --to revealjs --mathml -V theme=white -V revealjs-url=node_modules/reveal.js -o $(SLIDES_OUT)/talk.html
	cd slides && $(PANDOC_SLIDES) --to beamer --pdf-engine pdflatex -o $(SLIDES_OUT)/talk.pdf

$(SLIDES_BUILD)/node_modules/reveal.js/dist/reveal.js:
	mkdir -p $(SLIDES_BUILD)
	npm install --prefix $(SLIDES_BUILD) --no-save --no-package-lock --no-audit --no-fund reveal.js@$(REVEALJS_VERSION)

clean:
	rm -rf build slides/build
