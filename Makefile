# Both targets do all the setup on a fresh machine, then run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench docs clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch comes from the local CPU wheel when none is importable (a bare `torch` would pull a CUDA build).
setup: $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,export,tune]"

demo: setup
	$(BIN)/deeprnn demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/speed.py

docs: setup
	$(BIN)/python docs/make_figures.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
