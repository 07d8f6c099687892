# The commands people run; each is mirrored in the README.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install install-serve up test test-all lint types bench bench-scaling clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	scripts/install.sh
	@touch $@

# Serving only: the platform with the simple model, no TensorFlow, no torch, no test tools.
install-serve:
	AIRPARADIS_EXTRAS= scripts/install.sh
	@touch $(VENV)/.installed-serve

# On a serving-only install `up` does not pull the rest in.
up:
	@[ -f $(VENV)/.installed-serve ] || $(MAKE) install
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

bench-scaling: install
	$(BIN)/python scripts/bench_scaling.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
