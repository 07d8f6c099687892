# The commands people run; each is mirrored in the README.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install up test test-all lint types bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	scripts/install.sh
	@touch $@

up: install
	$(BIN)/airparadis up

test: install
	scripts/test.sh

test-all: install
	scripts/test.sh -m ""

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

types: install
	$(BIN)/mypy

bench: install
	$(BIN)/python scripts/bench_pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
