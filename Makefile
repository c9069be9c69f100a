# The README's commands. Everything runs from the repository's own virtualenv and Airflow home.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
# The lock pins torch==2.13.0, which PyPI serves (with CUDA libraries on Linux). On a machine without an NVIDIA GPU,
# PyTorch's own index has the same release as a much smaller CPU-only build (2.13.0+cpu, which the pin accepts):
#   make venv TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
PIP_TORCH := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# Airflow's standalone mode starts its components as `airflow ...` subprocesses: the venv must come first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__API__HOST := 127.0.0.1
export AIRFLOW__API__PORT := 8080
export MLOPS_HOME := $(CURDIR)
# NannyML's own switch for its usage telemetry (read on every call): off wherever it is imported, tests included.
export NML_DISABLE_USAGE_LOGGING := 1
# The UIs' signing keys come from the environment; without one, a random key per `make` invocation.
export AIRFLOW__API_AUTH__JWT_SECRET ?= $(shell python3 -c 'import secrets; print(secrets.token_hex(32))')
export AIRFLOW__API__SECRET_KEY ?= $(shell python3 -c 'import secrets; print(secrets.token_hex(32))')

.PHONY: venv test-deps demo bootstrap reports lint test test-fast test-tools bench-smoke airflow-db airflow-ui mlflow-ui \
  evidently-ui serve \
  docs docs-serve screenshots audit lock clean

venv: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/pip install -q $(PIP_TORCH) -r requirements.txt -c constraints.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

# What only the tests need (requirements-test.txt: NannyML, the estimators' oracle), pinned in the same lock; the demo
# and the image do without it.
test-deps: $(TEST_STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.txt constraints.txt
	$(BIN)/pip install -q -r requirements-test.txt -c constraints.txt
	touch $@

airflow-db: $(AIRFLOW_HOME)/.initialized

$(AIRFLOW_HOME)/.initialized: $(STAMP)
	$(BIN)/airflow db migrate > /dev/null
	$(BIN)/airflow pools set mlops_registry 1 "promotions and rollbacks, one at a time" > /dev/null
	touch $@

# MLflow's per-download progress bar would print once per drift check (the scheduler path has it off too).
demo bootstrap reports: export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false
demo: venv airflow-db
	AIRFLOW__LOGGING__LOGGING_LEVEL=WARNING $(BIN)/python scripts/demo.py

# A new dataset from raw history to a champion and scored days (README "Backfilling history"):
#   MLOPS_CONFIG=include/config/mine.yaml make bootstrap [BOOTSTRAP_ARGS="--from 2018-03-01 --to 2024-12-31"]
bootstrap: venv airflow-db
	AIRFLOW__LOGGING__LOGGING_LEVEL=WARNING $(BIN)/python scripts/bootstrap.py $(BOOTSTRAP_ARGS)

# Draw the drift reports a drift_monitoring run left to draw later (its defer_reports Param; make bootstrap leaves a
# history's reports to it), one process per core.
reports: venv
	$(BIN)/python scripts/render_reports.py $(REPORTS_ARGS)

# The style the repository declares (pyproject's [tool.ruff]), plus Airflow's AIR rules in preview on the DAG code.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff check --preview --select AIR dags plugins
	$(BIN)/ruff format --check .

# Every test (markers: unit, integration, e2e; see pyproject.toml), and the unit tests alone (well under a minute).
# Two pytest processes (pytest-xdist), each test file whole in one of them (its module fixtures built once): most
# tests wait on servers, clusters and DAG runs, so two processes share two cores well. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: venv test-deps test-tools
	$(BIN)/python -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

test-fast: venv test-deps
	$(BIN)/python -m pytest -m unit -q

# Every benchmark (bench/*.py; _*.py are their shared helpers) at its smoke size: the same code path and figures in
# seconds, results to bench/.results/ (gitignored). A benchmark that breaks, fails a correctness check or takes no
# --smoke fails this; a missed goal does not (smoke sizes and a busy machine miss them on noise).
bench-smoke: venv
	@set -e; for bench in bench/[!_]*.py; do \
	  echo "== $$bench --smoke"; started=$$(date +%s); \
	  $(BIN)/python $$bench --smoke --out bench/.results \
	    || { echo "FAILED: $$bench --smoke"; exit 1; }; \
	  echo "== $$bench: $$(( $$(date +%s) - started )) s"; \
	done

# System tools some tests drive: docker-compose (validates docker-compose.yaml, no engine needed), Chromium
# (renders the drift report), PostgreSQL (the stack's metadata database) and Redis (the Celery broker), the last two
# run as processes by tests/integration/test_stack.py and test_celery.py. Installed from Debian when missing and
# root; otherwise those tests skip and say why.
test-tools:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! { command -v docker-compose && command -v chromium \
	    && ls /usr/lib/postgresql/*/bin/initdb && command -v redis-server; } >/dev/null 2>&1; then \
	  echo "installing docker-compose, chromium, postgresql and redis-server (apt)"; \
	  apt-get update -qq >/dev/null \
	    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose chromium postgresql redis-server \
	      >/dev/null; \
	fi

# The components `airflow standalone` would start, started here so that the scheduler's and triggerer's log servers
# can stay off (standalone cannot pass --skip-serve-logs; those servers bind every interface, [::]:8793 and :8794,
# and are not needed: the API server reads task logs from .airflow/logs on this machine). LocalExecutor forks
# AIRFLOW__CORE__PARALLELISM task processes (standalone's default, 32, is ~4.5 GB); a scoring task runs one Dask
# worker per core, so more concurrent tasks than twice the cores only queue for CPU. MLflow's progress bars and its
# own stderr handler would land as ERROR lines in task logs: off, its records go through Airflow's logging instead.
airflow-ui: export AIRFLOW__CORE__EXECUTOR := LocalExecutor
airflow-ui: export AIRFLOW__CORE__PARALLELISM ?= $(shell echo $$(( 2 * $$(nproc) )))
airflow-ui: export AIRFLOW__CORE__EXECUTION_API_SERVER_URL := http://127.0.0.1:$(AIRFLOW__API__PORT)/execution/
airflow-ui: export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false
airflow-ui: export MLFLOW_CONFIGURE_LOGGING := false
airflow-ui: venv airflow-db
	@echo "Airflow UI on http://127.0.0.1:8080 (login: admin, password in .airflow/simple_auth_manager_passwords.json.generated once started); Ctrl-C stops it"
	@trap 'kill $$(jobs -p) 2>/dev/null; wait' EXIT; \
	$(BIN)/airflow api-server & \
	$(BIN)/airflow scheduler --skip-serve-logs & \
	$(BIN)/airflow dag-processor & \
	$(BIN)/airflow triggerer --skip-serve-logs & \
	wait

mlflow-ui: venv
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns.db --host 127.0.0.1 --port 5000 \
	  --allowed-hosts 127.0.0.1:5000,localhost:5000

# Evidently's own UI over its workspace (monitoring.evidently_workspace of MLOPS_CONFIG, default the demo's): per model
# a project whose dashboard charts each checked day's drift and each scored day's realized and estimated metric.
# DO_NOT_TRACK: Evidently's switch for its usage telemetry, off here.
EVIDENTLY_PORT ?= 8002
evidently-ui: venv
	@workspace=$$($(BIN)/python -c 'from pipelines.config import load_config; print(load_config().monitoring.evidently_workspace or "")') \
	  || exit 1; \
	test -n "$$workspace" || { echo "monitoring.evidently_workspace is null in the config: no workspace"; exit 1; }; \
	echo "Evidently UI on http://127.0.0.1:$(EVIDENTLY_PORT) (workspace $$workspace); Ctrl-C stops it"; \
	DO_NOT_TRACK=1 $(BIN)/evidently ui --workspace "$$workspace" --host 127.0.0.1 --port $(EVIDENTLY_PORT)

# The model server over the demo's registry (run `make demo` first): the champion of each config, on loopback.
serve: venv
	@echo "model server on http://127.0.0.1:8000 (POST /v1/models/<name>:predict, /readyz, /metrics)"
	$(BIN)/python -m pipelines.serving --host 127.0.0.1 --port 8000 --config $${MLOPS_CONFIG:-include/config/demo.yaml}

# The documentation site (mkdocs.yml): the configuration reference must match pipelines/config.py, then a strict build
# (a broken link or anchor, or a page missing from the nav, fails it). Output in site/.
docs: venv
	$(BIN)/python scripts/config_reference.py --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

DOCS_PORT ?= 8001
docs-serve: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

# Retake docs/img/*.png from the outputs of `make demo` (needs Chromium: `make test-tools` installs it). Starts its own
# Airflow API server on 127.0.0.1:18080 and MLflow UI on 127.0.0.1:15000 (not the UIs' ports), and stops them.
screenshots: venv
	$(BIN)/python scripts/screenshots.py

# Known vulnerabilities in the pinned set (the full lock, not only the direct pins), from PyPI's advisory data.
audit: venv
	$(BIN)/pip install -q pip-audit==2.10.1
	$(BIN)/pip-audit --strict --no-deps --disable-pip -r constraints.txt

lock: venv test-deps
	{ sed -n '1,2p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^-e' \
	  | sed -E 's/^(torch==[^+]*)\+.*/\1/'; } > constraints.tmp && mv constraints.tmp constraints.txt  # PyPI's spelling

clean:
	rm -rf .airflow data mlruns.db mlartifacts evidently_workspace
