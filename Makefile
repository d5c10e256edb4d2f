# Two commands on a fresh machine: `make demo` (set up, run a short league) and
# `make test` (set up, run the tests). Both create .venv/ themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint docs

setup: $(VENV)/.installed

# torch is pinned first so pip takes the local CPU build here (a wheel on disk)
# and the registry's CUDA build on a GPU machine; the project's own range is
# then already satisfied and pulls nothing more.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev,ray,docs]"
	touch $@

demo: setup
	$(PY) -m league demo

test: setup
	$(PY) -m pytest -q tests

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

# The docs site from docs/ and the docstrings; --strict fails on broken links and
# references that do not resolve.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site
