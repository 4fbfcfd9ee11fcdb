# Two commands do everything on a fresh machine:
#   make validate   set up .venv, then run `pytest validation` (writes reports/validation.html)
#   make test       set up .venv, then run the unit tests
# Extra pytest options pass through ARGS, e.g. make validate ARGS="--profile paper --device cuda".

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.14.1 with torchvision 0.29.1: zennit imports torchvision, and PyPI's
# torchvision fails to import beside other torch builds (method.md section 1).
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup validate test lint benchmark clean-cache

$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[test,cluster]"
	touch $(BIN)/activate

setup: $(BIN)/activate

validate: setup
	$(BIN)/python -m pytest validation $(ARGS)

test: setup
	$(BIN)/python -m pytest tests $(ARGS)

lint: setup
	$(BIN)/ruff check .

benchmark: setup
	$(BIN)/python -m pytest tests/benchmarks --benchmark-only $(ARGS)

clean-cache: setup
	$(BIN)/python -m pmt_core cache clear
