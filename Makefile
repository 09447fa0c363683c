# Both targets do all the setup on a fresh machine, then run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS := dev,export,tune,gpu,translate,forecast

.PHONY: setup demo test lint bench docs clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch comes from the local CPU wheel when none is importable (a bare `torch` would pull a CUDA build).
setup: $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || { \
	  echo "make setup: installing torch==2.13.0 (the CPU wheel; about a minute) into $(VENV)"; \
	  $(BIN)/pip install torch==2.13.0; }
	@echo "make setup: installing deeprnn (editable) with the extras $(EXTRAS) into $(VENV)"
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"

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
