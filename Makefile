# cspcost — `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

CARGO  ?= cargo
VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := target/release/cspcost
OUT    ?= out
PYDEPS := duckdb==2.0.0 pyarrow==26.0.1

.PHONY: help build demo test unit lint bench venv clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

build: ## Release build of the cspcost binary
	$(CARGO) build --release --locked

$(VENV)/.ok:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(PYDEPS)
	touch $@

venv: $(VENV)/.ok ## Python venv with duckdb + pyarrow (interop tests, benchmark peer)

demo: build ## Run the whole pipeline on sample_data/ into out/ and print a summary
	@bash scripts/demo.sh $(BIN) $(OUT)

test: venv ## Run every test (unit, integration, property, DuckDB/pyarrow interop)
	CSPCOST_PYTHON=$(abspath $(PY)) CSPCOST_REQUIRE_INTEROP=1 $(CARGO) test --locked

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

bench: venv ## Benchmark cspcost against DuckDB (BENCH_SIZE=1M|10M|100M)
	@bash benches/run.sh

clean: ## Remove build outputs, the venv and out/
	rm -rf target $(VENV) $(OUT)
