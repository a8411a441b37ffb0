# Every target sets up what it needs: a fresh machine needs only python3 (3.11+), npm and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
BUF := node_modules/.bin/buf
PROTO_FILES := $(wildcard proto/taskscheduler/v1/*.proto)
# Test processes fork children while gRPC threads run; see taskscheduler/__init__.py.
export GRPC_ENABLE_FORK_SUPPORT := false
GOOGLEAPIS = $(shell $(BIN)/python -c 'import os; from google.api import annotations_pb2 as a; print(os.path.dirname(a.__file__))')

.PHONY: dev test unit integration lint proto check-proto bench clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(BUF): package.json
	npm install --no-audit --no-fund --silent
	touch $@

build/proto-deps/google/api/annotations.proto: $(INSTALLED)
	mkdir -p build/proto-deps/google/api
	cp $(GOOGLEAPIS)/annotations.proto $(GOOGLEAPIS)/http.proto build/proto-deps/google/api/

## proto: regenerate the committed Python stubs from proto/.
proto: $(INSTALLED)
	$(BIN)/python -m taskscheduler.protogen --out .

## check-proto: fail when the committed stubs differ from what proto/ generates.
check-proto: $(INSTALLED)
	$(BIN)/python -m taskscheduler.protogen --check

## lint: ruff, buf lint and the generated-stub check.
lint: $(INSTALLED) $(BUF) build/proto-deps/google/api/annotations.proto check-proto
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BUF) lint

## test: every check and every test (unit, integration, chaos).
test: lint
	$(BIN)/pytest -q

unit: $(INSTALLED)
	$(BIN)/pytest -q tests/unit

integration: $(INSTALLED)
	$(BIN)/pytest -q tests/integration

## dev: private etcd, one coordinator, one agent and the gateway on loopback.
dev: $(INSTALLED)
	$(BIN)/taskscheduler dev

## bench: throughput, schedule lag, a million jobs with a failover, agent memory and a
## profile on loopback; writes docs/benchmarks.md. QUICK=1: under 2 minutes, writes
## build/benchmarks-quick.md. py-spy (from PyPI) profiles the coordinator; without it
## the harness falls back to cProfile.
bench: $(INSTALLED)
	$(BIN)/py-spy --version >/dev/null 2>&1 || $(BIN)/pip install --quiet py-spy \
		|| echo "py-spy not installed; the profile falls back to cProfile"
	$(BIN)/python -m bench $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) node_modules build .pytest_cache .ruff_cache
