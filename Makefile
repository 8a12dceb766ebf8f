# fraudstream task runner: `make help` lists the targets.
VENV ?= .venv
PY := $(VENV)/bin/python
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup: ## install everything needed (system packages, virtualenv, Kafka jars); idempotent
	@bash infra/setup.sh

demo: setup ## end-to-end demo on simulated data, closed loop included (a few minutes)
	$(VENV)/bin/fraudstream demo

test: setup ## run unit and integration tests (starts and stops its own Kafka and Redis)
	$(PY) -m pytest tests

unit: setup ## unit tests only (no services)
	$(PY) -m pytest tests/unit

bench: setup ## run the benchmarks (numbers printed and written to bench-results/*.json)
	$(PY) -m bench.features_bench
	$(PY) -m bench.pipeline_bench
	$(PY) -m bench.api_bench
	$(PY) -m bench.backtest_bench
	$(PY) -m bench.drift_bench
	$(PY) -m bench.online_recovery

chaos: setup ## the stream fault suite at full size (SIGKILL storm, broker/Redis restarts, scale-out)
	FRAUDSTREAM_CHAOS=full $(PY) -m pytest tests/faults -s

lint: setup ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy streams features models scoring drift replay infra

.PHONY: help setup demo test unit lint bench chaos
