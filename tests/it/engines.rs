//! Polars and Spark read `costs/` as the README says: hive partitioning and no other option
//! (tests/interop/check_engines.py, run with `.venv-integ/`'s python from `make integ`;
//! Spark in local mode on one core). Money keeps `DECIMAL(38,10)`, charge periods stay UTC
//! instants, and each organization's monthly `sum(BilledCost)` equals what the CLI recorded,
//! to the last digit.

use crate::common::*;
use std::path::Path;

/// Run check_engines.py for `engine` on a lake; its JSON answer.
fn read_with(engine: &str, lake: &Path) -> Option<serde_json::Value> {
    let py = venv_python(".venv-integ", "integ", "CSPCOST_SKIP_ENGINES")?;
    let out = std::process::Command::new(py)
        .arg(root().join("tests/interop/check_engines.py"))
        .arg(engine)
        .arg(lake)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "check_engines.py {engine} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("json"))
}

fn micros(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_micros()
}

/// Assert what an engine read: `decimal` and `instant` name the engine's spelling of
/// `DECIMAL(38,10)` and of a UTC timestamp.
fn check(v: &serde_json::Value, lake: &Path, decimal: &str, instant: &str) {
    let engine = v["engine"].as_str().unwrap();
    let cols = &v["columns"];
    for c in [
        "BilledCost",
        "EffectiveCost",
        "ListCost",
        "ContractedCost",
        "ListUnitPrice",
        "PricingQuantity",
        "ConsumedQuantity",
        "x_ListCostUsd",
        "x_FxUsdPerUnit",
    ] {
        assert_eq!(cols[c], decimal, "{engine}: {c}");
    }
    for c in [
        "BillingPeriodStart",
        "BillingPeriodEnd",
        "ChargePeriodStart",
        "ChargePeriodEnd",
    ] {
        assert_eq!(cols[c], instant, "{engine}: {c}");
    }
    // The hive keys come back as columns, as text (no option needed to keep `2026-01`).
    assert_eq!(cols["org"].as_str().unwrap().to_lowercase(), "string");
    assert_eq!(cols["month"].as_str().unwrap().to_lowercase(), "string");
    assert_eq!(v["sum_type"], decimal, "{engine}: sum(BilledCost)");
    // sample_data's usage runs from 2026-01-01 to the day 2026-02-15 (UTC).
    assert_eq!(
        v["first_start_us"],
        micros("2026-01-01T00:00:00Z"),
        "{engine}"
    );
    assert_eq!(v["last_end_us"], micros("2026-02-16T00:00:00Z"), "{engine}");
    let got: Vec<(String, String, u64, String)> =
        serde_json::from_value(v["totals"].clone()).unwrap();
    assert_eq!(got, manifest_totals(lake), "{engine}: totals");
    assert_eq!(got.len(), 5);
}

#[test]
fn polars_reads_costs_with_exact_decimals_utc_instants_and_the_clis_totals() {
    let dir = rated_sample();
    let Some(v) = read_with("polars", dir.path()) else {
        return;
    };
    check(
        &v,
        dir.path(),
        "Decimal(precision=38, scale=10)",
        "Datetime(time_unit='us', time_zone='UTC')",
    );
}

#[test]
fn spark_reads_costs_with_exact_decimals_utc_instants_and_the_clis_totals() {
    let dir = rated_sample();
    let Some(v) = read_with("spark", dir.path()) else {
        return;
    };
    // `timestamp` is Spark's instant type (`timestamp_ntz` would be a wall-clock time); the
    // script reads it in a New York session and still gets the UTC epoch.
    check(&v, dir.path(), "decimal(38,10)", "timestamp");
}
