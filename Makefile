# The two commands of the README: `make demo` (set up, run the whole loop) and `make test`.
# `make test-fast`: lint and every test that needs no service, in under two minutes.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.8

.PHONY: setup browser demo stop test test-fast lint check suites ui-airflow ui-mlflow serve bench clean

setup: $(VENV)/.installed

# A project-local virtualenv with exactly the locked versions (requirements.lock), then the package.
$(VENV)/.installed: requirements.lock pyproject.toml
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	uv venv --seed --allow-existing --python 3.11 $(VENV)
	uv pip sync --python $(PY) requirements.lock
	uv pip install --python $(PY) --no-deps -e .
	@touch $@

demo: setup
	$(PY) -m mlops demo

# Stop the embedded service that `make demo` or `make ui-airflow` started.
stop: setup
	$(PY) -m mlops service stop

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m mlops suites --check

# Every use case through `python -m mlops check` (docs/operations.md, "Changing a use case"):
# config, suites, sample, feature code, contract with the champion, smoke run of the DAGs.
check: setup
	$(PY) -m mlops check

# Debian's Chromium for the browser tests (tests/ui), driven by Playwright from the lock file.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }

test: lint browser
	$(VENV)/bin/pytest

# The tiers left out are marked (pyproject.toml): runs of whole pipelines (slow), real PostgreSQL,
# S3 or MLflow servers (integration), Chromium (browser), fault injection (faults), and the
# platform's Airflow service started in a subprocess (service). `make test` runs them all.
FAST_TESTS := not slow and not integration and not browser and not faults and not service

test-fast: lint
	$(VENV)/bin/pytest -q -m "$(FAST_TESTS)"

bench: setup
	$(PY) bench/pipeline_throughput.py
	$(PY) bench/scoring_throughput.py
	$(PY) bench/drift_sampling.py
	$(PY) bench/ui_pages.py
	$(PY) bench/serving_latency.py

suites: setup
	$(PY) -m mlops suites

# Open what the demo produced (embedded default).
ui-airflow: setup
	$(PY) -m mlops ui airflow

ui-mlflow: setup
	$(PY) -m mlops ui mlflow

# The champion over HTTP (docs/operations.md, "Online serving"): make serve USE_CASE=delivery_time SERVE_PORT=8091
USE_CASE ?= churn
SERVE_PORT ?= 8090
serve: setup
	$(PY) -m mlops serve --use-case $(USE_CASE) --port $(SERVE_PORT)

clean: stop
	rm -rf var
