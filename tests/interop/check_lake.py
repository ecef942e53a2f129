"""Read a cspcost lake the way analysts do (DuckDB with hive partitioning, pyarrow datasets)
and print what was found as JSON for the Rust interop test to assert on."""
import json
import sys

import duckdb
import pyarrow.dataset as ds

lake = sys.argv[1]
con = duckdb.connect()
out = {}

costs = f"read_parquet('{lake}/costs/**/*.parquet', hive_partitioning = true)"
out["cost_columns"] = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {costs}").fetchall()}
out["totals"] = [
    [org, month, rows, str(billed), str(usd)]
    for org, month, rows, billed, usd in con.execute(
        f"""SELECT org, month, count(*), sum(BilledCost), sum(x_ListCostUsd)
            FROM {costs} WHERE ChargeCategory = 'Usage' GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
]
out["sum_type"] = con.execute(f"SELECT typeof(sum(BilledCost)) FROM {costs}").fetchone()[0]

staged = f"read_parquet('{lake}/staged/usage/**/*.parquet', hive_partitioning = true)"
out["staged_columns"] = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {staged}").fetchall()}
out["staged_rows"] = con.execute(f"SELECT count(*) FROM {staged}").fetchone()[0]

# Each stage has its own Hive keys (run= for the ingest log, month= for rating state), so
# quarantine is read one stage at a time.
out["quarantine_columns"] = {}
out["quarantine_by_stage"] = []
for stage in ("ingest", "rate"):
    q = f"read_parquet('{lake}/quarantine/stage={stage}/**/*.parquet', hive_partitioning = true)"
    out["quarantine_columns"].update({r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {q}").fetchall()})
    out["quarantine_by_stage"] += [
        [stage, reason, n] for reason, n in con.execute(f"SELECT reason_code, count(*) FROM {q} GROUP BY ALL ORDER BY ALL").fetchall()
    ]

dataset = ds.dataset(f"{lake}/costs", format="parquet", partitioning="hive")
table = dataset.to_table()
out["pyarrow_rows"] = table.num_rows
out["pyarrow_billed_type"] = str(table.schema.field("BilledCost").type)
out["pyarrow_period_type"] = str(table.schema.field("ChargePeriodStart").type)
out["pyarrow_types"] = {f.name: str(f.type) for f in table.schema}

print(json.dumps(out))
