//! Analysts' tools read the lake without options beyond hive partitioning (outputs.md):
//! DuckDB and pyarrow, from the venv `make test` creates (`CSPCOST_PYTHON`).

use crate::common::*;
use std::collections::BTreeMap;

#[test]
fn duckdb_and_pyarrow_read_costs_staged_and_quarantine_with_exact_types() {
    let Some(py) = interop_python("interop test") else {
        return;
    };
    let dir = rated_sample();
    let out = std::process::Command::new(&py)
        .arg(root().join("tests/interop/check_lake.py"))
        .arg(dir.path())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "check_lake.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let cols: BTreeMap<String, String> = serde_json::from_value(v["cost_columns"].clone()).unwrap();
    // FOCUS columns with the types outputs.md promises.
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
        assert_eq!(cols[c], "DECIMAL(38,10)", "{c}");
    }
    for c in [
        "BillingPeriodStart",
        "BillingPeriodEnd",
        "ChargePeriodStart",
        "ChargePeriodEnd",
    ] {
        assert_eq!(cols[c], "TIMESTAMP WITH TIME ZONE", "{c}");
    }
    assert_eq!(cols["x_UsageDate"], "DATE");
    assert_eq!(cols["x_SourceRow"], "BIGINT");
    for c in [
        "BillingAccountId",
        "BillingAccountName",
        "BillingCurrency",
        "ChargeCategory",
        "ChargeClass",
        "ChargeDescription",
        "ChargeFrequency",
        "InvoiceIssuerName",
        "PricingUnit",
        "ProviderName",
        "PublisherName",
        "ServiceCategory",
        "ServiceName",
        "SubAccountId",
        "RegionId",
        "ResourceId",
        "SkuId",
        "Tags",
        "HostProviderName",
        "ServiceProviderName",
    ] {
        assert_eq!(cols[c], "VARCHAR", "{c}");
    }
    // Sums stay exact decimals in SQL and equal what the CLI recorded per partition.
    assert_eq!(v["sum_type"], "DECIMAL(38,10)");
    let cli = manifest_totals(dir.path());
    let sql: Vec<(String, String, u64, String)> = v["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().into(),
                r[1].as_str().unwrap().into(),
                r[2].as_u64().unwrap(),
                r[3].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(sql, cli);
    // Staged and quarantine tables are readable too, with exact types.
    let staged: BTreeMap<String, String> =
        serde_json::from_value(v["staged_columns"].clone()).unwrap();
    assert_eq!(staged["quantity"], "DECIMAL(38,10)");
    assert_eq!(staged["usage_start"], "TIMESTAMP WITH TIME ZONE");
    assert_eq!(v["staged_rows"], 589);
    let q: BTreeMap<String, String> =
        serde_json::from_value(v["quarantine_columns"].clone()).unwrap();
    assert_eq!(q["reason_code"], "VARCHAR");
    assert_eq!(q["usage_date"], "DATE");
    let by_stage = v["quarantine_by_stage"].as_array().unwrap();
    assert!(by_stage
        .iter()
        .any(|r| r[0] == "ingest" && r[1] == "DUPLICATE_RECORD" && r[2] == 2));
    assert!(by_stage
        .iter()
        .any(|r| r[0] == "rate" && r[1] == "UNMAPPED_TENANT" && r[2] == 30));
    assert_eq!(v["pyarrow_rows"], 481);
    assert_eq!(v["pyarrow_billed_type"], "decimal128(38, 10)");
    assert_eq!(v["pyarrow_period_type"], "timestamp[us, tz=UTC]");
    // The FOCUS conformance columns (outputs.md): money and quantities DECIMAL(38,10), the rest
    // strings, in DuckDB and pyarrow alike.
    let arrow: BTreeMap<String, String> =
        serde_json::from_value(v["pyarrow_types"].clone()).unwrap();
    for c in [
        "ContractedUnitPrice",
        "PricingCurrencyListUnitPrice",
        "PricingCurrencyContractedUnitPrice",
        "PricingCurrencyEffectiveCost",
        "CommitmentDiscountQuantity",
        "x_PricingBlockSize",
    ] {
        assert_eq!(cols[c], "DECIMAL(38,10)", "{c}");
        assert_eq!(arrow[c], "decimal128(38, 10)", "{c}");
    }
    for c in [
        "BillingAccountType",
        "SubAccountName",
        "SubAccountType",
        "InvoiceId",
        "PricingCategory",
        "PricingCurrency",
        "SkuPriceId",
        "ResourceType",
        "CommitmentDiscountId",
        "CommitmentDiscountType",
        "CommitmentDiscountCategory",
        "CommitmentDiscountName",
        "CommitmentDiscountUnit",
        "CommitmentDiscountStatus",
        "ServiceSubcategory",
        "ConsumedUnit",
        "x_PricingUnitDescription",
    ] {
        assert_eq!(cols[c], "VARCHAR", "{c}");
        assert_eq!(arrow[c], "string", "{c}");
    }
}
