# kopt: two commands matter. `make run` sets up and runs the main job on the embedded default;
# `make test` sets up and runs every test (fast and slow). Both work on a fresh machine that
# reaches PyPI (and Debian's archive for the report browser check).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXTRAS := embedded,g2p,ja,zh,cache,test
RECIPE ?= recipes/default.toml

.PHONY: setup run test test-fast lint browser clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

# The main job on the embedded default model: fetch, reference, every variant, bench, quality,
# select, report, publish (recipes/default.toml). A re-run redoes only what changed.
run: setup
	$(BIN)/kopt build $(RECIPE)

# Every test: fast ones on tiny synthetic graphs, slow ones on the real model.
test: setup
	$(BIN)/python -m pytest -q

# ruff and mypy, configured in pyproject.toml ([tool.ruff], [tool.mypy]); .ci/run runs them before the tests.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf artifacts/.tmp
