//! `bill` end to end (billing.md): the sample month's statements as hand-checked in
//! `sample_data/README.md` §E.6 (`scripts/billing_expectations.py`), reseller statements and
//! amounts, issued statements that never change while restatements become adjustment lines,
//! the reference validation of resellers and the reservation product's settings, and the
//! three reservation rejections of billing.md in their order.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::Path;

const AS_OF: &str = "2026-03-01";
const T_TAILSPIN: &str = "d1a5c0de-7a11-4b0e-9d1e-5a11b0000001";
const T_WINGTIP: &str = "e2b6c0de-3e1c-4a7f-8b2d-3c0d00000002";
const T_UNREGISTERED: &str = "43ab1ab1-16d6-4711-84c7-f75b8bb73bc1";

fn statement_path(month: &str, holder: &str) -> String {
    format!("bills/month={month}/{holder}/statement")
}

fn read(lake: &Path, rel: &str) -> String {
    std::fs::read_to_string(lake.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn json(lake: &Path, month: &str, holder: &str) -> serde_json::Value {
    serde_json::from_str(&read(
        lake,
        &format!("{}.json", statement_path(month, holder)),
    ))
    .unwrap()
}

fn csv(lake: &Path, month: &str, holder: &str) -> String {
    read(lake, &format!("{}.csv", statement_path(month, holder)))
}

/// `kind description amount` of every line of a statement, then `total`.
fn lines(lake: &Path, month: &str, holder: &str) -> Vec<String> {
    let s = json(lake, month, holder);
    let mut out: Vec<String> = s["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{} {} {}",
                l["kind"].as_str().unwrap(),
                l["description"].as_str().unwrap(),
                l["amount"].as_str().unwrap()
            )
        })
        .collect();
    out.push(format!("total {}", s["total"].as_str().unwrap()));
    out
}

fn bill(l: &str, month: &str) -> String {
    ok(["bill", "--lake", l, "--month", month])
}

/// The sample, rated and reserved; with the reseller add-on of `sample_data/reseller/` too
/// when `resellers`.
fn billed_sample(resellers: bool) -> tempfile::TempDir {
    let dir = lake();
    let l = arg(dir.path());
    ingest_sample(dir.path());
    ok([
        "ingest",
        "reservations",
        "--lake",
        &l,
        &arg(&sample("reservations")),
    ]);
    if resellers {
        for (kind, rel) in [
            ("reference", "reseller/reference"),
            ("usage", "reseller/usage"),
            ("reservations", "reseller/reservations"),
        ] {
            ok(["ingest", kind, "--lake", &l, &arg(&sample(rel))]);
        }
    }
    ok(["rate", "--lake", &l]);
    ok(["reserve", "--lake", &l, "--as-of", AS_OF]);
    dir
}

#[test]
fn sample_statements_are_the_hand_checked_ones() {
    let dir = billed_sample(false);
    let l = arg(dir.path());
    let out = bill(&l, "2026-01");
    for row in [
        "organization adatum         adatum-2026-01               2            55.92 USD              0 (0.00)",
        "organization contoso        contoso-2026-01              8           474.24 EUR              0 (0.00)",
        "organization fabrikam       fabrikam-2026-01             4           170022 JPY                 0 (0)",
    ] {
        assert!(out.contains(row), "{row}\n{out}");
    }
    assert_eq!(
        csv(dir.path(), "2026-01", "org=contoso"),
        "invoice_id,kind,organization_id,description,service_name,charge_category,charge_frequency,order_id,installment,amount,currency
contoso-2026-01,usage,contoso,Application Gateway,Application Gateway,Usage,Usage-Based,,,5.51,EUR
contoso-2026-01,usage,contoso,Azure Monitor,Azure Monitor,Usage,Usage-Based,,,4.10,EUR
contoso-2026-01,usage,contoso,Load Balancer,Load Balancer,Usage,Usage-Based,,,12.95,EUR
contoso-2026-01,usage,contoso,Storage Accounts,Storage Accounts,Usage,Usage-Based,,,197.95,EUR
contoso-2026-01,usage,contoso,Virtual Machines,Virtual Machines,Usage,Usage-Based,,,72.38,EUR
contoso-2026-01,usage,contoso,Virtual Network,Virtual Network,Usage,Usage-Based,,,3.77,EUR
contoso-2026-01,reservation,contoso,\"Reserved VM Instance, Standard_D2_v3, EU West, 1 Year (order ord-0001, installment 1 of 12)\",,Purchase,Recurring,ord-0001,1 of 12,177.56,EUR
contoso-2026-01,rounding,,Rounding,,,,,,0.02,EUR
contoso-2026-01,total,,Total,,,,,,474.24,EUR
"
    );
    // The header: invoice ID equal to the rows' InvoiceId, issuer, FX with its month, markup.
    let s = json(dir.path(), "2026-01", "org=contoso");
    assert_eq!(
        s["invoice_id"],
        cspcost::model::invoice_id("contoso", "2026-01")
    );
    assert_eq!(s["invoice_id"], "contoso-2026-01");
    assert_eq!(s["issuer"], "Northwind CSP Europe");
    assert_eq!(
        s["holder"],
        serde_json::json!({"kind": "organization", "id": "contoso", "name": "Contoso Ltd"})
    );
    assert_eq!(
        s["fx"],
        serde_json::json!([{"currency": "EUR", "usd_per_unit": "1.0854", "month": "2026-01"}])
    );
    assert_eq!(
        s["markup_percent"],
        serde_json::json!({"consumption": "10", "reservation": "10"})
    );
    assert_eq!(s["issued"], false);
    assert_eq!(
        lines(dir.path(), "2026-01", "org=fabrikam"),
        [
            "usage Storage Accounts 152371",
            "usage Virtual Machines 10602",
            "reservation Reserved VM Instance, Standard_D2_v3, EU West, 3 Years (order ord-0003, installment 1 of 36) 7049",
            "rounding Rounding 0",
            "total 170022"
        ]
    );
    bill(&l, "2026-02");
    let totals: Vec<String> = ["org=adatum", "org=contoso", "org=fabrikam"]
        .iter()
        .map(|h| {
            format!(
                "{h} {}",
                json(dir.path(), "2026-02", h)["total"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        totals,
        [
            "org=adatum 1479.73",
            "org=contoso 1575.57",
            "org=fabrikam 7049"
        ]
    );
    assert_eq!(
        lines(dir.path(), "2026-02", "org=adatum"),
        [
            "usage Azure Container Apps 41.11",
            "usage Virtual Machines 37.01",
            "reservation Reserved VM Instance, Standard_D2_v3, EU West, 1 Year (order ord-0002, installment 1 of 1) 1401.60",
            "rounding Rounding 0.01",
            "total 1479.73"
        ]
    );
    // Bandwidth split by resource (load balancer, application gateway) rounds up twice:
    // 4.4765820203 -> 4.48 and 2.2872659869 -> 2.29, so the rounding line is negative.
    assert_eq!(
        lines(dir.path(), "2026-02", "org=contoso"),
        [
            "usage Application Gateway 2.29",
            "usage Azure Monitor 1.79",
            "usage Load Balancer 4.48",
            "usage Storage Accounts 93.80",
            "usage Virtual Machines 35.23",
            "usage Virtual Network 1.84",
            "reservation Reserved VM Instance, Standard_D2_v3, EU West, 1 Year (order ord-0001, installment 2 of 12) 177.56",
            "reservation Reserved VM Instance, Standard_E4s_v5, EU West, 1 Year (order ord-0004, installment 1 of 1) 1258.59",
            "rounding Rounding -0.01",
            "total 1575.57"
        ]
    );
    // The manifest balances each statement against its rows' BilledCost rounded once.
    let m = manifests(dir.path())
        .into_iter()
        .find(|m| m.command == "bill")
        .unwrap();
    assert_eq!(m.counts["statements"], 3);
    assert!(
        m.notes.contains(&"organization contoso 2026-02: total 1575.57 = round_minor(BilledCost 1575.5706523897) 1575.57 + adjustments 0.00 (107 rows, 9 lines)".to_string()),
        "{:?}",
        m.notes
    );
    // A rerun writes the same bytes.
    let before = std::fs::read(
        dir.path()
            .join("bills/month=2026-01/org=contoso/statement.json"),
    )
    .unwrap();
    bill(&l, "2026-01");
    let after = std::fs::read(
        dir.path()
            .join("bills/month=2026-01/org=contoso/statement.json"),
    )
    .unwrap();
    assert_eq!(before, after);
    // --org bills one organization only; an unknown one is exit 2.
    let one = ok([
        "bill", "--lake", &l, "--month", "2026-01", "--org", "adatum",
    ]);
    assert!(
        one.contains("adatum-2026-01") && !one.contains("contoso-2026-01"),
        "{one}"
    );
    let o = cspcost([
        "bill", "--lake", &l, "--month", "2026-01", "--org", "nobody",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--org 'nobody': no cost rows of that organization in 2026-01"));
    let o = cspcost([
        "bill", "--lake", &l, "--month", "2026-13", "--org", "x", "--issue",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--month '2026-13' is not YYYY-MM"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("--issue issues a whole month: drop --org"));
}

#[test]
fn reseller_statements_and_amounts() {
    let dir = billed_sample(true);
    let l = arg(dir.path());
    let out = bill(&l, "2026-01");
    assert!(
        out.contains(
            "reseller     r-blue         r-blue-2026-01               4           690.56 EUR"
        ),
        "{out}"
    );
    assert_eq!(
        csv(dir.path(), "2026-01", "reseller=r-blue"),
        "invoice_id,kind,organization_id,description,service_name,charge_category,charge_frequency,order_id,installment,amount,currency
r-blue-2026-01,usage,tailspin,Virtual Machines,Virtual Machines,Usage,Usage-Based,,,22.08,EUR
r-blue-2026-01,reservation,tailspin,\"Reserved VM Instance, Standard_D2_v3, EU West, 1 Year (order ord-1001, installment 1 of 1)\",,Purchase,One-Time,ord-1001,1 of 1,665.03,EUR
r-blue-2026-01,usage,wingtip,Virtual Machines,Virtual Machines,Usage,Usage-Based,,,3.45,EUR
r-blue-2026-01,rounding,,Rounding,,,,,,0.00,EUR
r-blue-2026-01,total,,Total,,,,,,690.56,EUR
"
    );
    let r = json(dir.path(), "2026-01", "reseller=r-blue");
    assert_eq!(r["issuer"], "Northwind CSP Europe");
    assert_eq!(
        r["markup_percent"],
        serde_json::json!({"consumption": "4", "reservation": "3"})
    );
    assert_eq!(
        lines(dir.path(), "2026-01", "org=tailspin"),
        [
            "usage Virtual Machines 24.73",
            "reservation Reserved VM Instance, Standard_D2_v3, EU West, 1 Year (order ord-1001, installment 1 of 1) 698.28",
            "rounding Rounding 0.00",
            "total 723.01"
        ]
    );
    let t = json(dir.path(), "2026-01", "org=tailspin");
    assert_eq!(t["issuer"], "Bluebird IT Services GmbH");
    assert_eq!(
        lines(dir.path(), "2026-01", "org=wingtip"),
        [
            "usage Virtual Machines 3.38",
            "rounding Rounding 0.00",
            "total 3.38"
        ]
    );
    // Rows: reseller organizations carry x_ResellerCost and the reseller as issuer.
    let cols = [
        "InvoiceIssuerName",
        "ListCost",
        "x_ResellerCost",
        "BilledCost",
    ];
    let rows = render(
        dir.path(),
        "costs/org=tailspin/month=2026-01/usage-0.parquet",
        &cols,
    );
    assert_eq!(rows.len(), 10);
    assert!(
        rows.iter()
            .all(|r| r == "Bluebird IT Services GmbH|2.1227197347|2.2076285241|2.4725439470"),
        "{rows:?}"
    );
    let p = render(
        dir.path(),
        "costs/org=tailspin/month=2026-01/purchases-0.parquet",
        &cols,
    );
    assert_eq!(
        p,
        ["Bluebird IT Services GmbH|645.6600000000|665.0300000000|698.2800000000"]
    );
    // Direct customers: x_ResellerCost null, issuer the partnership, as before.
    let direct = render(
        dir.path(),
        "costs/org=contoso/month=2026-01/purchases-0.parquet",
        &cols,
    );
    assert_eq!(
        direct,
        ["Northwind CSP Europe|161.4200000000|null|177.5600000000"]
    );
    // tenants show and assets name the reseller.
    let show = ok(["tenants", "show", "--lake", &l, T_TAILSPIN]);
    assert!(
        show.contains(
            "reseller      r-blue (Bluebird IT Services GmbH), invoices the organization"
        ),
        "{show}"
    );
    let assets = ok(["assets", "--lake", &l, "--org", "tailspin"]);
    assert!(assets.contains("tailspin (reseller r-blue)"), "{assets}");
    // The add-on's two rejected orders, with their sentences.
    let q = render(
        dir.path(),
        "quarantine/stage=reserve/part-0.parquet",
        &["reason_code", "detail"],
    );
    for want in [
        "BILLING_FREQUENCY_NOT_SUPPORTED|order ord-1002: sku_id 'DZH318Z0BPVW/00QK' supports only OneTime billing (reservation_skus.csv), not Monthly",
        "NOT_IN_PRICE_LIST|order ord-1003: sku_id 'DZH318Z0BQ4L/0126' is not in the price list of 'r-blue' (price_lists.csv)",
    ] {
        assert!(q.iter().any(|r| r == want), "{want}\n{q:#?}");
    }
}

/// sha256 of every file under `bills/month=<month>/`.
fn bill_files(lake: &Path, month: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = lake.join(format!("bills/month={month}"));
    files_under(&dir)
        .into_iter()
        .map(|rel| {
            let bytes = std::fs::read(dir.join(&rel)).unwrap();
            (rel, bytes)
        })
        .collect()
}

fn amount(v: &serde_json::Value) -> cspcost::model::Dec10 {
    cspcost::model::Dec10::parse(v.as_str().unwrap()).unwrap()
}

#[test]
fn issued_january_never_changes_and_february_carries_the_restatement() {
    let dir = lake();
    let l = arg(dir.path());
    for (kind, rel) in [
        ("reference", "reference"),
        ("prices", "prices"),
        ("usage", "usage/dump-2026-01-20"),
    ] {
        ok(["ingest", kind, "--lake", &l, &arg(&sample(rel))]);
    }
    ok(["rate", "--lake", &l]);
    let issued = ok(["bill", "--lake", &l, "--month", "2026-01", "--issue"]);
    assert!(issued.contains("(issued now)"), "{issued}");
    let january = bill_files(dir.path(), "2026-01");
    assert_eq!(january.len(), 6);
    let issued_json = json(dir.path(), "2026-01", "org=contoso");
    assert_eq!(issued_json["issued"], true);
    let registry: serde_json::Value =
        serde_json::from_str(&read(dir.path(), "bills/_issued.json")).unwrap();
    let contoso = registry["months"]["2026-01"]["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["holder_id"] == "contoso")
        .unwrap()
        .clone();
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(&january["org=contoso/statement.json"]));
    assert_eq!(contoso["json_sha256"], sha);

    // Dump 2 restates January (and adds its last days); January is rated again.
    ok([
        "ingest",
        "usage",
        "--lake",
        &l,
        &arg(&sample("usage/dump-2026-02-16")),
    ]);
    ok(["rate", "--lake", &l]);
    let again = bill(&l, "2026-01");
    assert!(again.contains("(issued earlier; not rewritten)"), "{again}");
    assert_eq!(bill_files(dir.path(), "2026-01"), january);
    let o = cspcost(["bill", "--lake", &l, "--month", "2026-01", "--issue"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("2026-01 was already issued by run"),
        "{}",
        stderr(&o)
    );
    assert_eq!(bill_files(dir.path(), "2026-01"), january);

    bill(&l, "2026-02");
    // February: its own usage (§E.5: 139.42 EUR), then one adjustment per January line
    // equal to what January's line amounts to now minus what was issued.
    let feb = json(dir.path(), "2026-02", "org=contoso");
    let feb_lines = feb["lines"].as_array().unwrap();
    let issued_lines: BTreeMap<String, cspcost::model::Dec10> = issued_json["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["description"].as_str().unwrap().to_string(),
                amount(&l["amount"]),
            )
        })
        .collect();
    // January's lines as the current costs/ say (sample_data/README.md §E.6).
    let current_january = [
        ("Application Gateway", "5.51"),
        ("Azure Monitor", "4.10"),
        ("Load Balancer", "12.95"),
        ("Storage Accounts", "197.95"),
        ("Virtual Machines", "72.38"),
        ("Virtual Network", "3.77"),
        ("Rounding", "0.02"),
    ];
    let mut adjustments = cspcost::model::Dec10::ZERO;
    for (service, now) in current_january {
        let now = cspcost::model::Dec10::parse(now).unwrap();
        let was = issued_lines.get(service).copied().unwrap_or_default();
        let what = if service == "Rounding" {
            "rounding"
        } else {
            service
        };
        let line = feb_lines
            .iter()
            .find(|l| l["description"] == format!("Adjustment for 2026-01: {what}"));
        let got = line.map(|l| amount(&l["amount"])).unwrap_or_default();
        assert_eq!(got, now.checked_sub(was).unwrap(), "{service}");
        assert!(line.is_none_or(|l| l["kind"] == "adjustment"));
        adjustments = adjustments.checked_add(got).unwrap();
    }
    let own: cspcost::model::Dec10 = feb_lines
        .iter()
        .filter(|l| l["kind"] != "adjustment")
        .fold(cspcost::model::Dec10::ZERO, |s, l| {
            s.checked_add(amount(&l["amount"])).unwrap()
        });
    assert_eq!(own.to_plain(), "139.42");
    // Issued January + February = the current costs/ totals: 296.68 + 139.42 EUR.
    let jan_total = amount(&issued_json["total"]);
    assert_eq!(
        jan_total.checked_add(adjustments).unwrap().to_plain(),
        "296.68"
    );
    assert_eq!(
        jan_total
            .checked_add(amount(&feb["total"]))
            .unwrap()
            .to_plain(),
        "436.1"
    );
    // The same for the other organizations: adatum 55.92 + 78.13 USD; fabrikam has no
    // February usage (NO_FX_RATE), so its February statement is January's adjustment only.
    for (holder, jan_feb) in [("org=adatum", "134.05"), ("org=fabrikam", "162973")] {
        let j = amount(&json(dir.path(), "2026-01", holder)["total"]);
        let f = amount(&json(dir.path(), "2026-02", holder)["total"]);
        assert_eq!(j.checked_add(f).unwrap().to_plain(), jan_feb, "{holder}");
    }
    // Issuing February records its adjustments: March then owes nothing more for January.
    ok(["bill", "--lake", &l, "--month", "2026-02", "--issue"]);
    let march = bill(&l, "2026-03");
    assert!(
        march.contains("no statements: no cost rows in 2026-03"),
        "{march}"
    );
    // Tampering with an issued statement is detected.
    let path = dir
        .path()
        .join("bills/month=2026-01/org=contoso/statement.csv");
    std::fs::write(&path, "changed").unwrap();
    let o = cspcost(["bill", "--lake", &l, "--month", "2026-01"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("does not match the SHA-256 recorded in bills/_issued.json"));
}

#[test]
fn billing_reference_problems_are_listed_together_and_nothing_is_written() {
    let dir = lake();
    let src = lake();
    let s = src.path();
    write(
        s,
        "ref/partnerships.csv",
        "partnership_id,partnership_name\np1,P\n",
    );
    write(s, "ref/resellers.csv", "reseller_id,reseller_name,billing_currency,consumption_markup_percent,reservation_markup_percent\nr1,Reseller One,USD,4,3\n");
    write(s, "ref/organizations.csv", "organization_id,organization_name,billing_currency,consumption_adjustment_percent,reservation_markup_percent,reseller_id\neu,Euro Org,EUR,10,,r1\nus,US Org,USD,,,r9\n");
    write(
        s,
        "ref/reservation_settings.csv",
        "setting,value\nmonthly_billing_enabled,maybe\n",
    );
    write(
        s,
        "ref/reservation_skus.csv",
        "sku_id,supported_billing_cycles\nSKU/1,OneTime|Weekly\n",
    );
    write(s, "ref/price_lists.csv", "holder_id,sku_id\nnobody,SKU/1\n");
    let o = cspcost([
        "ingest",
        "reference",
        "--lake",
        &arg(dir.path()),
        &arg(&s.join("ref")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    for p in [
        "reseller 'r1' bills in USD but its organization 'eu' bills in EUR: a reseller and its organizations share one billing currency",
        "organization 'us' names unknown reseller_id 'r9' (not in resellers.csv)",
        "reservation_settings.csv: monthly_billing_enabled 'maybe' is not true or false",
        "reservation_skus.csv: sku_id 'SKU/1' has supported billing cycle 'Weekly' (expected OneTime, Monthly or OneTime|Monthly)",
        "price_lists.csv: holder_id 'nobody' is neither a reseller nor an organization",
    ] {
        assert!(err.contains(p), "{p}\n{err}");
    }
    assert!(!dir.path().join("staged/reference").exists());
}

/// Orders `(id, tenant, sku, frequency)`, all otherwise valid 1-year shared orders.
fn orders_csv(orders: &[(&str, &str, &str, &str)]) -> String {
    let mut text = String::from("order_id,reservation_id,customer_tenant_id,subscription_id,sku_id,product_id,product_title,product_details,region,term,quantity,billing_frequency,scope,purchase_date_utc,original_unit_price_usd\n");
    for (i, (id, tenant, sku, freq)) in orders.iter().enumerate() {
        text.push_str(&format!(
            "{id},0c1d2e3f-4a5b-4c6d-8e7f-9000000000{i:02},{tenant},f4d8e0de-2222-4d3b-8f4c-000000000002,{sku},P,Title,Details,westeurope,P1Y,1,{freq},Shared,2026-01-22T11:00:00Z,1000\n"
        ));
    }
    text
}

fn reserve_reasons(lake: &Path) -> Vec<String> {
    let mut q = render(
        lake,
        "quarantine/stage=reserve/part-0.parquet",
        &["reason_code", "detail"],
    );
    q.sort();
    q
}

#[test]
fn reservation_settings_reject_in_billing_md_order() {
    let dir = lake();
    let l = arg(dir.path());
    let src = lake();
    let reference = [
        sample("reseller/reference"),
        sample("reference/fx_rates.csv"),
        sample("reference/partnerships.csv"),
    ];
    let ingest_reference = |lake: &str| {
        let mut args = vec![
            "ingest".to_string(),
            "reference".into(),
            "--lake".into(),
            lake.into(),
        ];
        args.extend(reference.iter().map(|p| arg(p)));
        ok(args);
    };
    ingest_reference(&l);
    // Monthly billing off (the seed product's default) wins over everything after it.
    write(
        src.path(),
        "off/reservation_settings.csv",
        "setting,value\nmonthly_billing_enabled,false\n",
    );
    ok([
        "ingest",
        "reference",
        "--lake",
        &l,
        &arg(&src.path().join("off")),
    ]);
    // ord-a: Monthly on a OneTime-only SKU missing from the reseller's list: disabled first.
    let orders = orders_csv(&[
        ("ord-a", T_WINGTIP, "DZH318Z0BPVW/00QK", "Monthly"),
        ("ord-b", T_WINGTIP, "DZH318Z0BQ4L/0126", "OneTime"),
        ("ord-c", T_UNREGISTERED, "DZH318Z0BQ4L/0126", "OneTime"),
        ("ord-d", T_TAILSPIN, "DZH318Z0BQ4L/0123", "OneTime"),
        ("ord-e", T_TAILSPIN, "DZH318Z0BQ4L/0126", "OneTime"),
    ]);
    ok([
        "ingest",
        "reservations",
        "--lake",
        &l,
        &arg(&write(src.path(), "o/orders.csv", &orders)),
    ]);
    // tailspin lists /0126 itself, but its reseller's list does not: still not sellable.
    write(src.path(), "lists/price_lists.csv", "holder_id,sku_id\nr-blue,DZH318Z0BQ4L/0123\nr-blue,DZH318Z0BPVW/00QK\ntailspin,DZH318Z0BQ4L/0126\n");
    ok([
        "ingest",
        "reference",
        "--lake",
        &l,
        &arg(&src.path().join("lists")),
    ]);
    ok(["reserve", "--lake", &l, "--as-of", AS_OF]);
    assert_eq!(
        reserve_reasons(dir.path()),
        [
            "MONTHLY_BILLING_DISABLED|order ord-a: billing_frequency is Monthly but monthly billing of reservations is disabled (reservation_settings.csv monthly_billing_enabled = false, the default)",
            "NOT_IN_PRICE_LIST|order ord-b: sku_id 'DZH318Z0BQ4L/0126' is not in the price list of 'r-blue' (price_lists.csv)",
            "NOT_IN_PRICE_LIST|order ord-d: sku_id 'DZH318Z0BQ4L/0123' is not in the price list of 'tailspin' (price_lists.csv)",
            "NOT_IN_PRICE_LIST|order ord-e: sku_id 'DZH318Z0BQ4L/0126' is not in the price list of 'r-blue' (price_lists.csv)",
            "UNMAPPED_TENANT|order ord-c: customer tenant 43ab1ab1-16d6-4711-84c7-f75b8bb73bc1 is not registered to an organization (cspcost tenants add)",
        ]
    );
    // Monthly billing on: the SKU's supported cycles come next, before the price list.
    write(
        src.path(),
        "on/reservation_settings.csv",
        "setting,value\nmonthly_billing_enabled,true\n",
    );
    ok([
        "ingest",
        "reference",
        "--lake",
        &l,
        &arg(&src.path().join("on")),
    ]);
    ok(["reserve", "--lake", &l, "--as-of", AS_OF]);
    assert_eq!(
        reserve_reasons(dir.path())[0],
        "BILLING_FREQUENCY_NOT_SUPPORTED|order ord-a: sku_id 'DZH318Z0BPVW/00QK' supports only OneTime billing (reservation_skus.csv), not Monthly"
    );
    // Without reservation_settings.csv at all, monthly billing is off.
    let fresh = lake();
    let f = arg(fresh.path());
    ingest_reference(&f);
    ok([
        "ingest",
        "reservations",
        "--lake",
        &f,
        &arg(&src.path().join("o/orders.csv")),
    ]);
    ok(["reserve", "--lake", &f, "--as-of", AS_OF]);
    assert!(reserve_reasons(fresh.path())[0].starts_with("MONTHLY_BILLING_DISABLED|order ord-a: "));
}

#[test]
fn month_end_pipeline_bills_the_month() {
    let dir = lake();
    ok(["run", &arg(&pipeline_into(dir.path(), "nightly.toml"))]);
    let month_end = pipeline_into(dir.path(), "month-end.toml");
    let plan = ok(["run", &arg(&month_end), "--dry-run"]);
    assert!(plan.contains("  3. bill 2026-01\n"), "{plan}");
    let out = ok(["run", &arg(&month_end)]);
    assert!(
        out.contains(
            "organization contoso        contoso-2026-01              8           474.24 EUR"
        ),
        "{out}"
    );
    let l = dir.path().join("lake");
    assert_eq!(
        lines(&l, "2026-01", "org=adatum"),
        [
            "usage Virtual Machines 55.92",
            "rounding Rounding 0.00",
            "total 55.92"
        ]
    );
    // The [bill] table is validated like the command line, problems with their line.
    let text = "lake = \"x\"\nstages = [\"bill\"]\n\n[bill]\nmonth = \"2026-1\"\norg = \"contoso\"\nissue = true\n";
    let cfg = write(dir.path(), "bad.toml", text);
    let o = cspcost(["run", &arg(&cfg)]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("bad.toml:5: bill.month '2026-1' is not YYYY-MM"),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:5: bill.issue issues a whole month: drop bill.org"),
        "{err}"
    );
    let missing = write(
        dir.path(),
        "missing.toml",
        "lake = \"x\"\nstages = [\"bill\"]\n",
    );
    let o = cspcost(["run", &arg(&missing)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(
        "missing.toml:2: stage bill is listed but there is no [bill] table naming the month"
    ));
}

#[test]
fn reseller_statements_carry_adjustments_per_organization() {
    let dir = lake();
    let l = arg(dir.path());
    for (kind, rel) in [
        ("reference", "reference"),
        ("reference", "reseller/reference"),
        ("prices", "prices"),
        ("usage", "usage/dump-2026-01-20"),
    ] {
        ok(["ingest", kind, "--lake", &l, &arg(&sample(rel))]);
    }
    ok(["rate", "--lake", &l]);
    ok(["bill", "--lake", &l, "--month", "2026-01", "--issue"]);
    // Nothing of the reseller's organizations in January yet: no reseller statement.
    assert!(!dir
        .path()
        .join("bills/month=2026-01/reseller=r-blue")
        .exists());
    // Their January usage arrives after January was issued.
    ok([
        "ingest",
        "usage",
        "--lake",
        &l,
        &arg(&sample("reseller/usage")),
    ]);
    ok(["rate", "--lake", &l]);
    let out = bill(&l, "2026-02");
    let words = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        out.lines()
            .any(|line| words(line) == "reseller r-blue r-blue-2026-02 3 25.53 EUR 2 (25.53)"),
        "{out}"
    );
    assert_eq!(
        lines(dir.path(), "2026-02", "reseller=r-blue"),
        [
            "adjustment Adjustment for 2026-01: Virtual Machines 22.08",
            "adjustment Adjustment for 2026-01: Virtual Machines 3.45",
            "rounding Rounding 0.00",
            "total 25.53"
        ]
    );
    let r = json(dir.path(), "2026-02", "reseller=r-blue");
    let orgs: Vec<&str> = r["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["organization_id"].as_str())
        .collect();
    assert_eq!(orgs, ["tailspin", "wingtip"]);
    assert_eq!(
        lines(dir.path(), "2026-02", "org=tailspin"),
        [
            "adjustment Adjustment for 2026-01: Virtual Machines 24.73",
            "rounding Rounding 0.00",
            "total 24.73"
        ]
    );
}
