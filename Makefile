# Quick start: `make run` (gateway + built-in emulator) and `make test` (everything CI runs).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LISTEN ?= 127.0.0.1:50051

.DEFAULT_GOAL := help
.PHONY: help venv run generate check-generated lint typecheck buf-lint unit test clean

help:
	@echo "make run       start the gateway on $(LISTEN) with the built-in SmartPush emulator"
	@echo "make test      lint, type check, contract checks, generated-code freshness and all tests"
	@echo "make generate  regenerate every language's stubs from proto/"

# The virtualenv is rebuilt whenever a dependency list changes.
$(STAMP): pyproject.toml clients/python/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./clients/python -e '.[dev]'
	@touch $@

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/smartpush-gateway serve --emulator --listen $(LISTEN)

generate: $(STAMP)
	$(BIN)/python scripts/generate.py

check-generated: $(STAMP)
	$(BIN)/python scripts/generate.py --check

buf-lint: $(STAMP)
	$(BIN)/buf lint proto

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: $(STAMP) lint typecheck buf-lint check-generated
	$(BIN)/pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
