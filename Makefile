# cspcost — `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

CARGO  ?= cargo
VENV   := .venv
PY     := $(VENV)/bin/python
# The binary `build` produces (honours CARGO_TARGET_DIR like cargo does).
BIN    := $(or $(CARGO_TARGET_DIR),target)/release/cspcost
OUT    ?= out
PYDEPS := duckdb==2.0.0 pyarrow==26.0.1
# Azure Storage emulator for the object-store test; 3.35.0 is the last release for Node 20.
AZURITE_VERSION := 3.35.0
AZURITE := node_modules/.azurite-$(AZURITE_VERSION).ok
# Airflow for the DAG test, in its own venv (its dependency tree is large and pinned by
# tests/airflow/constraints.txt, which must be regenerated when the version changes).
AIRFLOW_VERSION := 3.3.2
AIRFLOW_VENV := .venv-airflow
# The other engines the README names: an S3 server (moto), Spark, Polars, and the
# Kubernetes schema validator (its schemas are bundled: validation is offline).
INTEG_VENV := .venv-integ
INTEG_DEPS := moto[server]==5.2.5 pyspark==4.3.0 polars==2.1.0 kubernetes-validate==1.37.0

# The FinOps Foundation's FOCUS validator (focus-validator 2.2.1) wrapper; its venv lives in
# the ignored .venv-focus/ of the clone (the wrapper creates it on first use).
FOCUS_VALIDATE ?= ../shared/tools/focus-validate
FOCUS_VENV := $(CURDIR)/.venv-focus

.PHONY: help build demo test unit lint bench venv azurite airflow integ java clean focus

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

build: ## Release build of the cspcost binary
	$(CARGO) build --release --locked

$(VENV)/.ok:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(PYDEPS)
	touch $@

venv: $(VENV)/.ok ## Python venv with duckdb + pyarrow (interop tests, benchmark peer)

$(AZURITE):
	npm install --prefix "$(CURDIR)" --no-save --no-audit --no-fund --loglevel=error azurite@$(AZURITE_VERSION)
	touch $@

azurite: $(AZURITE) ## Azurite (Azure Storage emulator, from npm) into node_modules/ for the object-store test

$(AIRFLOW_VENV)/.ok: tests/airflow/constraints.txt
	python3 -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install --quiet --disable-pip-version-check apache-airflow==$(AIRFLOW_VERSION) --constraint tests/airflow/constraints.txt
	touch $@

airflow: $(AIRFLOW_VENV)/.ok ## Venv with Apache Airflow (pinned) for the DAG test

$(INTEG_VENV)/.ok:
	python3 -m venv $(INTEG_VENV)
	$(INTEG_VENV)/bin/pip install --quiet --disable-pip-version-check $(INTEG_DEPS)
	touch $@

integ: $(INTEG_VENV)/.ok java ## Venv with moto (S3), pyspark, polars, kubernetes-validate; Java for Spark

java: ## Java 17 for Spark: installed from Debian's packages when `java` is missing (needs root)
	@command -v java >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless; }

demo: build ## Run the whole pipeline on sample_data/ into out/ and print a summary
	@bash scripts/demo.sh $(BIN) $(OUT)

test: venv azurite airflow integ ## Run every test (unit, integration, property, interop, FOCUS validator, Azurite, S3, Airflow, Kubernetes)
	CSPCOST_PYTHON=$(abspath $(PY)) CSPCOST_FOCUS_VALIDATE=$(abspath $(FOCUS_VALIDATE)) $(CARGO) test --locked

focus: ## Run the FOCUS validator on out/ (after make demo)
	bash $(FOCUS_VALIDATE) $(OUT) $(FOCUS_VENV)

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

bench: venv ## Benchmark cspcost against DuckDB (BENCH_SIZE=1M|10M|100M)
	@bash benches/run.sh

clean: ## Remove build outputs, the venv and out/
	rm -rf target $(VENV) $(AIRFLOW_VENV) $(INTEG_VENV) $(OUT) node_modules .venv-focus
