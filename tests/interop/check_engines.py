"""Read a cspcost lake's costs/ with Polars or Spark the way analysts do (hive partitioning,
no other option) and print, as JSON, the column types, the first charge period as epoch
microseconds and per-organization monthly totals, for the Rust test `tests/it/engines.rs`.

Usage: check_engines.py polars|spark LAKE
"""
import json
import sys

engine, lake = sys.argv[1], sys.argv[2]
costs = f"{lake}/costs"
out = {"engine": engine}


def polars_reads():
    import polars as pl

    lf = pl.scan_parquet(f"{costs}/**/*.parquet", hive_partitioning=True)
    schema = lf.collect_schema()
    out["columns"] = {name: str(dtype) for name, dtype in schema.items()}
    totals = (
        lf.filter(pl.col("ChargeCategory") == "Usage")
        .group_by("org", "month")
        .agg(pl.len().alias("rows"), pl.col("BilledCost").sum().alias("billed"))
        .sort("org", "month")
        .collect()
    )
    out["sum_type"] = str(totals.schema["billed"])
    # str() of a Python Decimal keeps every digit of the scale-10 value.
    out["totals"] = [[r["org"], r["month"], r["rows"], str(r["billed"])] for r in totals.iter_rows(named=True)]
    first = lf.select(
        pl.col("ChargePeriodStart").min().dt.epoch("us").alias("start_us"),
        pl.col("ChargePeriodEnd").max().dt.epoch("us").alias("end_us"),
    ).collect()
    out["first_start_us"] = first["start_us"][0]
    out["last_end_us"] = first["end_us"][0]


def spark_reads():
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    # One local core, no UI: the machine is small. The session time zone is deliberately
    # not UTC, so that an instant that Spark read as a wall-clock time would show.
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("cspcost-interop")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "America/New_York")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.read.parquet(costs)
    out["columns"] = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    totals = (
        df.where(F.col("ChargeCategory") == "Usage")
        .groupBy("org", "month")
        .agg(F.count(F.lit(1)).alias("rows"), F.sum("BilledCost").alias("billed"))
        .orderBy("org", "month")
    )
    out["sum_type"] = dict(totals.dtypes)["billed"]
    out["totals"] = [[r["org"], r["month"], r["rows"], str(r["billed"])] for r in totals.collect()]
    first = df.agg(
        F.min(F.unix_micros("ChargePeriodStart")).alias("start_us"),
        F.max(F.unix_micros("ChargePeriodEnd")).alias("end_us"),
    ).collect()[0]
    out["first_start_us"] = first["start_us"]
    out["last_end_us"] = first["end_us"]
    spark.stop()


{"polars": polars_reads, "spark": spark_reads}[engine]()
print(json.dumps(out))
