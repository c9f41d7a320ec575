# Set-up and everyday commands. `make demo` and `make test` are all a new user needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install demo test lint format sample bench mutation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/recommend demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

sample: $(STAMP)
	$(BIN)/recommend data synth --preset sample --out data/sample --overwrite

bench: $(STAMP)
	$(BIN)/python experiments/benchmarks/synth_scale.py

# Mutation testing of the core modules (hours on two cores; not part of `make test`).
# `make mutation TARGETS="topk engine-pins" JOBS=2`; targets: `python tools/mutation.py --list`.
TARGETS ?=
JOBS ?= 1
mutation: $(STAMP)
	$(BIN)/python tools/mutation.py --max-children $(JOBS) $(TARGETS)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
