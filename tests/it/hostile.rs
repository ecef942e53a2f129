//! Hostile input (issue 11, cases 2-6, 8-10, 12-14): each reproduction of the issue, built
//! from `sample_data/` or small literal files, with the exact counts it must give. Nothing
//! read is lost, nothing is rated on a price that cannot be trusted, and bad input exits 2
//! with a sentence naming the file and the record.

use crate::common::*;
use cspcost::emit::manifest::Manifest;
use std::path::{Path, PathBuf};

/// The newest manifest of `command`.
fn last(lake: &Path, command: &str) -> Manifest {
    manifests(lake)
        .into_iter()
        .find(|m| m.command == command)
        .unwrap_or_else(|| panic!("no {command} manifest"))
}

/// `(read, new, restated, unchanged, quarantined)` of a manifest.
fn counts(m: &Manifest) -> (u64, u64, u64, u64, u64) {
    let c = |k: &str| m.counts.get(k).copied().unwrap_or(0);
    (
        c("read"),
        c("new"),
        c("restated"),
        c("unchanged"),
        m.quarantined_total(),
    )
}

/// The ingest quarantine of a run, as `reason|row|detail` lines.
fn ingest_quarantine(lake: &Path, m: &Manifest) -> Vec<String> {
    render(
        lake,
        &format!("quarantine/stage=ingest/run={}/part-0.parquet", m.run_id),
        &["reason_code", "source_row", "detail"],
    )
}

/// Copy a directory tree (the sample dumps are small).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// One NDJSON utilization record of tenant `T`, subscription `S1`, meter `M`, on January `day`.
fn record(day: u32, quantity: &str) -> String {
    format!(
        r#"{{"customerTenantId":"{T}","subscriptionId":"{S1}","usageStartTime":"2026-01-{day:02}T00:00:00Z","usageEndTime":"2026-01-{:02}T00:00:00Z","resource":{{"id":"{M}"}},"quantity":{quantity},"unit":"1 GB","instanceData":{{"resourceUri":"/r/{quantity}"}}}}"#,
        day + 1
    )
}

fn ingest_usage(lake: &Path, input: &Path) -> std::process::Output {
    cspcost(["ingest", "usage", "--lake", &arg(lake), &arg(input)])
}

/// Case 2: an NDJSON file whose first line is bad stays NDJSON. Before: one `MALFORMED` row
/// for the whole file ("neither a utilization page nor NDJSON") and 10,000 records lost.
#[test]
fn ndjson_with_a_bad_first_line_loses_only_that_line() {
    let dir = lake();
    let src = lake();
    let mut text = String::from("{\"usageStartTime\": \"2026-01-01T00:00:00Z\", oops\n");
    for i in 1..10_000 {
        text.push_str(&record(1 + i % 28, &format!("{i}.5")));
        text.push('\n');
    }
    let f = write(src.path(), "u.ndjson", &text);
    assert!(ingest_usage(dir.path(), &f).status.success());
    let m = last(dir.path(), "ingest usage");
    assert_eq!(counts(&m), (10_000, 9_999, 0, 0, 1));
    let q = ingest_quarantine(dir.path(), &m);
    assert_eq!(q.len(), 1);
    assert!(
        q[0].starts_with("MALFORMED|1|record 1 of ") && q[0].contains("u.ndjson"),
        "{q:?}"
    );
    // The file is in the ledger only now that all its records are accounted for: the same
    // content again is skipped, not read twice.
    assert!(ingest_usage(dir.path(), &f).status.success());
    assert_eq!(counts(&last(dir.path(), "ingest usage")), (0, 0, 0, 0, 0));
}

/// Case 2: a UTF-8 byte order mark before NDJSON or a page is ignored. Before: one
/// `MALFORMED` row for the file.
#[test]
fn a_byte_order_mark_is_ignored() {
    let dir = lake();
    let src = lake();
    let nd = format!(
        "\u{feff}{}\n{}\n{}\n",
        record(1, "1"),
        record(2, "2"),
        record(3, "3")
    );
    write(src.path(), "a/u.ndjson", &nd);
    let page = format!(
        "\u{feff}{{\"totalCount\": 2, \"items\": [{}, {}]}}",
        record(4, "4"),
        record(5, "5")
    );
    write(src.path(), "a/page.json", &page);
    assert!(ingest_usage(dir.path(), &src.path().join("a"))
        .status
        .success());
    assert_eq!(counts(&last(dir.path(), "ingest usage")), (5, 5, 0, 0, 0));
}

/// A page that is broken JSON is still one `MALFORMED` record (its lines are not records),
/// not one per line.
#[test]
fn a_broken_pretty_printed_page_is_one_malformed_record() {
    let dir = lake();
    let src = lake();
    let page = format!(
        "{{\n  \"totalCount\": 2,\n  \"items\": [\n    {},\n    {}\n",
        record(4, "4"),
        record(5, "5")
    );
    let f = write(src.path(), "page.json", &page);
    assert!(ingest_usage(dir.path(), &f).status.success());
    let m = last(dir.path(), "ingest usage");
    assert_eq!(counts(&m), (1, 0, 0, 0, 1));
    let q = ingest_quarantine(dir.path(), &m);
    assert!(
        q[0].starts_with("MALFORMED|0|") && q[0].contains("neither a utilization page nor NDJSON"),
        "{q:?}"
    );
}

/// Case 3: invalid UTF-8 inside one record of the sample dump quarantines that record only.
/// Before: exit 1 naming no line, and none of the dump's 241 records staged.
#[test]
fn invalid_utf8_in_one_record_quarantines_that_record() {
    let src = lake();
    let dump = src.path().join("dump");
    copy_tree(&sample("usage/dump-2026-01-20"), &dump);
    // One page item: a meter name with a byte that is never UTF-8.
    let page = dump.join("customers/686adbc4-fd3f-4688-b527-617394bf68af/subscriptions/6ad487b8-95fe-47a5-92c2-b86c364426b3/utilizations/azure/page-001.json");
    let bytes = std::fs::read(&page).unwrap();
    let needle = b"Hot LRS Data Stored";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    let mut bad = bytes[..at].to_vec();
    bad.extend_from_slice(b"Hot LRS \xff\xfe");
    bad.extend_from_slice(&bytes[at + 8..]);
    std::fs::write(&page, bad).unwrap();
    // One NDJSON line: its second record.
    let nd = dump.join("extra/records.ndjson");
    let text = std::fs::read(&nd).unwrap();
    let second = text.iter().position(|b| *b == b'\n').unwrap() + 1;
    let mut bad = text[..second + 20].to_vec();
    bad.push(0xC3); // a lead byte without its continuation
    bad.extend_from_slice(&text[second + 20..]);
    std::fs::write(&nd, bad).unwrap();

    let dir = lake();
    let out = ingest_usage(dir.path(), &dump);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = last(dir.path(), "ingest usage");
    // The untouched dump: 241 read, 233 new, 8 quarantined (2 MALFORMED, 2 DUPLICATE_RECORD). Now item 1 of the page is lost to MALFORMED, and line 2, so its copy on line 3 is new instead of a duplicate.
    assert_eq!(counts(&m), (241, 232, 0, 0, 9));
    assert_eq!(m.quarantined.get("MALFORMED").copied(), Some(4));
    let q = ingest_quarantine(dir.path(), &m);
    assert!(
        q.iter().any(|r| r.starts_with("MALFORMED|1|item 1 of ")
            && r.contains("page-001.json holds bytes that are not UTF-8 (0xff 0xfe at byte ")),
        "{q:?}"
    );
    assert!(
        q.iter().any(|r| r.starts_with("MALFORMED|2|line 2 of ")
            && r.contains(
                "records.ndjson holds bytes that are not UTF-8 (0xc3 at byte 20 of the line)"
            )),
        "{q:?}"
    );
    // The raw text is kept, lossy.
    let raw = render(
        dir.path(),
        &format!("quarantine/stage=ingest/run={}/part-0.parquet", m.run_id),
        &["raw"],
    );
    assert!(
        raw.iter().any(|r| r.contains("Hot LRS \u{fffd}")),
        "{raw:?}"
    );
}

/// Case 3 for CSV dumps: a cell with invalid UTF-8 quarantines its row.
#[test]
fn invalid_utf8_in_a_csv_row_quarantines_that_row() {
    let dir = lake();
    let src = lake();
    let mut csv = format!(
        "customerTenantId,subscriptionId,usageStartTime,usageEndTime,resource.id,quantity,unit,resourceUri\n{T},{S1},2026-01-01T00:00:00Z,2026-01-02T00:00:00Z,{M},1,1 GB,/r/a\n"
    )
    .into_bytes();
    csv.extend_from_slice(
        format!("{T},{S1},2026-01-02T00:00:00Z,2026-01-03T00:00:00Z,{M},2,1 GB,/r/").as_bytes(),
    );
    csv.extend_from_slice(b"\xff\n");
    let f = src.path().join("u.csv");
    std::fs::write(&f, csv).unwrap();
    assert!(ingest_usage(dir.path(), &f).status.success());
    let m = last(dir.path(), "ingest usage");
    assert_eq!(counts(&m), (2, 1, 0, 0, 1));
    let q = ingest_quarantine(dir.path(), &m);
    assert!(
        q[0].starts_with("MALFORMED|3|line 3 of ")
            && q[0].contains("column resourceuri holds bytes that are not UTF-8"),
        "{q:?}"
    );
}

/// Case 9: a zero-byte or whitespace-only page file is one `MALFORMED` record each. Before:
/// "0 read", exit 0, no quarantine row.
#[test]
fn empty_and_blank_page_files_are_malformed() {
    let dir = lake();
    let src = lake();
    let route = format!("customers/{T}/subscriptions/{S1}/utilizations/azure");
    write(src.path(), &format!("d/{route}/page-001.json"), "");
    write(src.path(), &format!("d/{route}/page-002.json"), " \n\t\n");
    assert!(ingest_usage(dir.path(), &src.path().join("d"))
        .status
        .success());
    let m = last(dir.path(), "ingest usage");
    assert_eq!(counts(&m), (2, 0, 0, 0, 2));
    let q = ingest_quarantine(dir.path(), &m);
    assert!(q[0].starts_with("MALFORMED|0|") && q[0].contains("page-001.json is empty (0 bytes)"));
    assert!(
        q[1].starts_with("MALFORMED|0|")
            && q[1].contains("page-002.json holds only whitespace (4 bytes)"),
        "{q:?}"
    );
}

/// Case 10: a `.gz` that is not gzip, or is truncated, exits 2 naming the file, and nothing
/// is written (no ledger entry). Before: exit 1 (I/O).
#[test]
fn bad_gzip_exits_2_naming_the_file() {
    use std::io::Write;
    let src = lake();
    let not_gz = write(src.path(), "a/u.ndjson.gz", &record(1, "1"));
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for day in 1..=28 {
        enc.write_all(record(day, &format!("{day}")).as_bytes())
            .unwrap();
        enc.write_all(b"\n").unwrap();
    }
    let gz = enc.finish().unwrap();
    let truncated = src.path().join("b/u.ndjson.gz");
    std::fs::create_dir_all(truncated.parent().unwrap()).unwrap();
    std::fs::write(&truncated, &gz[..gz.len() / 2]).unwrap();
    let prices_gz = write(src.path(), "c/sheet.csv.gz", "meterId,unitPrice\n");
    // A CSV whose header decompresses but whose rows are cut off.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(b"customerTenantId,subscriptionId,usageStartTime,usageEndTime,resource.id,quantity,unit,resourceUri\n").unwrap();
    for i in 0..20_000 {
        enc.write_all(
            format!("{T},{S1},2026-01-01T00:00:00Z,2026-01-02T00:00:00Z,{M},{i},1 GB,/r/{i}\n")
                .as_bytes(),
        )
        .unwrap();
    }
    let gz = enc.finish().unwrap();
    let csv_gz = src.path().join("d/u.csv.gz");
    std::fs::create_dir_all(csv_gz.parent().unwrap()).unwrap();
    std::fs::write(&csv_gz, &gz[..gz.len() / 2]).unwrap();
    for (kind, f) in [
        ("usage", &not_gz),
        ("usage", &truncated),
        ("prices", &prices_gz),
        ("usage", &csv_gz),
    ] {
        let dir = lake();
        let out = cspcost(["ingest", kind, "--lake", &arg(dir.path()), &arg(f)]);
        assert_eq!(out.status.code(), Some(2), "{kind} {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{}: not a complete gzip stream", f.display()))
                && err.contains("the file is truncated or not gzip"),
            "{err}"
        );
        assert!(!dir
            .path()
            .join("staged/_ledger")
            .join(format!("{kind}.json"))
            .exists());
    }
}

/// Case 8: two symbolic links that loop (`loop -> ..`, `loop2 -> ../d`) under an ingested
/// directory exit 2 naming both links. Before: memory grew until the kernel killed it.
#[test]
fn symlink_loops_exit_2_naming_the_link() {
    let src = lake();
    let d = src.path().join("d");
    write(&d, "u.ndjson", &format!("{}\n", record(1, "1")));
    std::os::unix::fs::symlink("..", d.join("loop")).unwrap();
    std::os::unix::fs::symlink("../d", d.join("loop2")).unwrap();
    let dir = lake();
    let out = ingest_usage(dir.path(), &d);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let d_text = d.display().to_string();
    assert!(err.contains("2 problems:"), "{err}");
    assert!(
        err.contains(&format!(
            "{d_text}/loop/d: symbolic link loop: it leads back to {d_text}, which contains it"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{d_text}/loop2: symbolic link loop: it leads back to {d_text}, which contains it"
        )),
        "{err}"
    );
    // A second link to a directory already read (not a loop) reads its files once.
    let ok_src = lake();
    let a = ok_src.path().join("a");
    write(&a, "x/u.ndjson", &format!("{}\n", record(1, "1")));
    std::os::unix::fs::symlink("x", a.join("y")).unwrap();
    let out = ingest_usage(dir.path(), &a);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is the directory"),
        "{}",
        stderr(&out)
    );
    assert_eq!(counts(&last(dir.path(), "ingest usage")), (1, 1, 0, 0, 0));
}

/// The rating quarantine of January as `reason|detail` lines.
fn rate_quarantine(lake: &Path) -> Vec<String> {
    render(
        lake,
        "quarantine/stage=rate/month=2026-01/part-0.parquet",
        &["reason_code", "detail"],
    )
}

fn sheet_path(lake_src: &Path) -> PathBuf {
    lake_src.join("prices/sheet.csv")
}

/// Case 4: a price row that fails validation (`tierMinimumUnits` "five") poisons its price
/// version: every record it would rate is `PRICE_CONFLICT` naming the row. Before: the
/// ladder rated without that tier (bandwidth billed 0 on three days). A corrected file of
/// the same path lifts the poison.
#[test]
fn a_rejected_price_row_makes_its_version_rate_nothing() {
    let mut prices = L1.to_vec();
    prices.push((M, "1 GB", "five", "0.05", "2026-01-01"));
    let dir = synth_lake(&prices, &FOUR_DAYS);
    let l = arg(dir.path());
    let m = last(dir.path(), "ingest prices");
    assert_eq!(counts(&m), (4, 3, 0, 0, 1));
    assert_eq!(m.quarantined.get("BAD_NUMBER").copied(), Some(1));
    ok(["rate", "--lake", &l]);
    let q = rate_quarantine(dir.path());
    assert_eq!(q.len(), 4, "{q:?}");
    assert!(q.iter().all(|r| r.starts_with(&format!(
        "PRICE_CONFLICT|price version of meter {M} effective 2026-01-01: row 5 of "
    )) && r.contains("sheet.csv was rejected at price ingest (BAD_NUMBER: tierMinimumUnits \"five\" is not a decimal number), so this version is incomplete")),
        "{q:?}");
    assert!(!dir
        .path()
        .join("costs/org=eu/month=2026-01/usage-0.parquet")
        .exists());

    // The same sheet, corrected, at the same path: the poison is lifted and the four days
    // rate as rating.md §7 says.
    let src = lake();
    let sheet = sheet_path(src.path());
    let mut text = String::from("meterId,meterName,unitOfMeasure,tierMinimumUnits,unitPrice,effectiveStartDate,currencyCode,type,isPrimaryMeterRegion\n");
    for (meter, unit, min, price, eff) in L1 {
        text.push_str(&format!(
            "{meter},Meter,{unit},{min},{price},{eff}T00:00:00Z,USD,Consumption,true\n"
        ));
    }
    write(src.path(), "prices/sheet.csv", &text);
    // The poison belongs to the file path the rejected row came from.
    let rejected_from = render(
        dir.path(),
        "staged/prices/rejected.parquet",
        &["source_file"],
    );
    assert_eq!(rejected_from.len(), 1);
    let target = PathBuf::from(&rejected_from[0]);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(&sheet, &target).unwrap();
    ok(["ingest", "prices", "--lake", &l, &rejected_from[0]]);
    assert_eq!(counts(&last(dir.path(), "ingest prices")), (3, 0, 0, 3, 0));
    assert!(render(dir.path(), "staged/prices/rejected.parquet", &["meter_id"]).is_empty());
    let out = ok(["rate", "--lake", &l]);
    assert!(out.contains("2026-01: inputs changed"), "{out}");
    assert!(!dir
        .path()
        .join("quarantine/stage=rate/month=2026-01/part-0.parquet")
        .exists());
    let billed = render(
        dir.path(),
        "costs/org=eu/month=2026-01/usage-0.parquet",
        &["x_ListCostUsd"],
    );
    assert_eq!(
        billed,
        [
            "0.0000000000",
            "0.1740000000",
            "8.2985000000",
            "0.1037500000"
        ]
    );
    // The sheet's first directory was synth_lake's temporary one, recreated above.
    std::fs::remove_dir_all(target.parent().unwrap().parent().unwrap()).unwrap();
}

/// Case 6: a negative price is `BAD_NUMBER` at price ingest and its version rates nothing.
/// Before: accepted, and the usage billed negative costs.
#[test]
fn negative_prices_are_bad_number_and_poison_their_version() {
    let dir = synth_lake(&[(M, "1 GB", "0", "-0.12", "2026-01-01")], &FOUR_DAYS);
    let m = last(dir.path(), "ingest prices");
    assert_eq!(counts(&m), (1, 0, 0, 0, 1));
    let q = ingest_quarantine(dir.path(), &m);
    assert!(
        q[0].starts_with("BAD_NUMBER|2|unitPrice -0.12 of row 2 of ")
            && q[0].contains("sheet.csv is negative"),
        "{q:?}"
    );
    ok(["rate", "--lake", &arg(dir.path())]);
    let q = rate_quarantine(dir.path());
    assert_eq!(q.len(), 4);
    assert!(q
        .iter()
        .all(|r| r.starts_with("PRICE_CONFLICT|") && r.contains("unitPrice -0.12")));
}

/// Case 5: two rows of one meter, SKU, effective date and tier with different prices, both
/// primary, in one file: both are staged, and the version is ambiguous (`PRICE_CONFLICT`
/// naming both rows). Before: the second was `DUPLICATE_RECORD` ("the first is kept") and
/// usage billed at the first price.
#[test]
fn two_primary_rows_of_one_tier_with_different_prices_conflict() {
    let mut prices = L1.to_vec();
    prices.push((M, "1 GB", "5", "0.09", "2026-01-01"));
    let dir = synth_lake(&prices, &FOUR_DAYS);
    let m = last(dir.path(), "ingest prices");
    assert_eq!(counts(&m), (4, 4, 0, 0, 0));
    assert_eq!(
        render(
            dir.path(),
            "staged/prices/prices.parquet",
            &["tier_minimum_units", "unit_price"]
        ),
        [
            "0.0000000000|0.0000000000",
            "5.0000000000|0.0870000000",
            "5.0000000000|0.0900000000",
            "100.0000000000|0.0830000000"
        ]
    );
    ok(["rate", "--lake", &arg(dir.path())]);
    let q = rate_quarantine(dir.path());
    assert_eq!(q.len(), 4);
    assert!(
        q.iter().all(|r| r.starts_with(&format!("PRICE_CONFLICT|price version of meter {M} effective 2026-01-01: tier 5 has 2 different prices (0.087 at row 3 of "))
            && r.contains(", 0.09 at row 5 of ")
            && r.contains("and 2 disagreeing primary-region rows settle it")),
        "{q:?}"
    );
    // The same price twice is still one tier and a duplicate.
    let mut prices = L1.to_vec();
    prices.push((M, "1 GB", "5", "0.087", "2026-01-01"));
    let dir = synth_lake(&prices, &FOUR_DAYS);
    let m = last(dir.path(), "ingest prices");
    assert_eq!(counts(&m), (4, 3, 0, 0, 1));
    assert_eq!(m.quarantined.get("DUPLICATE_RECORD").copied(), Some(1));
}

/// The organizations, partnerships and tenants files of a one-tenant registry.
fn reference_files(dir: &Path, org_id: &str, currency: &str) -> PathBuf {
    write(
        dir,
        "ref/partnerships.csv",
        "partnership_id,partnership_name\np1,Partner One\n",
    );
    write(dir, "ref/organizations.csv", &format!("organization_id,organization_name,billing_currency,consumption_adjustment_percent,reservation_markup_percent\n{org_id},Org,{currency},,\n"));
    write(
        dir,
        "ref/tenants.csv",
        &format!("customer_tenant_id,organization_id,partnership_id\n{T},{org_id},p1\n"),
    );
    dir.join("ref")
}

/// Case 12: an organization ID of 300 characters is refused at `ingest reference` and at
/// `tenants add` (exit 2 naming file and line). Before: accepted, then `rate` failed with
/// "File name too long" for every organization of the month.
#[test]
fn ids_are_limited_to_128_safe_characters() {
    let long = "o".repeat(300);
    let src = lake();
    let refs = reference_files(src.path(), &long, "EUR");
    let dir = lake();
    let out = cspcost([
        "ingest",
        "reference",
        "--lake",
        &arg(dir.path()),
        &arg(&refs),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let shown = format!("'{}...'", "o".repeat(40));
    assert!(err.contains(&format!("organizations.csv line 2: organization_id {shown} is 300 characters long; IDs are at most 128 characters")), "{err}");
    assert!(
        err.contains(&format!(
            "tenants.csv line 2: organization_id {shown} is 300 characters long"
        )),
        "{err}"
    );
    assert!(!dir.path().join("staged/reference").exists());
    let out = cspcost([
        "ingest",
        "reference",
        "--lake",
        &arg(dir.path()),
        &arg(&reference_files(lake().path(), "a/b", "EUR")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(
        "organization_id 'a/b' holds '/'; IDs are letters, digits, '-', '_' and '.' only"
    ));

    let ok_src = lake();
    ok([
        "ingest",
        "reference",
        "--lake",
        &arg(dir.path()),
        &arg(&reference_files(ok_src.path(), "org-1", "EUR")),
    ]);
    let out = cspcost([
        "tenants",
        "add",
        "--lake",
        &arg(dir.path()),
        "--tenant",
        "aaaaaaaa-0000-0000-0000-000000000009",
        "--org",
        &long,
        "--partnership",
        "p1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("--org {shown} is 300 characters long")),
        "{}",
        stderr(&out)
    );
}

/// Case 13: a bad billing currency (`EURO`) is reported as the first cause, naming
/// organizations.csv line 2. Before: only "tenant ... is registered to unknown organization
/// 'contoso'".
#[test]
fn a_bad_currency_is_reported_as_the_first_cause() {
    let src = lake();
    let refs = reference_files(src.path(), "contoso", "EURO");
    let dir = lake();
    let out = cspcost([
        "ingest",
        "reference",
        "--lake",
        &arg(dir.path()),
        &arg(&refs),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let first = err
        .lines()
        .find(|l| l.trim_start().starts_with("- "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        first.contains("organizations.csv line 2: billing_currency 'EURO' is not an ISO 4217 code (MALFORMED; the row was rejected)"),
        "{err}"
    );
    assert!(err.contains("unknown organization 'contoso'"), "{err}");
}

/// Case 14: a leap second is `BAD_TIMESTAMP`. Before: `ChargePeriodStart` was 00:00 of the
/// next day while `x_UsageDate` stayed on the earlier day.
#[test]
fn leap_seconds_are_bad_timestamp() {
    let dir = lake();
    let src = lake();
    let leap = record(1, "1").replace("2026-01-01T00:00:00Z", "2026-01-01T23:59:60Z");
    let f = write(
        src.path(),
        "u.ndjson",
        &format!("{leap}\n{}\n", record(2, "2")),
    );
    assert!(ingest_usage(dir.path(), &f).status.success());
    let m = last(dir.path(), "ingest usage");
    assert_eq!(counts(&m), (2, 1, 0, 0, 1));
    let q = ingest_quarantine(dir.path(), &m);
    assert!(
        q[0].starts_with("BAD_TIMESTAMP|1|usageStartTime '2026-01-01T23:59:60Z' of record 1 of ")
            && q[0].contains("u.ndjson is a leap second (:60)"),
        "{q:?}"
    );
}

/// Case 4 on the sample data: the bandwidth ladder L1 (page 2 of the Retail Prices sample)
/// with its tier `5` written `"five"`. Before: L1 rated without that tier, and bandwidth
/// billed 0 on the days below 100 GB. Now every bandwidth record dated Jan 1..14 of a mapped,
/// transferred subscription is `PRICE_CONFLICT` naming row 2 of page 2; the other 59
/// January quarantines are those of `sample_data/README.md` §E.2.
#[test]
fn sample_bandwidth_ladder_with_a_bad_tier_rates_nothing() {
    let src = lake();
    let prices = src.path().join("prices");
    copy_tree(&sample("prices"), &prices);
    let page = prices.join("retail-prices-page-2.json");
    let text = std::fs::read_to_string(&page).unwrap();
    std::fs::write(
        &page,
        text.replacen(
            "\"tierMinimumUnits\": 5.0,",
            "\"tierMinimumUnits\": \"five\",",
            1,
        ),
    )
    .unwrap();
    let dir = lake();
    let l = arg(dir.path());
    ok([
        "ingest",
        "reference",
        "--lake",
        &l,
        &arg(&sample("reference")),
    ]);
    ok(["ingest", "prices", "--lake", &l, &arg(&prices)]);
    for dump in ["usage/dump-2026-01-20", "usage/dump-2026-02-16"] {
        ok(["ingest", "usage", "--lake", &l, &arg(&sample(dump))]);
    }
    let m = last(dir.path(), "ingest prices");
    assert_eq!(m.quarantined.get("BAD_NUMBER").copied(), Some(1));
    ok(["rate", "--lake", &l]);
    let q = rate_quarantine(dir.path());
    let conflicts: Vec<&String> = q
        .iter()
        .filter(|r| r.contains("retail-prices-page-2.json was rejected at price ingest"))
        .collect();
    // 14 days of S-CA1, 14 of S-CB1 and 5 of S-AD1 (its Jan 7..9 stay BEFORE_TRANSFER).
    assert_eq!((q.len(), conflicts.len()), (59 + 33, 33), "{q:?}");
    assert!(conflicts.iter().all(|r| r.starts_with(
        "PRICE_CONFLICT|price version of meter 8a09ff56-1b50-410f-a959-30227b19001e effective 2025-01-01: row 2 of "
    )));
}
