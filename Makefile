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

fuzz: setup ## fuzz the running pipeline at full size (5,000 hostile transactions; CI runs 600)
	FRAUDSTREAM_FUZZ_CASES=5000 $(PY) -m pytest tests/fuzz -s

bench: setup ## run the benchmarks (numbers printed and written to bench-results/*.json)
	$(PY) -m bench.features_bench
	$(PY) -m bench.pipeline_bench
	$(PY) -m bench.api_bench
	$(PY) -m bench.backtest_bench
	$(PY) -m bench.drift_bench
	$(PY) -m bench.online_recovery
	$(PY) -m bench.console_bench
	$(PY) -m bench.rollout_bench
	$(PY) -m bench.validation_bench

chaos: setup ## the stream fault suite at full size (SIGKILL storm, broker/Redis restarts, scale-out)
	FRAUDSTREAM_CHAOS=full $(PY) -m pytest tests/faults -s

lint: setup ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy streams features models scoring drift replay infra bench

deploy-sync: ## copy the Prometheus rules and the dashboard into the Helm chart's files/
	cp infra/deploy/prometheus/rules/*.yml infra/deploy/helm/fraudstream/files/rules/
	cp infra/deploy/grafana/dashboards/*.json infra/deploy/helm/fraudstream/files/dashboards/

deploy-check: setup ## validate the operations kit: promtool, dashboard lint, helm, compose, hadolint
	$(PY) -m pytest tests/unit/test_deploy_prometheus.py tests/unit/test_deploy_grafana.py \
		tests/unit/test_deploy_helm.py tests/unit/test_deploy_compose.py

.PHONY: help setup demo test unit lint bench fuzz chaos deploy-sync deploy-check
