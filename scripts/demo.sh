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
# The reseller add-on (sample_data/reseller/): reseller r-blue with two EUR customer
# organizations, their usage and reservation orders, a OneTime-only SKU and a price list.
step ingest reference --lake "$CSPCOST_LAKE" sample_data/reseller/reference
step ingest usage --lake "$CSPCOST_LAKE" sample_data/reseller/usage
step ingest reservations --lake "$CSPCOST_LAKE" sample_data/reseller/reservations
step reserve --lake "$CSPCOST_LAKE" --as-of 2026-02-16
# Month end: re-rate the closed month, reconcile the billing cycle with Microsoft's invoice,
# write January's statements; then issue them (issued statements never change).
step run pipelines/month-end.toml
step bill --lake "$CSPCOST_LAKE" --month 2026-01 --issue
for f in "$CSPCOST_LAKE"/bills/month=2026-01/*/statement.csv; do
    printf '\n== %s\n' "${f#"$CSPCOST_LAKE"/}"
    cat "$f"
done
step assets --lake "$OUT"
step quarantine --lake "$OUT"
printf '\nLake written to %s/: costs/ is Hive-partitioned Parquet (org=<id>/month=<YYYY-MM>/).\n' "$OUT"
printf 'Try: duckdb -c "SELECT org, month, BillingCurrency, sum(BilledCost) FROM read_parquet('"'"'%s/costs/**/*.parquet'"'"', hive_partitioning = true) GROUP BY ALL ORDER BY ALL"\n' "$OUT"
