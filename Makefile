# The README's two commands: `make serve` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Marker files record which extras are installed; they are rebuilt when pyproject.toml changes.
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-train-ray-paper-dev

.PHONY: serve test lint install install-dev clean examples

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[train,ray,paper,dev]'
	touch $@ $(RUNTIME_STAMP)

install: $(RUNTIME_STAMP)

install-dev: $(DEV_STAMP)

# The bundled model (models/default) on a SQLite file; settings from HCT_* variables or .env.
serve: install
	$(BIN)/hct serve

lint: install-dev
	$(BIN)/ruff check .

test: install-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Remake examples/ (sample.json, sample.fcs, export.csv) with the project's own commands.
examples: install
	HCT=$(BIN)/hct examples/make.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
