#!/usr/bin/env bash
# `make demo`: the whole pipeline on sample_data/ into a fresh lake, with a summary.
set -euo pipefail
BIN=${1:-target/release/cspcost}
OUT=${2:-out}
rm -rf "$OUT"
step() { printf '\n== %s\n' "$*"; "$BIN" "$@"; }
step ingest reference --lake "$OUT" sample_data/reference
step ingest prices --lake "$OUT" sample_data/prices
# Two usage dumps: the second re-pulls days of the first (restated and unchanged records).
step ingest usage --lake "$OUT" sample_data/usage/dump-2026-01-20
step ingest usage --lake "$OUT" sample_data/usage/dump-2026-02-16
step ingest reservations --lake "$OUT" sample_data/reservations
step rate --lake "$OUT"
step quarantine --lake "$OUT"
printf '\nLake written to %s/ (costs/ is Hive-partitioned Parquet: org=<id>/month=<YYYY-MM>/).\n' "$OUT"
