//! Reservations end to end on `sample_data/`: the hand-computed prices, charges and assets of
//! `sample_data/README.md` §E.4, every rejection code, charges that sum to each asset's
//! total, idempotent re-ingest and reruns, and `rate` / `reserve` each owning their files.

use crate::common::*;
use cspcost::reserve::assets::{list_assets, AssetQuery, AssetRow};
use std::collections::BTreeMap;
use std::path::Path;

const AS_OF: &str = "2026-03-01";

/// A lake with reference data, prices and orders ingested and `reserve` run as of `as_of`.
fn reserved_sample(as_of: &str) -> tempfile::TempDir {
    let dir = lake();
    ingest_reservation_inputs(dir.path());
    ok(["reserve", "--lake", &arg(dir.path()), "--as-of", as_of]);
    dir
}

/// `ingest reservations` of `sample_data/reservations/` into the lake `l`.
fn ingest_orders(l: &str) {
    ok([
        "ingest",
        "reservations",
        "--lake",
        l,
        &arg(&sample("reservations")),
    ]);
}

fn assets(lake: &Path) -> Vec<AssetRow> {
    let l = cspcost::store::Lake::open(&arg(lake)).unwrap();
    list_assets(&l, &AssetQuery::default()).unwrap().unwrap()
}

fn purchases_path(org: &str, month: &str) -> String {
    format!("costs/org={org}/month={month}/purchases-0.parquet")
}

#[test]
fn sample_orders_are_priced_as_computed_by_hand() {
    let dir = reserved_sample(AS_OF);
    let got: Vec<String> = assets(dir.path())
        .iter()
        .map(|a| {
            format!(
                "{} {} {} {} {} usd={} {} fx={} {} purchase={} markup={} sell={} total={} {} {} {} {}/{} billed={}",
                a.get("order_id"),
                a.organization_id,
                a.get("term"),
                a.get("billing_frequency"),
                a.quantity,
                a.original_unit_price_usd.to_plain(),
                a.price_source,
                a.fx_usd_per_unit.to_plain(),
                a.fx_rate_date,
                a.purchase_unit_price.to_plain(),
                a.reservation_markup_percent.to_plain(),
                a.sell_unit_price.to_plain(),
                a.total.to_plain(),
                a.currency,
                cspcost::model::time::from_micros(a.expiration_utc).to_rfc3339(),
                a.status.as_str(),
                a.installments_billed_so_far,
                a.installments_total,
                a.billed_so_far.to_plain(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "ord-0001 contoso P1Y Monthly 3 usd=700.8 price_sheet fx=1.0854 2026-01-01 purchase=645.66 markup=10 sell=710.23 total=2130.69 EUR 2027-01-31T10:00:00+00:00 active 2/12 billed=355.12",
            "ord-0002 adatum P1Y OneTime 2 usd=700.8 price_sheet fx=1 2026-02-01 purchase=700.8 markup=0 sell=700.8 total=1401.6 USD 2027-02-03T14:20:00+00:00 active 1/1 billed=1401.6",
            "ord-0003 fabrikam P3Y Monthly 1 usd=1503.72 price_sheet fx=0.0064 2026-01-01 purchase=234956 markup=8 sell=253752 total=253752 JPY 2029-01-12T08:30:00+00:00 active 2/36 billed=14098",
            "ord-0004 contoso P1Y OneTime 1 usd=1234.56 order fx=1.079 2026-02-01 purchase=1144.17 markup=10 sell=1258.59 total=1258.59 EUR 2027-02-09T16:45:00+00:00 active 1/1 billed=1258.59",
        ]
    );

    let lineage: Vec<Option<String>> = assets(dir.path())
        .iter()
        .map(|a| {
            let file = a.price_source_file.as_deref().map(|f| {
                Path::new(f)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            });
            file.map(|f| format!("{f}:{}", a.price_source_row.unwrap_or(0)))
        })
        .collect();
    assert_eq!(
        lineage,
        [
            Some("retail-prices-page-1.json:5".to_string()),
            Some("retail-prices-page-1.json:5".to_string()),
            Some("retail-prices-page-1.json:6".to_string()),
            None
        ]
    );

    // Purchase charges by partition (README §E.4 "first months only", plus the last ones).
    let m = &manifests(dir.path())[0];
    assert_eq!(m.command, "reserve");
    let billed: BTreeMap<&str, (u64, &str)> = m
        .partitions
        .iter()
        .map(|p| {
            (
                p.path.as_str(),
                (p.rows, p.billed_cost.as_deref().unwrap_or("")),
            )
        })
        .collect();
    for (org, month, rows, total) in [
        ("contoso", "2026-01", 1, "177.5600000000"),
        ("contoso", "2026-02", 2, "1436.1500000000"),
        ("contoso", "2026-11", 1, "177.5600000000"),
        ("contoso", "2026-12", 1, "177.5300000000"),
        ("fabrikam", "2026-01", 1, "7049.0000000000"),
        ("fabrikam", "2026-02", 1, "7049.0000000000"),
        ("fabrikam", "2028-11", 1, "7049.0000000000"),
        ("fabrikam", "2028-12", 1, "7037.0000000000"),
        ("adatum", "2026-02", 1, "1401.6000000000"),
    ] {
        assert_eq!(
            billed.get(purchases_path(org, month).as_str()),
            Some(&(rows, total)),
            "{org} {month}"
        );
    }
    // 12 contoso months + 36 fabrikam months + 1 adatum month, and the assets table.
    assert_eq!(m.partitions.len(), 12 + 36 + 1 + 1);
    assert_eq!(m.counts["charges"], 12 + 36 + 1 + 1);

    // One charge row, column by column.
    let cols = [
        "BillingAccountId",
        "BillingCurrency",
        "BillingPeriodStart",
        "BillingPeriodEnd",
        "ChargePeriodStart",
        "ChargePeriodEnd",
        "ChargeCategory",
        "ChargeClass",
        "ChargeDescription",
        "ChargeFrequency",
        "ListCost",
        "ContractedCost",
        "EffectiveCost",
        "BilledCost",
        "ListUnitPrice",
        "PricingQuantity",
        "PricingUnit",
        "ConsumedQuantity",
        "InvoiceIssuerName",
        "ProviderName",
        "ServiceProviderName",
        "RegionId",
        "RegionName",
        "SubAccountId",
        "SkuId",
        "Tags",
        "x_CustomerTenantId",
        "x_OrganizationId",
        "x_PartnershipId",
        "x_BillingMonth",
        "x_UsageDate",
        "x_MeterId",
        "x_ListCostUsd",
        "x_FxUsdPerUnit",
        "x_FxRateMonth",
        "x_PriceEffectiveStart",
        "x_SourceRow",
        "x_OrderId",
        "x_ReservationId",
        "x_InstallmentIndex",
        "x_InstallmentCount",
        // FOCUS commitment-discount purchase (outputs.md "FOCUS conformance")
        "ServiceName",
        "ServiceCategory",
        "ServiceSubcategory",
        "ResourceId",
        "ResourceType",
        "CommitmentDiscountId",
        "CommitmentDiscountType",
        "CommitmentDiscountCategory",
        "CommitmentDiscountName",
        "CommitmentDiscountQuantity",
        "CommitmentDiscountUnit",
        "CommitmentDiscountStatus",
        "PricingCurrency",
        "PricingCurrencyListUnitPrice",
        "PricingCurrencyContractedUnitPrice",
        "PricingCurrencyEffectiveCost",
        "ContractedUnitPrice",
        "InvoiceId",
        "SkuPriceId",
        "BillingAccountType",
        "SubAccountName",
        "SubAccountType",
        "PricingCategory",
    ];
    let rows = rows_text(dir.path(), &purchases_path("contoso", "2026-12"), &cols);
    assert_eq!(
        rows,
        ["contoso | EUR | 2026-12-01T00:00:00Z | 2027-01-01T00:00:00Z | 2026-12-31T00:00:00Z | 2027-01-01T00:00:00Z | Purchase | null | Reserved VM Instance, Standard_D2_v3, EU West, 1 Year | Recurring | 161.3600000000 | 177.5300000000 | 0.0000000000 | 177.5300000000 | 645.6600000000 | 3.0000000000 | Instances | null | Northwind CSP Europe | Northwind CSP Europe | Microsoft | westeurope | EU West | fbfcd135-847c-436c-ac68-265a0737f7fd | DZH318Z0BQ4L/0123 | {} | 686adbc4-fd3f-4688-b527-617394bf68af | contoso | p-eu | 2026-12 | 2026-12-31 | null | 175.2000000000 | 1.0854000000 | 2026-01 | 2024-01-01 | 2 | ord-0001 | fa6c4d0d-795e-4b1c-8fa7-442e048ef574 | 11 | 12 | Virtual Machines | Compute | Virtual Machines | /providers/microsoft.capacity/reservationorders/ord-0001/reservations/fa6c4d0d-795e-4b1c-8fa7-442e048ef574 | microsoft.capacity/reservationorders/reservations | /providers/microsoft.capacity/reservationorders/ord-0001/reservations/fa6c4d0d-795e-4b1c-8fa7-442e048ef574 | Reservation | Usage | Reserved VM Instance, Standard_D2_v3, EU West, 1 Year | 3.0000000000 | Instances | null | USD | 700.8000000000 | 700.8000000000 | 0.0000000000 | 710.2300000000 | contoso-2026-12 | DZH318Z0BQ4L/0123:P1Y:2024-01-01 | Customer | fbfcd135-847c-436c-ac68-265a0737f7fd | Subscription | Standard"]
    );
    // Two orders in one partition, sorted by day: ord-0001 #1 on the 28th after ord-0004 on the 9th.
    let feb = rows_text(
        dir.path(),
        &purchases_path("contoso", "2026-02"),
        &[
            "x_UsageDate",
            "x_OrderId",
            "ChargeFrequency",
            "BilledCost",
            "ListCost",
            "x_ListCostUsd",
            "RegionName",
            "x_PriceEffectiveStart",
            "x_FxRateMonth",
        ],
    );
    assert_eq!(
        feb,
        [
            "2026-02-09 | ord-0004 | One-Time | 1258.5900000000 | 1144.1700000000 | 1234.5600000000 | null | null | 2026-02",
            "2026-02-28 | ord-0001 | Recurring | 177.5600000000 | 161.4200000000 | 175.2000000000 | EU West | 2024-01-01 | 2026-01",
        ]
    );
}

#[test]
fn each_rejection_is_quarantined_once_naming_its_order() {
    let dir = reserved_sample(AS_OF);
    let l = cspcost::store::Lake::open(&arg(dir.path())).unwrap();
    let q = cspcost::emit::quarantine::read_quarantine(&l, cspcost::reserve::run::QUARANTINE_FILE)
        .unwrap();
    let got: Vec<(String, String, i64)> = q
        .iter()
        .map(|r| {
            let order = r.detail.split(':').next().unwrap_or("").to_string();
            let file = Path::new(&r.source_file)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (format!("{} {order}", r.reason), file, r.source_row)
        })
        .collect();
    let want = [
        ("SCOPE_NOT_SHARED order ord-0005", "orders.csv", 6),
        ("BAD_TERM order ord-0006", "orders.csv", 7),
        ("BAD_QUANTITY order ord-0007", "orders.csv", 8),
        ("BAD_BILLING_FREQUENCY order ord-0008", "orders.csv", 9),
        ("NO_PRICE order ord-0009", "orders.csv", 10),
        ("NO_FX_RATE order ord-0010", "orders.csv", 11),
        ("UNMAPPED_TENANT order ord-0011", "orders.csv", 12),
        ("DUPLICATE_ORDER order ord-0002", "orders_more.json", 1),
    ];
    let want: Vec<(String, String, i64)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
        .collect();
    assert_eq!(got, want);
    let dup = &q[7].detail;
    assert!(dup.contains("quantity '2' vs '5'"), "{dup}");
    // 13 records read by ingest = 12 staged + 1 identical no-op; 12 = 4 priced + 8 quarantined.
    let ms = manifests(dir.path());
    let ingest = ms
        .iter()
        .find(|m| m.command == "ingest reservations")
        .unwrap();
    assert_eq!(
        (
            ingest.counts["read"],
            ingest.counts["new"],
            ingest.counts["unchanged"]
        ),
        (13, 12, 1)
    );
    let m = &ms[0];
    assert_eq!(
        (
            m.counts["read"],
            m.counts["priced"],
            m.counts["unchanged"],
            m.quarantined_total()
        ),
        (12, 4, 0, 8)
    );
    assert!(m.quarantined.values().all(|n| *n == 1));
    let out = ok(["quarantine", "--lake", &arg(dir.path())]);
    assert!(
        out.contains("reserve")
            && out.contains("DUPLICATE_ORDER")
            && out.contains("UNMAPPED_TENANT"),
        "{out}"
    );
}

#[test]
fn purchase_rows_of_each_order_sum_to_its_asset_total() {
    let dir = reserved_sample(AS_OF);
    let mut by_order: BTreeMap<String, (u64, i128, i128, i128)> = BTreeMap::new();
    for rel in cost_files(dir.path(), "purchases-").keys() {
        for row in rows_text(
            dir.path(),
            rel,
            &["x_OrderId", "BilledCost", "ListCost", "x_ListCostUsd"],
        ) {
            let cells: Vec<&str> = row.split(" | ").collect();
            let raw = |k: usize| cspcost::model::Dec10::parse(cells[k]).unwrap().0;
            let e = by_order.entry(cells[0].to_string()).or_default();
            *e = (e.0 + 1, e.1 + raw(1), e.2 + raw(2), e.3 + raw(3));
        }
    }
    let assets = assets(dir.path());
    assert_eq!(by_order.len(), assets.len());
    for a in &assets {
        let (rows, billed, list, usd) = by_order[a.get("order_id")];
        assert_eq!(rows as i64, a.installments_total, "{}", a.get("order_id"));
        assert_eq!(billed, a.total.0, "{}", a.get("order_id"));
        assert_eq!(
            list,
            a.purchase_unit_price.0 * a.quantity as i128,
            "{}",
            a.get("order_id")
        );
        assert_eq!(
            usd,
            a.original_unit_price_usd.0 * a.quantity as i128,
            "{}",
            a.get("order_id")
        );
    }
}

#[test]
fn reingest_and_rerun_change_nothing() {
    let dir = reserved_sample(AS_OF);
    let l = arg(dir.path());
    let snapshot = |rel: &str| std::fs::read(dir.path().join(rel)).unwrap();
    let staged = snapshot("staged/reservations/orders.parquet");
    let assets_bytes = snapshot("assets/reservations.parquet");
    let purchases = cost_files(dir.path(), "purchases-");

    // The same files again: skipped by digest.
    ingest_orders(&l);
    assert_eq!(manifests(dir.path())[0].counts["read"], 0);
    // The same orders in a file of other bytes (NDJSON instead of an array): unchanged.
    let items: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(sample("reservations/orders_more.json")).unwrap())
            .unwrap();
    let copy = lake();
    let ndjson = copy.path().join("orders-again.ndjson");
    let lines: Vec<String> = items.iter().map(|v| v.to_string()).collect();
    std::fs::write(&ndjson, lines.join("\n")).unwrap();
    ok(["ingest", "reservations", "--lake", &l, &arg(&ndjson)]);
    let m = &manifests(dir.path())[0];
    assert_eq!(
        (
            m.counts["read"],
            m.counts["new"],
            m.counts["unchanged"],
            m.quarantined_total()
        ),
        (2, 0, 2, 0)
    );
    assert_eq!(snapshot("staged/reservations/orders.parquet"), staged);

    // A second reserve: every purchases file and the assets table byte-identical.
    ok(["reserve", "--lake", &l, "--as-of", AS_OF]);
    assert_eq!(cost_files(dir.path(), "purchases-"), purchases);
    assert_eq!(snapshot("assets/reservations.parquet"), assets_bytes);
    let m = &manifests(dir.path())[0];
    assert_eq!(m.command, "reserve");
    assert_eq!(m.partitions.len(), 50);
    assert!(m.partitions.iter().all(|p| p.action == "unchanged"));
    assert_eq!(m.quarantined_total(), 8);
}

#[test]
fn rate_and_reserve_each_keep_to_their_own_files() {
    let dir = lake();
    let l = arg(dir.path());
    ingest_sample(dir.path());
    ingest_orders(&l);
    ok(["rate", "--lake", &l]);
    let usage = cost_files(dir.path(), "usage-");
    assert_eq!(usage.len(), 5);

    ok(["reserve", "--lake", &l, "--as-of", AS_OF]);
    assert_eq!(
        cost_files(dir.path(), "usage-"),
        usage,
        "reserve touched usage"
    );
    let purchases = cost_files(dir.path(), "purchases-");
    assert_eq!(purchases.len(), 49);

    ok([
        "rate", "--lake", &l, "--month", "2026-01", "--month", "2026-02",
    ]);
    assert_eq!(
        cost_files(dir.path(), "purchases-"),
        purchases,
        "rate touched purchases"
    );

    // Unregistering adatum's tenant: its order is now UNMAPPED_TENANT and its purchases file
    // is deleted, while its usage files stay until the next `rate`.
    ok([
        "tenants",
        "remove",
        "--lake",
        &l,
        "cb68bce3-1e3f-416d-a860-6a6043d14194",
    ]);
    ok(["reserve", "--lake", &l, "--as-of", AS_OF]);
    let after = cost_files(dir.path(), "purchases-");
    assert_eq!(after.len(), 48);
    assert!(!after.contains_key(&purchases_path("adatum", "2026-02")));
    assert_eq!(cost_files(dir.path(), "usage-"), usage);
    let m = &manifests(dir.path())[0];
    assert_eq!(m.quarantined["UNMAPPED_TENANT"], 2);
    assert!(m
        .partitions
        .iter()
        .any(|p| p.action == "deleted" && p.path == purchases_path("adatum", "2026-02")));
}

#[test]
fn assets_command_prints_the_table_and_filters() {
    let dir = reserved_sample("2027-02-05");
    let l = arg(dir.path());
    let out = ok(["assets", "--lake", &l]);
    let want = "\
reservation assets as of 2027-02-05: 4 (2 active, 2 expired)
order     reservation                           organization  status      quantity  purchased (UTC)   expires (UTC)     USD unit price   FX USD/unit (date)   unit price  markup  sell unit price        total  billed
ord-0001  fa6c4d0d-795e-4b1c-8fa7-442e048ef574  contoso       expired  3 Instances  2026-01-31 10:00  2027-01-31 10:00          700.80  1.0854 (2026-01-01)   645.66 EUR     10%       710.23 EUR  2130.69 EUR   12/12
          Reserved VM Instance, Standard_D2_v3, EU West, 1 Year
          Standard_D2_v3, General purpose, EU West, 2 Cores, 8 GB RAM, 1Year
ord-0002  55cd1a3f-9395-4d98-a3d2-d5dca1e60582  adatum        expired  2 Instances  2026-02-03 14:20  2027-02-03 14:20          700.80       1 (2026-02-01)   700.80 USD      0%       700.80 USD  1401.60 USD     1/1
          Reserved VM Instance, Standard_D2_v3, EU West, 1 Year
          Standard_D2_v3, General purpose, EU West, 2 Cores, 8 GB RAM, 1Year
ord-0003  1ad4e800-b940-48af-8615-f66e9f238215  fabrikam      active   1 Instances  2026-01-12 08:30  2029-01-12 08:30         1503.72  0.0064 (2026-01-01)   234956 JPY      8%       253752 JPY   253752 JPY   13/36
          Reserved VM Instance, Standard_D2_v3, EU West, 3 Years
          Standard_D2_v3, General purpose, EU West, 2 Cores, 8 GB RAM, 3Years
ord-0004  2f5bbaf4-228d-4b5b-81cf-48c5dfa5855d  contoso       active   1 Instances  2026-02-09 16:45  2027-02-09 16:45         1234.56   1.079 (2026-02-01)  1144.17 EUR     10%      1258.59 EUR  1258.59 EUR     1/1
          Reserved VM Instance, Standard_E4s_v5, EU West, 1 Year
          Standard_E4s_v5, Memory optimized, EU West, 4 Cores, 32 GB RAM, 1Year
";
    assert_eq!(out, want);

    let orders_listed = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["assets", "--lake", &l];
        all.extend(args);
        ok(all)
            .lines()
            .filter(|line| line.starts_with("ord-"))
            .map(|line| line[..8].to_string())
            .collect()
    };
    assert_eq!(
        orders_listed(&["--status", "expired"]),
        ["ord-0001", "ord-0002"]
    );
    assert_eq!(
        orders_listed(&["--org", "contoso", "--status", "active"]),
        ["ord-0004"]
    );
    assert_eq!(orders_listed(&["--org", "fabrikam"]), ["ord-0003"]);
}

#[test]
fn bad_arguments_exit_2_listing_every_problem() {
    let dir = reserved_sample(AS_OF);
    let l = arg(dir.path());
    let out = cspcost([
        "assets", "--lake", &l, "--org", "nobody", "--status", "pending",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 problems")
            && err.contains("--org 'nobody'")
            && err.contains("--status 'pending': expected active or expired"),
        "{err}"
    );
    let out = cspcost(["reserve", "--lake", &l, "--as-of", "2026-13-01"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("--as-of '2026-13-01': expected a date YYYY-MM-DD"));
    // A path that holds no lake is refused (issue 11, case 11): exit 2, nothing created.
    let empty = lake();
    let file = empty.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let out = cspcost([
        "reserve",
        "--lake",
        &arg(&file.join("lake")),
        "--as-of",
        AS_OF,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no cspcost lake at"));
    // A lake that cannot be created (under a plain file) is I/O: exit 1.
    let out = cspcost([
        "ingest",
        "reservations",
        "--lake",
        &arg(&file.join("lake")),
        &arg(&sample("reservations")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    // No reserve run yet: a sentence, not an error.
    ok([
        "ingest",
        "reference",
        "--lake",
        &arg(empty.path()),
        &arg(&sample("reference")),
    ]);
    let out = ok(["assets", "--lake", &arg(empty.path())]);
    assert!(out.starts_with("no reservation assets yet"), "{out}");
}
