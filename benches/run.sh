#!/usr/bin/env bash
# cspcost against DuckDB on the same generated month (issue 8). `make bench` runs this.
#
# For each size (default "1M 10M"; BENCH_SIZE=100M or BENCH_SIZE=1M to choose, several sizes
# separated by spaces) it generates the month once with examples/generate.rs, then measures
# wall time and peak RSS (/usr/bin/time -f '%e %M') of:
#   ingest  `cspcost ingest usage`  vs  DuckDB read_json of the same pages -> Parquet
#   rate    `cspcost rate`          vs  DuckDB SQL of the same rating (benches/duckdb_peer.py),
#                                       whose result must equal cspcost's row by row first
#   floor   DuckDB copy of the rows `rate` wrote (all columns) -> org=/month= partitioned Parquet
# and prints a table with the ratios. DuckDB runs from the venv's Python with its thread count
# set to the core count (BENCH_THREADS to change; cspcost gets the same --threads).
#
# Month shapes (BENCH_SHAPE, default "default"; several separated by spaces, or "all"):
#   default   200 subscriptions (50 tenants x 4), the generator's defaults
#   few4      4 subscriptions (4 tenants x 1): at 10M, 2.5M records each
#   one       1 subscription holding the whole month
#   many5000  5,000 subscriptions (1,000 tenants x 5): at 10M, 2k records each
# BENCH_GZIP=1 generates gzipped pages (`--gzip`, about a tenth of the disk, for 100M).
#
# Tier scopes (BENCH_SCOPES, default none; "customer organization" for both): `rate
# --tier-scope` is measured too, on a copy of the staged lake, cspcost only (the peer rates the
# default scope), with its peak RSS against 1 GiB.
#
# Environment: BENCH_SIZE, BENCH_SHAPE, BENCH_SCOPES, BENCH_GZIP, BENCH_DATA (default bench_data/), BENCH_REPEAT (runs per
# measurement, best wall time kept, default 1), BENCH_THREADS, BENCH_DUCKDB_MEMORY (DuckDB's
# memory_limit, default 8GiB), BENCH_KEEP=1 (keep the
# generated data), BENCH_GEN_ARGS (extra generator options), BENCH_PYTHON, CARGO_TARGET_DIR.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
SIZES=${BENCH_SIZE:-1M 10M}
WITH_PEER=${BENCH_PEER:-1}
SHAPES=${BENCH_SHAPE:-default}
# Tier scopes rated too, besides the default (BENCH_SCOPES="customer organization").
SCOPES=${BENCH_SCOPES:-}
SUMMARY_SCOPES=""
[ "$SHAPES" = all ] && SHAPES="default few4 one many5000"
GZIP_ARG=""
[ "${BENCH_GZIP:-0}" = 1 ] && GZIP_ARG="--gzip"
# 100 M records spill about 90 GB uncompressed: gzipped runs compress the scratch files too.
DATA=${BENCH_DATA:-$ROOT/bench_data}
PY=${BENCH_PYTHON:-$ROOT/.venv/bin/python}
THREADS=${BENCH_THREADS:-$(nproc)}
REPEAT=${BENCH_REPEAT:-1}
# DuckDB's default memory limit is 80 % of RAM; on a machine shared with other work it is
# capped (it spills to its temp directory beyond).
DUCK_MEM=${BENCH_DUCKDB_MEMORY:-8GiB}
MONTH=2026-01
PEER=$ROOT/benches/duckdb_peer.py
TIME=/usr/bin/time

die() { echo "bench: $*" >&2; exit 1; }

# Generator options of a month shape.
shape_args() {
    case $1 in
        default) echo "" ;;
        few4) echo "--tenants 4 --subscriptions-per-tenant 1" ;;
        one) echo "--tenants 1 --subscriptions-per-tenant 1" ;;
        many5000) echo "--tenants 1000 --subscriptions-per-tenant 5" ;;
        *) die "BENCH_SHAPE: unknown shape '$1' (default, few4, one, many5000, all)" ;;
    esac
}
for shape in $SHAPES; do shape_args "$shape" >/dev/null; done
for scope in $SCOPES; do
    case $scope in customer | organization) ;; *) die "BENCH_SCOPES: unknown scope '$scope' (customer, organization)" ;; esac
done
[ -x "$TIME" ] || die "$TIME is needed (GNU time) for peak RSS"
[ -x "$PY" ] || die "$PY not found: run \`make venv\` (or \`make bench\`)"
"$PY" -c 'import duckdb' || die "duckdb is not importable from $PY"

# Build once, then freeze the binaries under the data directory: the cargo target directory
# may be shared with other worktrees that rebuild it.
echo "bench: building cspcost and the generator (release)" >&2
cargo build --release --locked --bin cspcost --example generate >&2
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$DATA/bin"
cp "$TARGET/release/cspcost" "$DATA/bin/cspcost"
cp "$TARGET/release/examples/generate" "$DATA/bin/generate"
CSPCOST=$DATA/bin/cspcost
GENERATE=$DATA/bin/generate

cores=$(nproc)
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
duck=$("$PY" -c 'import duckdb; print(duckdb.__version__)')
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo "+changes" || true)

# measure NAME CMD...: run CMD REPEAT times (PREP_<NAME> run before each), keep the best wall
# time and its CPU time, and the largest peak RSS. Results go to $RES/NAME.
measure() {
    local name=$1; shift
    local best="" out
    for ((i = 1; i <= REPEAT; i++)); do
        if declare -F "prep_$name" >/dev/null; then "prep_$name"; fi
        out=$(mktemp)
        if ! "$TIME" -f '%e %M %U %S' -o "$out" "$@" >"$RES/$name.out" 2>"$RES/$name.err"; then
            cat "$RES/$name.err" >&2
            die "$name failed (output in $RES/$name.out, $RES/$name.err)"
        fi
        read -r wall rss user sys < <(tail -n 1 "$out")
        rm -f "$out"
        local cpu_s
        cpu_s=$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')
        echo "bench:   $name run $i: ${wall}s wall, ${cpu_s}s cpu, $((rss / 1024)) MiB peak RSS" >&2
        if [ -z "$best" ]; then
            best="$wall $cpu_s $rss"
        else
            best=$(echo "$best" | awk -v w="$wall" -v c="$cpu_s" -v r="$rss" \
                '{ if (w < $1) { $1 = w; $2 = c } if (r > $3) $3 = r; print }')
        fi
    done
    echo "$best" >"$RES/$name"
}

wall() { awk '{print $1}' "$RES/$1"; }
cpu_of() { awk '{print $2}' "$RES/$1"; }
rss_mib() { awk '{printf "%d", $3 / 1024}' "$RES/$1"; }
ratio() { awk -v a="$(wall "$1")" -v b="$(wall "$2")" 'BEGIN {printf "%.2f", a / b}'; }
busy() { awk -v w="$(wall "$1")" -v c="$(cpu_of "$1")" 'BEGIN {printf "%.2f", c / w}'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN {print (r <= t) ? "met" : "NOT met"}'; }

TABLE_ROWS=""
SUMMARY=""
for shape in $SHAPES; do
for size in $SIZES; do
    dir=$DATA/$size-$shape
    RES=$dir/results
    rm -rf "$dir"
    mkdir -p "$RES" "$dir/tmp"
    DUCK=(--threads "$THREADS" --memory-limit "$DUCK_MEM" --temp "$dir/tmp/duck")
    echo "bench: $size $shape: generating $MONTH" >&2
    # shellcheck disable=SC2086
    "$GENERATE" --records "$size" --out "$dir/input" --month "$MONTH" $(shape_args "$shape") $GZIP_ARG ${BENCH_GEN_ARGS:-} >&2
    input_mb=$(du -sm "$dir/input/usage" | awk '{print $1}')

    # Reference data and prices are tiny and staged outside the measurements.
    "$CSPCOST" --quiet ingest reference --lake "$dir/lake0" "$dir/input/reference" >/dev/null
    "$CSPCOST" --quiet ingest prices --lake "$dir/lake0" "$dir/input/prices" >/dev/null

    # (a) ingest
    prep_ingest_cspcost() { rm -rf "$dir/lake"; cp -r "$dir/lake0" "$dir/lake"; }
    prep_ingest_duckdb() { rm -rf "$dir/duck_staged" "$dir/tmp/duck"; }
    echo "bench: $size: ingest usage" >&2
    measure ingest_cspcost "$CSPCOST" --quiet ingest usage --lake "$dir/lake" "$dir/input/usage"
    [ "$WITH_PEER" = 1 ] && measure ingest_duckdb "$PY" "$PEER" "${DUCK[@]}" ingest "$dir/input/usage" "$dir/duck_staged"

    # (b) rate, and DuckDB's rating of the same staged lake
    prep_rate_cspcost() { rm -rf "$dir/lake/costs" "$dir/lake/_state" "$dir/lake/quarantine/stage=rate"; }
    prep_rate_duckdb() { rm -rf "$dir/duck_costs" "$dir/tmp/duck"; }
    echo "bench: $size: rate" >&2
    measure rate_cspcost "$CSPCOST" --quiet rate --lake "$dir/lake" --month "$MONTH" --threads "$THREADS"
    # (b') the other tier scopes (BENCH_SCOPES), on a copy of the staged lake: cspcost only.
    SCOPE_ROWS=""
    for scope in $SCOPES; do
        eval "prep_rate_$scope() { rm -rf \"\$dir/lake_scope\"; cp -r \"\$dir/lake\" \"\$dir/lake_scope\"; rm -rf \"\$dir/lake_scope/costs\" \"\$dir/lake_scope/_state\"; }"
        echo "bench: $size: rate --tier-scope $scope" >&2
        measure "rate_$scope" "$CSPCOST" --quiet rate --lake "$dir/lake_scope" --month "$MONTH" --threads "$THREADS" --tier-scope "$scope"
        rm -rf "$dir/lake_scope"
        scope_rss=$(rss_mib "rate_$scope")
        SCOPE_ROWS+="| $size | $shape | rate --tier-scope $scope | $(wall "rate_$scope") | $scope_rss | (no peer) | | | | ≤ 1 GiB: $(verdict "$scope_rss" 1024) |"$'\n'
        SCOPE_SUMMARY="; cpu seconds / cpu÷wall of rate by $scope: $(cpu_of "rate_$scope") / $(busy "rate_$scope")"
        SUMMARY_SCOPES+="$SCOPE_SUMMARY"
    done
    if [ "$WITH_PEER" != 1 ]; then
        rows=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['counts'].get('rated'))" "$(ls -t "$dir"/lake/_runs/*.json | head -1)")
        TABLE_ROWS+="| $size | $shape | ingest usage | $(wall ingest_cspcost) | $(rss_mib ingest_cspcost) | (no peer) | | | | |"$'\n'
        TABLE_ROWS+="| $size | $shape | rate | $(wall rate_cspcost) | $(rss_mib rate_cspcost) | (no peer) | | | | |"$'\n'
        TABLE_ROWS+="$SCOPE_ROWS"
        SUMMARY+="$size $shape: $rows rated rows (${input_mb} MB of pages), no peer (BENCH_PEER=0); "
        SUMMARY+="cpu seconds ingest $(cpu_of ingest_cspcost), rate $(cpu_of rate_cspcost); cpu/wall: ingest $(busy ingest_cspcost), rate $(busy rate_cspcost)${SUMMARY_SCOPES}"$'\n'
        SUMMARY_SCOPES=""
        rm -rf "$DATA/results-$size-$shape"
        cp -r "$RES" "$DATA/results-$size-$shape"
        if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$dir"; fi
        continue
    fi
    measure rate_duckdb "$PY" "$PEER" "${DUCK[@]}" rate "$dir/lake" "$MONTH" "$dir/duck_costs"
    echo "bench: $size: checking DuckDB's rating equals cspcost's, row by row" >&2
    if ! "$PY" "$PEER" "${DUCK[@]}" check "$dir/lake/costs" "$dir/duck_costs" >"$RES/check.json"; then
        cat "$RES/check.json" >&2
        die "$size: DuckDB's rating differs from cspcost's; its time does not count ($RES/check.json)"
    fi
    rows=$("$PY" -c "import json; print(json.load(open('$RES/check.json'))['cspcost_rows'])")
    # DuckDB's ingest did the same work: as many records staged as cspcost rated (the
    # generated month has nothing to quarantine).
    duck_records=$("$PY" -c "import json; print(json.load(open('$RES/ingest_duckdb.out'))['records'])")
    [ "$duck_records" = "$rows" ] || die "$size: DuckDB staged $duck_records records, cspcost rated $rows"

    # (c) the I/O floor
    prep_floor_duckdb() { rm -rf "$dir/duck_floor" "$dir/tmp/duck"; }
    echo "bench: $size: I/O floor" >&2
    measure floor_duckdb "$PY" "$PEER" "${DUCK[@]}" floor "$dir/lake/costs" "$dir/duck_floor"

    r_ingest=$(ratio ingest_cspcost ingest_duckdb)
    r_rate=$(ratio rate_cspcost rate_duckdb)
    r_floor=$(ratio rate_cspcost floor_duckdb)
    TABLE_ROWS+="| $size | $shape | ingest usage | $(wall ingest_cspcost) | $(rss_mib ingest_cspcost) | DuckDB read_json | $(wall ingest_duckdb) | $(rss_mib ingest_duckdb) | **$r_ingest** | ≤ 1.0: $(verdict "$r_ingest" 1.0) |"$'\n'
    TABLE_ROWS+="| $size | $shape | rate | $(wall rate_cspcost) | $(rss_mib rate_cspcost) | DuckDB SQL rating | $(wall rate_duckdb) | $(rss_mib rate_duckdb) | **$r_rate** | ≤ 0.5: $(verdict "$r_rate" 0.5) |"$'\n'
    TABLE_ROWS+="| $size | $shape | rate vs I/O floor | $(wall rate_cspcost) | $(rss_mib rate_cspcost) | DuckDB Parquet copy | $(wall floor_duckdb) | $(rss_mib floor_duckdb) | **$r_floor** | ≤ 1.5: $(verdict "$r_floor" 1.5) |"$'\n'
    TABLE_ROWS+="$SCOPE_ROWS"
    rss_verdict=$(awk -v r="$(rss_mib rate_cspcost)" 'BEGIN {print (r <= 1024) ? "met" : "NOT met"}')
    SUMMARY+="$size $shape: $rows rated rows (${input_mb} MB of pages), equal to DuckDB's row by row; "
    SUMMARY+="cpu seconds (user+sys) cspcost/DuckDB: ingest $(cpu_of ingest_cspcost)/$(cpu_of ingest_duckdb), "
    SUMMARY+="rate $(cpu_of rate_cspcost)/$(cpu_of rate_duckdb), floor $(cpu_of floor_duckdb); "
    SUMMARY+="peak RSS of rate $(rss_mib rate_cspcost) MiB (≤ 1 GiB: $rss_verdict)${SUMMARY_SCOPES}"$'\n'
    SUMMARY_SCOPES=""
    rm -rf "$DATA/results-$size-$shape"
    cp -r "$RES" "$DATA/results-$size-$shape"
    if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$dir"; fi
done
done

{
    echo
    echo "cspcost $commit$dirty vs DuckDB $duck (Python $("$PY" -c 'import platform; print(platform.python_version())')); $cores cores ($cpu), $mem; threads: cspcost --threads $THREADS, DuckDB SET threads = $THREADS (memory_limit $DUCK_MEM); best of $REPEAT"
    echo
    echo "| records | shape | step | cspcost s | cspcost peak RSS MiB | peer | peer s | peer peak RSS MiB | ratio | target |"
    echo "|---|---|---|---:|---:|---|---:|---:|---:|---|"
    printf '%s' "$TABLE_ROWS"
    echo
    printf '%s' "$SUMMARY"
} | tee "$DATA/results.md"
