//! Reconciliation end to end through the binary: the sample invoice gives every reason code
//! with the values of `sample_data/invoices/README.md`; the worked example of
//! reconciliation.md on a lake of its own; invoice parsing edge cases and errors; the daily
//! extract of a calendar month equals that month's `costs/` partitions exactly.
//!
//! Goldens are compared as rendered text: one line per row, cells joined by ` | `, the sample's
//! GUIDs shown by their alias from `sample_data/README.md` §A.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::Path;

type Row = BTreeMap<String, String>;

const T_U: &str = "43ab1ab1-16d6-4711-84c7-f75b8bb73bc1";
const T_CA: &str = "686adbc4-fd3f-4688-b527-617394bf68af";
const T_CB: &str = "6f816768-d398-4646-a957-b21ed3a31596";
const T_F: &str = "77683a7d-7f5f-40ee-b171-212656ea1f96";
const T_AD: &str = "cb68bce3-1e3f-416d-a860-6a6043d14194";
const S_AD1: &str = "a6ed65ff-25c8-4671-9309-ee09d8c6571a";
const S_AD2: &str = "3719a553-3c0b-4b47-866a-dec9c1b41b26";
const BW: &str = "8a09ff56-1b50-410f-a959-30227b19001e";
const STORAGE: &str = "d30c70e3-d029-4dd8-b857-e1f6c8d0cebb";
const D2V3: &str = "a1003d53-cd0c-4eee-bc65-32f5c76e4647";
const LA: &str = "3f2809ca-5258-4d08-a3cf-b794ef7b7e28";
const WEBTEST: &str = "7a3f6840-2231-46a8-9561-7e4268650ace";
const PIP: &str = "754f5886-96e6-4038-bd50-1637e01589e2";
const PL: &str = "a921677c-cd0e-44b2-a4d0-663b05b8fe75";
const ACA: &str = "b41f21a8-ec00-4785-8d3a-6aa62af13f39";

fn alias(v: &str) -> &str {
    match v {
        T_U => "T-U",
        T_CA => "T-CA",
        T_CB => "T-CB",
        T_F => "T-F",
        T_AD => "T-AD",
        S_AD1 => "S-AD1",
        S_AD2 => "S-AD2",
        BW => "BW",
        STORAGE => "STORAGE",
        D2V3 => "D2V3",
        LA => "LA",
        WEBTEST => "WEBTEST",
        PIP => "PIP",
        PL => "PL",
        ACA => "ACA",
        other => other,
    }
}

/// Every row of a CSV written by `reconcile`, by header name.
fn read_csv(path: &Path) -> Vec<Row> {
    let mut rdr = csv::Reader::from_path(path).expect("open csv");
    let headers = rdr.headers().expect("header").clone();
    rdr.records()
        .map(|r| {
            let r = r.expect("csv row");
            let cells = headers.iter().zip(r.iter());
            cells.map(|(h, v)| (h.to_string(), v.to_string())).collect()
        })
        .collect()
}

/// CSV rows as text: one line each, the given columns joined by ` | `, aliases for GUIDs.
fn text_table<'a>(rows: impl IntoIterator<Item = &'a Row>, cols: &[&str]) -> String {
    let lines: Vec<String> = rows
        .into_iter()
        .map(|r| {
            let cells: Vec<&str> = cols.iter().map(|c| alias(&r[*c])).collect();
            cells.join(" | ").trim_end().to_string()
        })
        .collect();
    lines.join("\n")
}

/// `reconcile` arguments for `lake` and `out` over `from..=to`, plus `extra`.
fn args(lake: &Path, out: &Path, from: &str, to: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "reconcile",
        "--lake",
        &arg(lake),
        "--from",
        from,
        "--to",
        to,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(["--out".to_string(), arg(out)]);
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Run `reconcile` and require success; returns stdout.
fn reconcile(lake: &Path, out: &Path, from: &str, to: &str, extra: &[&str]) -> String {
    ok(args(lake, out, from, to, extra))
}

/// Run `reconcile` over the sample's billing cycle, 2026-01-15..2026-02-14.
fn cycle(lake: &Path, out: &Path, extra: &[&str]) -> String {
    reconcile(lake, out, "2026-01-15", "2026-02-14", extra)
}

/// Run `reconcile` expecting failure; returns the exit code and stderr.
fn reconcile_fails(lake: &Path, from: &str, to: &str, extra: &[&str]) -> (Option<i32>, String) {
    let o = cspcost(args(lake, &lake.join("failed"), from, to, extra));
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Every needle occurs in `text`.
fn assert_contains_all(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "{n:?} not in {text}");
    }
}

fn sample_invoice() -> String {
    arg(&sample("invoices/invoice-2026-01-15_2026-02-14.csv"))
}

/// Exact sum of a decimal column, through the crate's decimal type (10 decimals).
fn sum(rows: &[&Row], col: &str) -> String {
    let parse = |r: &&Row| cspcost::model::Dec10::parse(&r[col]).expect("decimal").0;
    cspcost::model::Dec10(rows.iter().map(parse).sum()).to_string()
}

/// The daily extract of `from..=to`, summed per organization:
/// `org | rows | x_ListCostUsd | ListCost | BilledCost`.
fn daily_totals(lake: &Path, from: &str, to: &str) -> String {
    let out = lake.join(format!("daily-{from}"));
    reconcile(lake, &out, from, to, &["--grain", "daily"]);
    let lines = read_csv(&out.join("lines.csv"));
    let mut orgs: Vec<&str> = lines
        .iter()
        .map(|l| l["organization_id"].as_str())
        .collect();
    orgs.dedup();
    let rendered: Vec<String> = orgs
        .iter()
        .map(|o| {
            let mine: Vec<&Row> = lines
                .iter()
                .filter(|l| l["organization_id"] == *o)
                .collect();
            let rows: usize = mine
                .iter()
                .map(|l| l["rows"].parse::<usize>().unwrap())
                .sum();
            let sums = ["x_ListCostUsd", "ListCost", "BilledCost"].map(|c| sum(&mine, c));
            format!("{o} | {rows} | {}", sums.join(" | "))
        })
        .collect();
    rendered.join("\n")
}

#[test]
fn sample_invoice_gives_every_reason_code_with_the_documented_values() {
    let lake = rated_sample();
    let out = lake.path().join("recon");
    let invoice = sample_invoice();
    let stdout = cycle(lake.path(), &out, &["--invoice", &invoice]);
    let rows = read_csv(&out.join("variance.csv"));
    let cols = [
        "customer_tenant_id",
        "meter_id",
        "invoice_quantity",
        "computed_quantity",
        "invoice_cost",
        "computed_cost_calendar",
        "computed_cost_cycle",
        "reason_code",
        "effective_discount_percent",
        "invoice_lines",
    ];
    // sample_data/invoices/README.md, "Expected values".
    let want = "\
T-U | BW | 51.6090000000 |  | 3.7300000000 |  |  | MISSING_IN_USAGE |  | 21;22
T-CA | LA | 31.2200000000 | 31.2200000000 | 1.3100000000 | 1.3110000000 | 1.3110000000 | MATCHED |  | 8;9
T-CA | WEBTEST | 22.0850000000 | 22.0850000000 | 2.6500000000 | 2.6502000000 | 2.6502000000 | MATCHED |  | 7
T-CA | BW | 129.6670000000 | 129.6670000000 | 9.8300000000 | 9.6669850000 | 9.8250250000 | TIER_PERIOD |  | 2;3;4
T-CA | D2V3 | 744.0000000000 | 744.0000000000 | 71.4200000000 | 71.4240000000 | 71.4240000000 | MATCHED |  | 6
T-CA | STORAGE | 10320.4522700000 | 10320.4522700000 | 161.4100000000 | 189.8963217680 | 189.8963217680 | PRICE_DIFFERENCE | 15.0009865925 | 5
T-CB | PIP |  | 744.0000000000 |  | 3.7200000000 | 3.7200000000 | MISSING_IN_INVOICE |  |
T-CB | BW | 71.0090000000 | 71.0090000000 | 5.2800000000 | 5.2807200000 | 5.2807200000 | MATCHED |  | 10;11
T-F | D2V3 | 744.0000000000 | 408.0000000000 | 71.4200000000 | 39.1680000000 | 39.1680000000 | QUANTITY_MISMATCH |  | 12
T-F | STORAGE | 56003.8950000000 | 30818.2630000000 | 1027.1100000000 | 563.7174661999 | 567.0560392000 | QUANTITY_MISMATCH |  | 13;14
T-AD | BW | 76.9540000000 | 76.9540000000 | 5.1800000000 | 5.7563200000 | 5.7563200000 | PRICE_DIFFERENCE | 10.0119520805 | 17;18
T-AD | D2V3 | 754.0000000000 | 754.0000000000 | 72.3800000000 | 72.3840000000 | 72.3840000000 | MATCHED |  | 15;16
T-AD | PL | 208.5550000000 |  | 2.0900000000 |  |  | MISSING_IN_USAGE |  | 20
T-AD | ACA | 1488.0000000000 | 672.0000000000 | 84.9600000000 | 38.3712000000 | 38.3712000000 | QUANTITY_MISMATCH |  | 19";
    assert_eq!(text_table(&rows, &cols), want);
    let context = [
        "currency",
        "charge_period_start",
        "charge_period_end",
        "subscription_id",
    ];
    assert!(rows
        .iter()
        .all(|r| text_table([r], &context) == "USD | 2026-01-15 | 2026-02-14 |"));
    // The public IP is not on the invoice; its customer name comes from T-CB's other lines.
    // The unregistered tenant has no organization.
    let names = text_table(
        &rows[..7],
        &["customer_tenant_id", "organization_id", "customer_name"],
    );
    assert_eq!(
        names,
        "\
T-U |  | Litware Inc
T-CA | contoso | Contoso Ltd
T-CA | contoso | Contoso Ltd
T-CA | contoso | Contoso Ltd
T-CA | contoso | Contoso Ltd
T-CA | contoso | Contoso Ltd
T-CB | contoso | Contoso Ltd (Backup)"
    );

    let summary = read_csv(&out.join("variance_summary.csv"));
    let cols = [
        "customer_tenant_id",
        "lines",
        "invoice_total",
        "computed_total",
        "computed_total_cycle",
        "difference",
        "MISSING_IN_INVOICE",
        "MISSING_IN_USAGE",
        "QUANTITY_MISMATCH",
        "MATCHED",
        "TIER_PERIOD",
        "PRICE_DIFFERENCE",
    ];
    let want = "\
T-U | 1 | 3.73 | 0.00 | 0.00 | 3.73 | 0.00 | 3.73 | 0.00 | 0.00 | 0.00 | 0.00
T-CA | 5 | 246.62 | 274.95 | 275.11 | -28.33 | 0.00 | 0.00 | 0.00 | -0.01 | 0.16 | -28.49
T-CB | 2 | 5.28 | 9.00 | 9.00 | -3.72 | -3.72 | 0.00 | 0.00 | 0.00 | 0.00 | 0.00
T-F | 2 | 1098.53 | 602.89 | 606.22 | 495.64 | 0.00 | 0.00 | 495.64 | 0.00 | 0.00 | 0.00
T-AD | 4 | 164.61 | 116.51 | 116.51 | 48.10 | 0.00 | 2.09 | 46.59 | 0.00 | 0.00 | -0.58
total | 14 | 1518.77 | 1003.35 | 1006.84 | 515.42 | -3.72 | 5.82 | 542.23 | -0.01 | 0.16 | -29.06";
    assert_eq!(text_table(&summary, &cols), want);

    // The terminal summary: per tenant and in total, the amount each code explains.
    for line in [
        "    total                                                    1518.77      1003.35       515.42",
        "      QUANTITY_MISMATCH      3 lines                                                    542.23",
        "        Hot LRS Data Stored: effective discount 15.0 %",
        "        Standard Data Transfer Out: effective discount 10.0 %",
        "  note: matched on (customer tenant, meter): SubscriptionId 'usCBMgAAAAAAAAIA' (line 2) is a billing-platform ID",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }

    // The manifest records the run with its tolerances and balanced counts.
    let m = &manifests(lake.path())[0];
    assert_eq!(m.command, "reconcile");
    assert_eq!(m.options["quantity_tolerance"], "0.000001");
    assert_eq!(m.options["cost_tolerance"], "0.005");
    assert_eq!(m.inputs[0].path, invoice);
    let counts: Vec<String> = [
        "invoice_lines",
        "variance_lines",
        "variance_MATCHED",
        "rows",
    ]
    .iter()
    .map(|k| format!("{k}={}", m.counts[*k]))
    .collect();
    assert_eq!(
        counts.join(" "),
        "invoice_lines=21 variance_lines=14 variance_MATCHED=5 rows=329"
    );
}

#[test]
fn subscription_map_matches_on_subscriptions_and_tolerances_are_options() {
    let lake = rated_sample();
    let out = lake.path().join("recon");
    let map = arg(&sample("invoices/subscription-map.csv"));
    let extra = ["--invoice", &sample_invoice(), "--subscription-map", &map];
    let stdout = cycle(lake.path(), &out, &extra);
    assert!(
        stdout.contains("matched on (subscription, meter)"),
        "{stdout}"
    );
    let rows = read_csv(&out.join("variance.csv"));
    assert_eq!(rows.len(), 15);
    let vm = rows
        .iter()
        .filter(|r| r["meter_id"] == D2V3 && r["customer_tenant_id"] == T_AD);
    let cols = [
        "subscription_id",
        "computed_cost_calendar",
        "invoice_cost",
        "reason_code",
    ];
    assert_eq!(
        text_table(vm, &cols),
        "\
S-AD2 | 0.9600000000 | 0.9600000000 | MATCHED
S-AD1 | 71.4240000000 | 71.4200000000 | MATCHED"
    );

    // A cost tolerance of 0.2 makes T-CA's bandwidth (0.163015 off the calendar cost) MATCHED.
    let loose = lake.path().join("loose");
    let extra = ["--invoice", &sample_invoice(), "--cost-tolerance", "0.2"];
    cycle(lake.path(), &loose, &extra);
    let rows = read_csv(&loose.join("variance.csv"));
    let bw = rows
        .iter()
        .filter(|r| r["meter_id"] == BW && r["customer_tenant_id"] == T_CA);
    assert_eq!(text_table(bw, &["reason_code"]), "MATCHED");
    assert_eq!(manifests(lake.path())[0].options["cost_tolerance"], "0.2");
}

/// An invoice as a partner may save it: BOM, columns in another order, extra columns, the
/// older `CustomerName`, thousands separators, ISO and `M/D/YYYY` dates, upper-case GUIDs.
#[test]
fn invoice_with_bom_extra_columns_and_thousands_separators() {
    let lake = rated_sample();
    let header = "Notes,Currency,PretaxCharges,ResourceGuid,ConsumedQuantity,ChargeEndDate,\
                  ChargeStartDate,CustomerName,CustomerId,TaxAmount,Unit";
    let vm = format!(
        "first,USD,$71.42,{},744,2026-02-14T00:00:00,2026-01-15T00:00:00,Contoso,{T_CA},\"$7,142.00\",1 Hour",
        D2V3.to_uppercase()
    );
    let storage = format!(
        "second,USD,\"$1,027.11\",{STORAGE},\"56,003.895\",2/14/2026 23:59,1/15/2026 0:00,Fabrikam,{},$0.00,1 GB/Month",
        T_F.to_uppercase()
    );
    let text = format!("\u{feff}{header}\r\n{vm}\r\n{storage}\r\n");
    let inv = write(lake.path(), "invoice.csv", &text);
    let out = lake.path().join("recon");
    let extra = ["--invoice", &arg(&inv), "--tenant", T_F];
    cycle(lake.path(), &out, &extra);
    // --tenant keeps fabrikam's lines only, on both sides.
    let rows = read_csv(&out.join("variance.csv"));
    let cols = [
        "customer_name",
        "meter_id",
        "invoice_quantity",
        "invoice_cost",
        "reason_code",
    ];
    assert_eq!(
        text_table(&rows, &cols),
        "\
Fabrikam | D2V3 |  |  | MISSING_IN_INVOICE
Fabrikam | STORAGE | 56003.8950000000 | 1027.1100000000 | QUANTITY_MISMATCH"
    );
    let lines = read_csv(&out.join("lines.csv"));
    assert!(lines.iter().all(|l| l["customer_tenant_id"] == T_F));
}

#[test]
fn malformed_invoice_line_exits_2_naming_file_line_and_field() {
    let lake = rated_sample();
    let good = std::fs::read_to_string(sample("invoices/invoice-2026-01-15_2026-02-14.csv"));
    // Line 3 is T-CA's second bandwidth band; its first `$7.60` cell is PretaxCharges.
    let bad = good.unwrap().replacen(",$7.60,", ",\"$7,6\",", 1);
    let inv = write(lake.path(), "bad-invoice.csv", &bad);
    let (code, stderr) = reconcile_fails(
        lake.path(),
        "2026-01-15",
        "2026-02-14",
        &["--invoice", &arg(&inv)],
    );
    assert_eq!(code, Some(2));
    let want = format!(
        "{}: line 3: field PretaxCharges: '$7,6' is not an amount",
        inv.display()
    );
    assert!(stderr.contains(&want), "{stderr}");
    assert!(!lake.path().join("failed").exists(), "nothing is written");

    // Flags are checked together before any work.
    let extra = ["--grain", "weekly", "--cost-tolerance=-1"];
    let (code, stderr) = reconcile_fails(lake.path(), "2026-02-14", "2026-01-15", &extra);
    assert_eq!(code, Some(2));
    let problems = [
        "3 problems:",
        "--to 2026-01-15 is before --from 2026-02-14",
        "--grain 'weekly': expected period or daily",
        "--cost-tolerance '-1' is not a decimal number >= 0",
    ];
    assert_contains_all(&stderr, &problems);
}

#[test]
fn daily_extract_of_each_calendar_month_equals_its_costs_partitions() {
    let lake = rated_sample();
    // sample_data/README.md §E.5: the costs/ usage partitions, to the last of 10 decimals.
    assert_eq!(
        daily_totals(lake.path(), "2026-01-01", "2026-01-31"),
        "\
adatum | 46 | 55.9165640000 | 55.9165640000 | 55.9165640000
contoso | 222 | 292.7390684196 | 269.7061621695 | 296.6767783893
fabrikam | 63 | 1097.9222030027 | 171550.3442191719 | 162972.8270082133"
    );
    assert_eq!(
        daily_totals(lake.path(), "2026-02-01", "2026-02-28"),
        "\
adatum | 45 | 78.1268000000 | 78.1268000000 | 78.1268000000
contoso | 105 | 136.7589853888 | 126.7460476261 | 139.4206523897"
    );
    // The rate manifest's own BilledCost per partition says the same.
    let rate = manifests(lake.path())
        .into_iter()
        .find(|m| m.command == "rate")
        .unwrap();
    let billed: Vec<String> = rate
        .partitions
        .iter()
        .map(|p| format!("{} {}", p.path, p.billed_cost.clone().unwrap_or_default()))
        .collect();
    assert!(
        billed.contains(&"costs/org=contoso/month=2026-01/usage-0.parquet 296.6767783893".into())
    );
    assert!(billed.contains(&"costs/org=adatum/month=2026-02/usage-0.parquet 78.1268000000".into()));
    // The summary rounds only the totals, half away from zero, to the minor unit.
    let summary = read_csv(&lake.path().join("daily-2026-01-01/summary.csv"));
    let cols = [
        "organization_id",
        "rows",
        "x_ListCostUsd",
        "ListCost",
        "BilledCost",
        "BillingCurrency",
    ];
    assert_eq!(
        text_table(&summary, &cols),
        "\
adatum | 46 | 55.92 | 55.92 | 55.92 | USD
contoso | 222 | 292.74 | 269.71 | 296.68 | EUR
fabrikam | 63 | 1097.92 | 171550 | 162973 | JPY"
    );
}

#[test]
fn periods_across_month_and_year_boundaries() {
    let lake = rated_sample();
    // The billing cycle reads January and February, cut at the 15th.
    assert_eq!(
        daily_totals(lake.path(), "2026-01-15", "2026-02-14"),
        "\
adatum | 78 | 116.5115200000 | 116.5115200000 | 116.5115200000
contoso | 217 | 283.9492267680 | 262.3061465705 | 288.5367612300
fabrikam | 34 | 602.8854661999 | 94200.8540937344 | 89490.8113890477"
    );
    let daily = read_csv(&lake.path().join("daily-2026-01-15/lines.csv"));
    let mut days: Vec<&str> = daily.iter().map(|l| l["usage_date"].as_str()).collect();
    days.sort();
    days.dedup();
    assert_eq!(
        (days[0], days[days.len() - 1], days.len()),
        ("2026-01-15", "2026-02-14", 31)
    );
    // The period grain sums the same rows into one line per subscription and meter.
    let out = lake.path().join("cycle");
    cycle(lake.path(), &out, &[]);
    let lines = read_csv(&out.join("lines.csv"));
    assert_eq!(lines.len(), 13);
    assert!(!lines[0].contains_key("usage_date"));
    let contoso: Vec<&Row> = lines
        .iter()
        .filter(|l| l["organization_id"] == "contoso")
        .collect();
    assert_eq!(sum(&contoso, "BilledCost"), "288.5367612300");
    // Across a year boundary: December 2025 has no partitions; January is cut after the 5th.
    daily_totals(lake.path(), "2025-12-20", "2026-01-05");
    let newyear = read_csv(&lake.path().join("daily-2025-12-20/lines.csv"));
    let mut days: Vec<&str> = newyear.iter().map(|l| l["usage_date"].as_str()).collect();
    days.sort();
    days.dedup();
    assert_eq!(
        days,
        [
            "2026-01-01",
            "2026-01-02",
            "2026-01-03",
            "2026-01-04",
            "2026-01-05"
        ]
    );
    // --org reads that organization's partitions only.
    let out = lake.path().join("org");
    cycle(lake.path(), &out, &["--org", "adatum"]);
    let summary = read_csv(&out.join("summary.csv"));
    assert_eq!(
        text_table(&summary, &["organization_id", "rows", "BilledCost"]),
        "adatum | 78 | 116.51"
    );
}

#[test]
fn invoice_currency_is_converted_with_the_fx_rate_of_the_cycle_start_month() {
    let lake = rated_sample();
    let header = "CustomerId,ResourceGuid,ChargeStartDate,ChargeEndDate,ConsumedQuantity,PretaxCharges,Currency,Unit";
    let invoice = |start: &str, end: &str| {
        let line = format!("{T_CA},{D2V3},{start},{end},744,€60.00,EUR,1 Hour");
        write(lake.path(), "eur.csv", &format!("{header}\r\n{line}\r\n"))
    };
    let inv = invoice("1/15/2026 0:00", "2/14/2026 23:59");
    let out = lake.path().join("recon");
    let extra = ["--invoice", &arg(&inv), "--tenant", T_CA];
    cycle(lake.path(), &out, &extra);
    let rows = read_csv(&out.join("variance.csv"));
    let vm = rows.iter().filter(|r| r["meter_id"] == D2V3);
    // 71.424 USD / 1.0854 (EUR, 2026-01) = 65.8043117745; 100 * (1 - 60 / 65.8043117745).
    let cols = [
        "currency",
        "computed_cost_calendar",
        "reason_code",
        "effective_discount_percent",
    ];
    assert_eq!(
        text_table(vm, &cols),
        "EUR | 65.8043117745 | PRICE_DIFFERENCE | 8.8205645162"
    );
    // A cycle starting in a month without an EUR rate cannot be converted: exit 2.
    let inv = invoice("12/15/2025 0:00", "1/14/2026 23:59");
    let (code, stderr) = reconcile_fails(
        lake.path(),
        "2025-12-15",
        "2026-01-14",
        &["--invoice", &arg(&inv)],
    );
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no FX rate for EUR in 2025-12"), "{stderr}");
}

#[test]
fn microsofts_api_json_invoice_reads_unchanged() {
    let lake = rated_sample();
    let out = lake.path().join("recon");
    let inv = arg(&ms_sample("invoice-lineitems-azure.json"));
    let stdout = reconcile(
        lake.path(),
        &out,
        "2019-08-02",
        "2019-09-01",
        &["--invoice", &inv],
    );
    let rows = read_csv(&out.join("variance.csv"));
    let cols = [
        "meter_id",
        "invoice_quantity",
        "invoice_cost",
        "unit",
        "reason_code",
    ];
    assert_eq!(
        text_table(&rows, &cols),
        "\
505db374-df8a-44df-9d8c-13c14b61dee1 | 745.0000000000 | 63.3300000000 | 1 Hour | MISSING_IN_USAGE
d23a5753-ff85-4ddf-af28-8cc5cf2d3882 | 0.0008820000 | 0.0000000000 | 1 GB/Month | MISSING_IN_USAGE"
    );
    assert!(
        stdout.contains("GUIDs, but none is a rated subscription"),
        "{stdout}"
    );
    assert!(
        stdout.contains("no rated usage in 2019-08-02..2019-09-01"),
        "{stdout}"
    );
}

/// reconciliation.md, worked example, on a lake of its own: meter M with ladder L1, one
/// subscription created on 2026-01-15 that uses 4 GB every day until 2026-02-14.
#[test]
fn worked_example_of_the_spec() {
    let lake = lake();
    let dir = lake.path().join("in");
    let tenant = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
    let sub = "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d";
    let meter = "2b3c4d5e-6f70-4b8c-9d0e-1f2a3b4c5d6e";
    write(
        &dir,
        "reference/partnerships.csv",
        "partnership_id,partnership_name\np,P\n",
    );
    write(
        &dir,
        "reference/organizations.csv",
        "organization_id,organization_name,billing_currency,consumption_adjustment_percent,\
         reservation_markup_percent\no,O,USD,,\n",
    );
    let tenants = format!("customer_tenant_id,organization_id,partnership_id\n{tenant},o,p\n");
    write(&dir, "reference/tenants.csv", &tenants);
    let mut sheet = String::from(
        "meterId,meterName,unitOfMeasure,type,currencyCode,tierMinimumUnits,unitPrice,effectiveStartDate\n",
    );
    for (min, price) in [("0", "0"), ("5", "0.087"), ("100", "0.083")] {
        sheet.push_str(&format!(
            "{meter},M,1 GB,Consumption,USD,{min},{price},2026-01-01T00:00:00Z\n"
        ));
    }
    let prices = arg(&write(&dir, "prices.csv", &sheet));
    let mut usage = String::new();
    let first = chrono::NaiveDate::from_ymd_opt(2026, 1, 15).unwrap();
    for day in first.iter_days().take(31) {
        let next = day.succ_opt().unwrap();
        usage.push_str(&format!(
            "{{\"customerTenantId\": \"{tenant}\", \"subscriptionId\": \"{sub}\", \
             \"usageStartTime\": \"{day}T00:00:00Z\", \"usageEndTime\": \"{next}T00:00:00Z\", \
             \"resource\": {{\"id\": \"{meter}\"}}, \"quantity\": 4, \"unit\": \"1 GB\"}}\n"
        ));
    }
    let usage = arg(&write(&dir, "usage.ndjson", &usage));
    let l = arg(lake.path());
    let reference_dir = arg(&dir.join("reference"));
    ok(["ingest", "reference", "--lake", &l, &reference_dir]);
    ok(["ingest", "prices", "--lake", &l, &prices]);
    ok(["ingest", "usage", "--lake", &l, &usage]);
    ok(["rate", "--lake", &l]);
    // As rated per calendar month: January C(68) = 5.481, February C(56) = 4.437.
    let jan = daily_totals(lake.path(), "2026-01-01", "2026-01-31");
    let feb = daily_totals(lake.path(), "2026-02-01", "2026-02-28");
    assert_eq!(jan, "o | 17 | 5.4810000000 | 5.4810000000 | 5.4810000000");
    assert_eq!(feb, "o | 14 | 4.4370000000 | 4.4370000000 | 4.4370000000");

    let mut results = Vec::new();
    for cost in ["10.26", "9.92", "8.72"] {
        let invoice = write(
            &dir,
            &format!("invoice-{cost}.csv"),
            &format!(
                "CustomerId,ResourceGuid,ChargeStartDate,ChargeEndDate,ConsumedQuantity,PretaxCharges,Currency\n\
                 {tenant},{meter},1/15/2026 0:00,2/14/2026 23:59,124,${cost},USD\n"
            ),
        );
        let out = lake.path().join(format!("out-{cost}"));
        let stdout = cycle(lake.path(), &out, &["--invoice", &arg(&invoice)]);
        if cost == "8.72" {
            assert!(stdout.contains("M: effective discount 15.0 %"), "{stdout}");
        }
        results.extend(read_csv(&out.join("variance.csv")));
    }
    let cols = [
        "invoice_cost",
        "computed_quantity",
        "computed_cost_calendar",
        "computed_cost_cycle",
        "reason_code",
        "effective_discount_percent",
    ];
    assert_eq!(
        text_table(&results, &cols),
        "\
10.2600000000 | 124.0000000000 | 9.9180000000 | 10.2570000000 | TIER_PERIOD |
9.9200000000 | 124.0000000000 | 9.9180000000 | 10.2570000000 | MATCHED |
8.7200000000 | 124.0000000000 | 9.9180000000 | 10.2570000000 | PRICE_DIFFERENCE | 14.9848883689"
    );
}

/// `make demo`: the nightly pipeline, then month end, which re-rates January and reconciles
/// the billing cycle against the sample invoice, printing the summary.
#[test]
fn month_end_pipeline_reconciles_the_billing_cycle() {
    let dir = lake();
    ok(["run", &arg(&pipeline_into(dir.path(), "nightly.toml"))]);
    let month_end = pipeline_into(dir.path(), "month-end.toml");
    let plan = ok(["run", &arg(&month_end), "--dry-run"]);
    assert!(
        plan.contains("2. reconcile 2026-01-15..2026-02-14 against"),
        "{plan}"
    );
    let stdout = ok(["run", &arg(&month_end)]);
    let total = "    total                                                    1518.77      1003.35       515.42";
    assert!(stdout.contains(total), "{stdout}");
    let out = dir.path().join("lake/reconcile/2026-01-15_2026-02-14");
    let rows = read_csv(&out.join("variance.csv"));
    let reasons: Vec<&str> = rows.iter().map(|r| r["reason_code"].as_str()).collect();
    for code in cspcost::reconcile::variance::VarianceReason::ALL.map(|r| r.as_str()) {
        assert!(reasons.contains(&code), "{code} missing: {reasons:?}");
    }
    // The run manifest names the reconcile stage's own run.
    let ms = manifests(&dir.path().join("lake"));
    let recon = ms
        .iter()
        .find(|m| m.command == "reconcile")
        .expect("reconcile manifest");
    let run = ms
        .iter()
        .find(|m| m.command == "run")
        .expect("run manifest");
    assert!(
        run.notes.contains(&format!("reconcile: {}", recon.run_id)),
        "{:?}",
        run.notes
    );
}

#[test]
fn pipeline_reconcile_errors_name_their_lines() {
    let dir = lake();
    let text = "lake = \"x\"\nstages = [\"reconcile\"]\n\n[[reconcile]]\nfrom = \"2026-02-30\"\nto = \"2026-01-31\"\nout = \"o\"\ncost_tolerance = \"-1\"\nsubscription_map = \"map.csv\"\n";
    let cfg = write(dir.path(), "bad.toml", text);
    let o = cspcost(["run", &arg(&cfg)]);
    assert_eq!(o.status.code(), Some(2));
    let problems = [
        "bad.toml:5: reconcile.from '2026-02-30' is not a date (YYYY-MM-DD)",
        "bad.toml:5: reconcile.cost_tolerance '-1' is not a decimal number >= 0",
        "map.csv: no such file",
        "bad.toml:5: reconcile.subscription_map needs reconcile.invoice",
    ];
    assert_contains_all(&stderr(&o), &problems);
    let empty = write(
        dir.path(),
        "empty.toml",
        "lake = \"x\"\nstages = [\"reconcile\"]\n",
    );
    let o = cspcost(["run", &arg(&empty)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(
        "empty.toml:2: stage reconcile is listed but no [[reconcile]] table names a period"
    ));
}
