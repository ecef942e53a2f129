#!/usr/bin/env bash
# `make demo`: the whole pipeline on sample_data/ into a fresh lake (out/), with a summary.
set -euo pipefail
BIN=${1:-target/release/cspcost}
OUT=${2:-out}
rm -rf "$OUT"
export CSPCOST_LAKE="$PWD/$OUT"
step() { printf '\n== cspcost %s\n' "$*"; "$BIN" "$@"; }
# Nightly: ingest reference, prices, two usage dumps (the second restates days of the first)
# and reservation orders; rate the changed months; price the reservations.
step run pipelines/nightly.toml
# Month end: re-rate the closed month, reconcile the billing cycle with Microsoft's invoice.
step run pipelines/month-end.toml
step assets --lake "$OUT"
step quarantine --lake "$OUT"
printf '\nLake written to %s/: costs/ is Hive-partitioned Parquet (org=<id>/month=<YYYY-MM>/).\n' "$OUT"
printf 'Try: duckdb -c "SELECT org, month, BillingCurrency, sum(BilledCost) FROM read_parquet('"'"'%s/costs/**/*.parquet'"'"', hive_partitioning = true) GROUP BY ALL ORDER BY ALL"\n' "$OUT"
