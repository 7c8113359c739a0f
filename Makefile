# gradsight: `make demo` trains on the bundled data, `make test` runs the test suite.
# Both create the virtual environment in $(VENV) first (Python 3.10+ with venv needed).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Extra pip arguments, e.g. an index of CPU-only torch wheels.
PIP_INSTALL_ARGS ?=
STAMP := $(VENV)/.gradsight-installed

.PHONY: help venv demo test lint format bench clean

help:
	@echo "make demo   set up, then train the article's CNN on the bundled Fashion-MNIST subset"
	@echo "make test   set up, then run the test suite"
	@echo "make lint   ruff (lint + format check), mypy and hadolint"
	@echo "make bench  run the six benchmarks in benchmarks/ on the CPU (minutes); GPU: benchmarks/gpu_checks.sh"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "gradsight needs Python 3.10+"'
	@$(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: on Debian run: apt-get install python3-venv"; exit 1; }
	$(PY) -m pip install --quiet $(PIP_INSTALL_ARGS) -e '.[dev,export]'
	@touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(VENV)/bin/gradsight train

test: venv
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks scripts examples notebooks
	$(VENV)/bin/ruff format --check src tests benchmarks scripts examples notebooks
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint docker/Dockerfile

format: venv
	$(VENV)/bin/ruff check --fix src tests benchmarks scripts examples notebooks
	$(VENV)/bin/ruff format src tests benchmarks scripts examples notebooks

bench: venv
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_graph.py
	$(PY) benchmarks/bench_trace.py
	$(PY) benchmarks/bench_monitor.py
	$(PY) benchmarks/bench_numpy_ref.py
	$(PY) benchmarks/bench_distributed.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
