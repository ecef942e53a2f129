//! Rating end to end on `sample_data/`: totals per partition equal the hand-computed ones in
//! `sample_data/README.md` §E.5, quarantine by reason §E.2, reruns are byte-identical.

use crate::common::*;

#[test]
fn sample_partition_totals_match_hand_computed_values() {
    let dir = rated_sample();
    let m = &manifests(dir.path())[0];
    assert_eq!(m.command, "rate");
    let mut got: Vec<(String, u64, String)> = m
        .partitions
        .iter()
        .map(|p| {
            (
                p.path.clone(),
                p.rows,
                p.billed_cost.clone().unwrap_or_default(),
            )
        })
        .collect();
    got.sort();
    let want = [
        (
            "costs/org=adatum/month=2026-01/usage-0.parquet",
            46,
            "55.9165640000",
        ),
        (
            "costs/org=adatum/month=2026-02/usage-0.parquet",
            45,
            "78.1268000000",
        ),
        (
            "costs/org=contoso/month=2026-01/usage-0.parquet",
            222,
            "296.6767783893",
        ),
        (
            "costs/org=contoso/month=2026-02/usage-0.parquet",
            105,
            "139.4206523897",
        ),
        (
            "costs/org=fabrikam/month=2026-01/usage-0.parquet",
            63,
            "162972.8270082133",
        ),
    ];
    let want: Vec<(String, u64, String)> = want
        .iter()
        .map(|(p, r, b)| (p.to_string(), *r, b.to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        (m.counts["staged"], m.counts["rated"], m.quarantined_total()),
        (589, 481, 108)
    );
}

const COST_COLS: [&str; 6] = [
    "x_UsageDate",
    "x_CumulativeQuantityBefore",
    "x_CumulativeQuantityAfter",
    "x_ListCostUsd",
    "ListCost",
    "BilledCost",
];

#[test]
fn worked_example_l1_with_fx_and_markup() {
    let dir = synth_lake(&L1, &FOUR_DAYS);
    ok(["rate", "--lake", &arg(dir.path())]);
    let rows = render(
        dir.path(),
        "costs/org=eu/month=2026-01/usage-0.parquet",
        &COST_COLS,
    );
    assert_eq!(
        rows,
        vec![
            "2026-01-01|0.0000000000|3.0000000000|0.0000000000|0.0000000000|0.0000000000",
            "2026-01-02|3.0000000000|7.0000000000|0.1740000000|0.1603095633|0.1763405196",
            // rating.md §7: ListCost = round10(8.2985 / 1.0854) = 7.6455684540; BilledCost 8.4101252994
            "2026-01-03|7.0000000000|102.5000000000|8.2985000000|7.6455684540|8.4101252994",
            "2026-01-04|102.5000000000|103.7500000000|0.1037500000|0.0955868804|0.1051455684",
        ]
    );
    let usd: i128 = render(
        dir.path(),
        "costs/org=eu/month=2026-01/usage-0.parquet",
        &["x_ListCostUsd"],
    )
    .iter()
    .map(|v| cspcost::model::Dec10::parse(v).unwrap().0)
    .sum();
    assert_eq!(cspcost::model::Dec10(usd).to_plain(), "8.57625");
    let meta = render(
        dir.path(),
        "costs/org=eu/month=2026-01/usage-0.parquet",
        &[
            "x_TierFirstMinimum",
            "x_TierLastMinimum",
            "ListUnitPrice",
            "x_FxUsdPerUnit",
            "BillingCurrency",
            "x_TierScope",
            "x_PriceEffectiveStart",
        ],
    );
    assert_eq!(
        meta[2],
        "5.0000000000|100.0000000000|0.0764695043|1.0854000000|EUR|subscription|2026-01-01"
    );
}

#[test]
fn worked_example_price_change_mid_month() {
    let mut prices = L1.to_vec();
    prices.extend([
        (M, "1 GB", "0", "0", "2026-01-03"),
        (M, "1 GB", "5", "0.08", "2026-01-03"),
        (M, "1 GB", "100", "0.075", "2026-01-03"),
    ]);
    let dir = synth_lake(&prices, &FOUR_DAYS);
    ok(["rate", "--lake", &arg(dir.path())]);
    let rows = render(
        dir.path(),
        "costs/org=eu/month=2026-01/usage-0.parquet",
        &["x_UsageDate", "x_ListCostUsd", "x_PriceEffectiveStart"],
    );
    assert_eq!(
        rows,
        vec![
            "2026-01-01|0.0000000000|2026-01-01",
            "2026-01-02|0.1740000000|2026-01-01",
            "2026-01-03|7.6275000000|2026-01-03",
            "2026-01-04|0.0937500000|2026-01-03"
        ]
    );
}

#[test]
fn worked_example_telescoping_rounding() {
    let prices = [(M, "1 Hour", "0", "0.0000271", "2026-01-01")];
    let usage = [
        (S1, "01", "1.00000185", "1 Hour"),
        (S1, "02", "2.00000185", "Hours"),
        (S1, "03", "3.00000185", "1 Hours"),
    ];
    let dir = synth_lake(&prices, &usage);
    ok(["rate", "--lake", &arg(dir.path())]);
    let rows = render(
        dir.path(),
        "costs/org=eu/month=2026-01/usage-0.parquet",
        &["x_ListCostUsd"],
    );
    assert_eq!(rows, vec!["0.0000271001", "0.0000542000", "0.0000813001"]);
}

#[test]
fn worked_example_units_hundreds_of_hours() {
    let dir = synth_lake(
        &[(M, "100 Hours", "0", "0.12", "2026-01-01")],
        &[(S1, "05", "36", "Hours")],
    );
    ok(["rate", "--lake", &arg(dir.path())]);
    let rows = render(
        dir.path(),
        "costs/org=eu/month=2026-01/usage-0.parquet",
        &[
            "PricingQuantity",
            "PricingUnit",
            "ConsumedQuantity",
            "ConsumedUnit",
            "x_ListCostUsd",
            "x_PricingUnitDescription",
            "x_PricingBlockSize",
        ],
    );
    // FOCUS units (PricingUnits.csv): the price unit `100 Hours` is `Hours` in blocks of 100;
    // PricingQuantity stays in price units so that ListCost is the tiered cost of it.
    assert_eq!(
        rows,
        vec!["0.3600000000|Hours|36.0000000000|Hours|0.0432000000|100 Hours|100.0000000000"]
    );
}

#[test]
fn tier_scope_subscription_versus_customer() {
    // The same four days split over two subscriptions of one customer. By subscription, S1
    // climbs 0 -> 3 -> 98.5 (93.5 GB at 0.087 = 8.1345) and S2 0 -> 4 -> 5.25 (0.25 * 0.087).
    let usage = [
        (S1, "01", "3", "1 GB"),
        (S2, "02", "4", "1 GB"),
        (S1, "03", "95.5", "1 GB"),
        (S2, "04", "1.25", "1 GB"),
    ];
    let dir = synth_lake(&L1, &usage);
    let l = arg(dir.path());
    ok(["rate", "--lake", &l]);
    let by_sub = render(
        dir.path(),
        "costs/org=eu/month=2026-01/usage-0.parquet",
        &[
            "SubAccountId",
            "x_UsageDate",
            "x_ListCostUsd",
            "x_TierScope",
        ],
    );
    assert_eq!(
        by_sub,
        vec![
            format!("{S1}|2026-01-01|0.0000000000|subscription"),
            format!("{S1}|2026-01-03|8.1345000000|subscription"),
            format!("{S2}|2026-01-02|0.0000000000|subscription"),
            format!("{S2}|2026-01-04|0.0217500000|subscription"),
        ]
    );
    ok(["rate", "--lake", &l, "--tier-scope", "customer"]);
    let by_customer = render(
        dir.path(),
        "costs/org=eu/month=2026-01/usage-0.parquet",
        &[
            "SubAccountId",
            "x_UsageDate",
            "x_ListCostUsd",
            "x_TierScope",
        ],
    );
    assert_eq!(
        by_customer,
        vec![
            format!("{S1}|2026-01-01|0.0000000000|customer"),
            format!("{S1}|2026-01-03|8.2985000000|customer"),
            format!("{S2}|2026-01-02|0.1740000000|customer"),
            format!("{S2}|2026-01-04|0.1037500000|customer"),
        ]
    );
}

/// The sum of `x_ListCostUsd` of organization `eu` in `month`.
fn list_cost_usd(lake: &std::path::Path, month: &str) -> String {
    let v: i128 = render(
        lake,
        &format!("costs/org=eu/month={month}/usage-0.parquet"),
        &["x_ListCostUsd"],
    )
    .iter()
    .map(|v| cspcost::model::Dec10::parse(v).unwrap().0)
    .sum();
    cspcost::model::Dec10(v).to_plain()
}

#[test]
fn billing_cycle_tiers_continue_across_the_month_boundary() {
    // reconciliation.md's example: 4 GB a day from 2026-01-15; cycle 15th..14th.
    let mut usage = Vec::new();
    let days: Vec<String> = (15..=31)
        .map(|d| format!("01-{d:02}"))
        .chain((1..=14).map(|d| format!("02-{d:02}")))
        .collect();
    for d in &days {
        usage.push((S1, d.as_str(), "4", "1 GB"));
    }
    let dir = synth_lake(&L1, &usage);
    let l = arg(dir.path());
    let sum = |month: &str| list_cost_usd(dir.path(), month);
    ok(["rate", "--lake", &l]);
    assert_eq!(
        (sum("2026-01"), sum("2026-02")),
        ("5.481".to_string(), "4.437".to_string())
    );
    ok(["rate", "--lake", &l, "--tier-period", "billing_cycle:15"]);
    // C(124) = 10.257 over the cycle: January holds C(68) = 5.481, February the rest.
    assert_eq!(
        (sum("2026-01"), sum("2026-02")),
        ("5.481".to_string(), "4.776".to_string())
    );
}

#[test]
fn rerun_is_byte_identical_and_threads_do_not_change_a_byte() {
    let dir = rated_sample();
    let l = arg(dir.path());
    let files = |d: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        let mut v = Vec::new();
        for org in std::fs::read_dir(d.join("costs")).unwrap() {
            for month in std::fs::read_dir(org.unwrap().path()).unwrap() {
                for f in std::fs::read_dir(month.unwrap().path()).unwrap() {
                    let p = f.unwrap().path();
                    v.push((p.display().to_string(), std::fs::read(&p).unwrap()));
                }
            }
        }
        v.sort();
        v
    };
    let first = files(dir.path());
    ok([
        "rate",
        "--lake",
        &l,
        "--month",
        "2026-01",
        "--month",
        "2026-02",
        "--threads",
        "1",
    ]);
    assert_eq!(files(dir.path()), first);
    // The re-run reports every usage partition unchanged, with the rows and cost of the run
    // that wrote it (it finds them unchanged before merging, from its runs alone).
    let runs = manifests(dir.path());
    let usage =
        |m: &cspcost::emit::manifest::Manifest| -> Vec<(String, u64, Option<String>, String)> {
            m.partitions
                .iter()
                .filter(|p| p.path.contains("/usage-"))
                .map(|p| {
                    (
                        p.path.clone(),
                        p.rows,
                        p.billed_cost.clone(),
                        p.action.clone(),
                    )
                })
                .collect()
        };
    let (rerun, written) = (usage(&runs[0]), usage(&runs[1]));
    assert!(!written.is_empty() && written.iter().all(|p| p.3 == "written" && p.1 > 0));
    let unchanged: Vec<_> = written
        .iter()
        .map(|p| (p.0.clone(), p.1, p.2.clone(), "unchanged".to_string()))
        .collect();
    assert_eq!(rerun, unchanged);
    // A fresh lake rated with one thread writes the same data (x_RunId aside).
    let other = lake();
    ingest_sample(other.path());
    ok(["rate", "--lake", &arg(other.path()), "--threads", "1"]);
    let cols: Vec<&str> = COST_COLS
        .iter()
        .copied()
        .chain([
            "SubAccountId",
            "x_MeterId",
            "ChargePeriodStart",
            "ResourceId",
            "x_SourceFile",
            "x_SourceRow",
        ])
        .collect();
    for p in [
        "costs/org=contoso/month=2026-01/usage-0.parquet",
        "costs/org=fabrikam/month=2026-01/usage-0.parquet",
    ] {
        assert_eq!(
            render(dir.path(), p, &cols),
            render(other.path(), p, &cols),
            "{p}"
        );
    }
}

#[test]
fn rerating_replaces_quarantine_state_and_removed_tenants_lose_their_partitions() {
    let dir = rated_sample();
    let l = arg(dir.path());
    ok(["rate", "--lake", &l, "--month", "2026-01"]);
    let q = render(
        dir.path(),
        "quarantine/stage=rate/month=2026-01/part-0.parquet",
        &["reason_code"],
    );
    assert_eq!(q.len(), 59, "re-rating must not count a record twice");
    // fabrikam's only tenant goes away: its partition disappears at the next rate, which
    // finds the changed registry by itself.
    ok([
        "tenants",
        "remove",
        "--lake",
        &l,
        "77683a7d-7f5f-40ee-b171-212656ea1f96",
    ]);
    let out = ok(["rate", "--lake", &l]);
    assert!(out.contains("2026-01: inputs changed"), "{out}");
    assert!(!dir
        .path()
        .join("costs/org=fabrikam/month=2026-01/usage-0.parquet")
        .exists());
    let q = render(
        dir.path(),
        "quarantine/stage=rate/month=2026-01/part-0.parquet",
        &["reason_code"],
    );
    assert_eq!(
        q.iter().filter(|r| *r == "UNMAPPED_TENANT").count(),
        15 + 63,
        "fabrikam's 63 January records are now unmapped"
    );
    let m = &manifests(dir.path())[0];
    assert!(m
        .partitions
        .iter()
        .any(|p| p.action == "deleted" && p.path.contains("org=fabrikam/month=2026-01")));
}

#[test]
fn rate_without_month_rerates_only_changed_months() {
    let dir = rated_sample();
    let l = arg(dir.path());
    let out = ok(["rate", "--lake", &l, "--dry-run"]);
    assert!(!out.contains("2026-0"), "nothing changed: {out}");
    let src = lake();
    let t = "686adbc4-fd3f-4688-b527-617394bf68af";
    let s = "6ad487b8-95fe-47a5-92c2-b86c364426b3";
    let f = write(
        src.path(),
        "late.ndjson",
        &format!(
            r#"{{"customerTenantId":"{t}","subscriptionId":"{s}","usageStartTime":"2026-02-20T00:00:00Z","usageEndTime":"2026-02-21T00:00:00Z","resource":{{"id":"8a09ff56-1b50-410f-a959-30227b19001e"}},"quantity":1}}"#
        ),
    );
    ok(["ingest", "usage", "--lake", &l, &arg(&f)]);
    let out = ok(["rate", "--lake", &l]);
    assert!(
        out.contains("2026-02: inputs changed") && !out.contains("2026-01:"),
        "{out}"
    );
    // The late record restates an already published month: it is marked as a correction.
    let classes = render(
        dir.path(),
        "costs/org=contoso/month=2026-02/usage-0.parquet",
        &["x_UsageDate", "ChargeClass"],
    );
    assert_eq!(
        classes
            .iter()
            .filter(|c| c.ends_with("Correction"))
            .collect::<Vec<_>>(),
        vec!["2026-02-20|Correction"]
    );
}

#[test]
fn billing_cycle_customer_tiers_count_a_subscription_silent_this_month() {
    // One customer, cycle 15th..14th. S2 uses 4 GB a day from 01-15 to 01-31 (68 GB), S1 4 GB
    // a day from 02-01 to 02-14 (56 GB). S2 has nothing in February, and the two are staged in
    // different buckets: February's ladder must still start at S2's 68 GB.
    assert_ne!(
        cspcost::staged::usage::bucket_of(S1),
        cspcost::staged::usage::bucket_of(S2)
    );
    let mut usage = Vec::new();
    let jan: Vec<String> = (15..=31).map(|d| format!("01-{d:02}")).collect();
    let feb: Vec<String> = (1..=14).map(|d| format!("02-{d:02}")).collect();
    for d in &jan {
        usage.push((S2, d.as_str(), "4", "1 GB"));
    }
    for d in &feb {
        usage.push((S1, d.as_str(), "4", "1 GB"));
    }
    let dir = synth_lake(&L1, &usage);
    let l = arg(dir.path());
    let sum = |month: &str| list_cost_usd(dir.path(), month);
    let cycle = ["--tier-period", "billing_cycle:15"];
    let args = |scope: &'static str| -> Vec<String> {
        ["rate", "--lake", &l, "--tier-scope", scope]
            .iter()
            .chain(cycle.iter())
            .map(|s| s.to_string())
            .collect()
    };
    // By subscription S1 starts from 0: C(56) = 51 * 0.087.
    ok(args("subscription"));
    assert_eq!(sum("2026-02"), "4.437");
    // By customer the cycle holds C(124) = 10.257; January C(68) = 5.481, February the rest.
    for scope in ["customer", "organization"] {
        ok(args(scope));
        assert_eq!(
            (sum("2026-01"), sum("2026-02")),
            ("5.481".into(), "4.776".into()),
            "{scope}"
        );
    }
}

/// A usage partition's money and quantity columns, whose values are nearly all distinct, are
/// written without a dictionary; the columns of few values keep theirs.
#[test]
fn cost_partitions_write_their_distinct_columns_without_a_dictionary() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = rated_sample();
    let files = cost_files(dir.path(), "usage-");
    assert!(files.len() >= 2, "{:?}", files.keys());
    let plain = cspcost::rate::runs::DISTINCT_COLUMNS;
    // The money columns analysts sum are among them.
    for c in [
        "BilledCost",
        "ListCost",
        "EffectiveCost",
        "x_ListCostUsd",
        "ConsumedQuantity",
    ] {
        assert!(plain.contains(&c), "{c}");
    }
    for (rel, bytes) in files {
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        let mut seen = Vec::new();
        for group in reader.metadata().row_groups() {
            for column in group.columns() {
                let name = column.column_path().string();
                let expect_plain = plain.contains(&name.as_str());
                assert_eq!(
                    column.dictionary_page_offset().is_none(),
                    expect_plain,
                    "{rel}: dictionary of {name}"
                );
                seen.push(name);
            }
        }
        for c in plain
            .iter()
            .chain(&["SubAccountId", "x_MeterId", "ListUnitPrice"])
        {
            assert!(seen.iter().any(|s| s == c), "{rel}: no column {c}");
        }
    }
}
