# Quick start: `make run` (gateway + built-in emulator) and `make test` (everything CI runs).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TOOLS  := $(VENV)/.toolchains
# The shipped build (mypyc-compiled modules), unpacked: PYTHONPATH=$(COMPILED) runs it on this venv.
COMPILED := $(VENV)/compiled
# checkov pins its own dependency tree: it gets a virtualenv of its own, inside .venv.
CHECKOV := $(VENV)/checkov/bin/checkov
GOENV  := GO111MODULE=off GOPATH=$(CURDIR)/clients/go:/usr/share/gocode GOFLAGS=
LISTEN ?= 127.0.0.1:50051

.DEFAULT_GOAL := help
.PHONY: bench bench-instructions bench-smoke deploy-check compiled
.PHONY: help venv toolchains run generate check-generated lint typecheck buf-lint buf-breaking release-contract go-vet ts-build unit test clean

help:
	@echo "make run       start the gateway on $(LISTEN) with the built-in SmartPush emulator"
	@echo "make test      lint, type check, contract checks, generated-code freshness and all tests"
	@echo "make generate  regenerate every language's stubs from proto/"
	@echo "make bench     the benchmark (a few minutes): table, bench/results/latest.{json,png}"

# The virtualenv is rebuilt whenever a dependency list changes.
$(STAMP): pyproject.toml clients/python/pyproject.toml clients/python-protos/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# Then the stubs again, editable: the gateway's own install copies them, and `make generate`
	@# must show in this venv at once (pip will not take the same project editable and by path in one go).
	$(BIN)/python -m pip install --quiet -e ./clients/python-protos -e ./clients/python
	@touch $@

venv: $(STAMP)

# Go (Debian packages) and TypeScript (npm ci) toolchains for the polyglot clients.
$(TOOLS): scripts/install-toolchains.sh clients/typescript/package-lock.json $(STAMP)
	scripts/install-toolchains.sh
	@touch $@

toolchains: $(TOOLS)

$(CHECKOV):
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install --quiet checkov==3.3.30

run: $(STAMP)
	$(BIN)/smartpush-gateway serve --emulator --listen $(LISTEN)

generate: $(STAMP) $(TOOLS)
	$(BIN)/python scripts/generate.py

check-generated: $(STAMP) $(TOOLS)
	$(BIN)/python scripts/generate.py --check

buf-lint: $(STAMP)
	$(BIN)/buf lint proto

# The contract as last released is the committed image proto/baseline.binpb.
buf-breaking: $(STAMP)
	$(BIN)/buf breaking proto --against proto/baseline.binpb

# Run when a contract version is released: the new baseline for buf breaking.
release-contract: $(STAMP)
	$(BIN)/buf build proto -o proto/baseline.binpb

go-vet: $(TOOLS)
	$(GOENV) go vet github.com/smartpush-gateway/go/...

ts-build: $(TOOLS)
	cd clients/typescript && npx tsc -p tsconfig.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

# The image ships the gateway compiled by mypyc (pyproject's hook); built from a copy of the tree.
$(COMPILED)/.built: $(STAMP) pyproject.toml scripts/build_compiled.py $(shell find gateway clients/python-protos/src -name '*.py*')
	@touch $(VENV)/.compiled-started
	$(BIN)/python scripts/build_compiled.py $(COMPILED)
	@# Stamped with the build's start: a source edited while it ran is newer, and rebuilds next time.
	@touch -r $(VENV)/.compiled-started $@ && rm -f $(VENV)/.compiled-started

compiled: $(COMPILED)/.built

# The suite twice: on the sources, then on the compiled build that ships (importlib mode, so the
# tree's own gateway/ is not put ahead of it on sys.path; a test checks which build it ran).
test: $(STAMP) $(TOOLS) $(CHECKOV) lint typecheck buf-lint buf-breaking check-generated go-vet ts-build compiled
	$(BIN)/pytest -q -p no:cacheprovider
	PYTHONPATH=$(CURDIR)/$(COMPILED):$(CURDIR) SMARTPUSH_TEST_COMPILED=$(CURDIR)/$(COMPILED) \
		$(BIN)/pytest -q -p no:cacheprovider --import-mode=importlib

# Ratios measured side by side in one run (bench/run.py); not part of `make test`.
bench: $(STAMP) compiled
	$(BIN)/python -m bench.run --soak 300 --compiled $(COMPILED)

# Instructions per call under callgrind (repeatable where timings drift); needs valgrind.
bench-instructions: $(STAMP) compiled
	$(BIN)/python -m bench.instructions --compiled $(COMPILED)

bench-smoke: $(STAMP)
	$(BIN)/python -m bench.run --smoke --out bench/results

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
