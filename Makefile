# Quantum Trader — the two commands a new machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install lint typecheck bench crd dashboards clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## run: all six workers in one process on an embedded Redis and the simulated exchange
run: $(STAMP)
	$(BIN)/qt run --profile examples/paper.yaml $(ARGS)

## test: the whole suite (real Redis, real LightGBM, kopf against kmock, helm template)
test: $(STAMP)
	$(BIN)/python -m pytest -p no:randomly $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check workers operator tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

crd: $(STAMP)
	$(BIN)/python -m quantum_operator.crd --write

dashboards: $(STAMP)
	$(BIN)/python tools/dashboards.py --write

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .tools
