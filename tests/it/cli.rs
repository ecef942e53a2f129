//! The command line as users script against it: exit codes (0 ok, 2 bad arguments or
//! configuration, 1 I/O), error text naming the file and what was expected, the registry.

use crate::common::*;

#[test]
fn quarantined_records_still_exit_zero() {
    let dir = lake();
    let out = cspcost([
        "ingest",
        "usage",
        "--lake",
        &arg(dir.path()),
        &arg(&sample("usage/dump-2026-01-20")),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("8 quarantined"));
}

#[test]
fn missing_paths_are_all_listed_with_exit_2() {
    let dir = lake();
    let out = cspcost([
        "ingest",
        "usage",
        "--lake",
        &arg(dir.path()),
        "/nonexistent/a.json",
        "/nonexistent/b.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("2 problems:")
            && e.contains("/nonexistent/a.json: no such file or directory")
            && e.contains("/nonexistent/b.json"),
        "{e}"
    );
}

#[test]
fn bad_rate_options_are_all_listed_with_exit_2() {
    let dir = lake();
    let out = cspcost([
        "rate",
        "--lake",
        &arg(dir.path()),
        "--tier-scope",
        "planet",
        "--tier-period",
        "weekly",
        "--month",
        "2026-1",
        "--shard",
        "3/3",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    for needle in [
        "--tier-scope 'planet'",
        "--tier-period 'weekly'",
        "--shard '3/3'",
    ] {
        assert!(e.contains(needle), "{needle} not in {e}");
    }
    // Unknown flags are clap's usage errors: exit 2 as well.
    assert_eq!(
        cspcost(["rate", "--lake", "x", "--bogus"]).status.code(),
        Some(2)
    );
}

#[test]
fn an_unrecognised_price_file_names_the_file_and_what_was_expected() {
    let dir = lake();
    let src = lake();
    let f = write(src.path(), "weird.json", r#"{"hello": 1}"#);
    let out = cspcost(["ingest", "prices", "--lake", &arg(dir.path()), &arg(&f)]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("weird.json") && e.contains("Retail Prices page") && e.contains("rate card"),
        "{e}"
    );
}

#[test]
fn unknown_reference_files_and_bad_registry_are_exit_2() {
    let dir = lake();
    let src = lake();
    let l = arg(dir.path());
    let f = write(src.path(), "customers.csv", "a,b\n");
    let out = cspcost(["ingest", "reference", "--lake", &l, &arg(&f)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("customers.csv: not a reference file"),
        "{}",
        stderr(&out)
    );
    // A tenant registered to an organization and a partnership nobody defined: both reported.
    write(
        src.path(),
        "ref/partnerships.csv",
        "partnership_id,partnership_name\np1,One\n",
    );
    write(src.path(), "ref/organizations.csv", "organization_id,organization_name,billing_currency,consumption_adjustment_percent,reservation_markup_percent\no1,Org,EUR,,\n");
    write(src.path(), "ref/tenants.csv", "customer_tenant_id,organization_id,partnership_id\n686adbc4-fd3f-4688-b527-617394bf68af,ghost,nowhere\n");
    let out = cspcost([
        "ingest",
        "reference",
        "--lake",
        &l,
        &arg(&src.path().join("ref")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("unknown organization 'ghost'") && e.contains("unknown partnership 'nowhere'"),
        "{e}"
    );
    // Nothing was written.
    assert!(!dir.path().join("staged/reference/tenants.parquet").exists());
    // A tenant mapped to two organizations in one file.
    write(src.path(), "ref/tenants.csv", "customer_tenant_id,organization_id,partnership_id\n686adbc4-fd3f-4688-b527-617394bf68af,o1,p1\n686ADBC4-fd3f-4688-b527-617394bf68af,o2,p1\n");
    let out = cspcost([
        "ingest",
        "reference",
        "--lake",
        &l,
        &arg(&src.path().join("ref")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("mapped to two organizations"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tenants_add_list_show_remove() {
    let dir = lake();
    let l = arg(dir.path());
    ok([
        "ingest",
        "reference",
        "--lake",
        &l,
        &arg(&sample("reference")),
    ]);
    let t = "11111111-2222-3333-4444-555555555555";
    let out = ok([
        "tenants",
        "add",
        "--lake",
        &l,
        "--tenant",
        &t.to_uppercase(),
        "--org",
        "contoso",
        "--partnership",
        "p-eu",
    ]);
    assert!(
        out.contains(&format!("registered tenant {t} to organization contoso")),
        "{out}"
    );
    assert!(ok(["tenants", "list", "--lake", &l])
        .lines()
        .any(|line| line.starts_with(t) && line.contains(" contoso ") && line.contains("p-eu")));
    let show = ok(["tenants", "show", "--lake", &l, t]);
    assert!(
        show.contains("billed in EUR")
            && show.contains(
                "other tenants of the organization: 686adbc4-fd3f-4688-b527-617394bf68af"
            ),
        "{show}"
    );
    // One organization per tenant: moving it needs a remove first; everything wrong is listed.
    let out = cspcost([
        "tenants",
        "add",
        "--lake",
        &l,
        "--tenant",
        t,
        "--org",
        "fabrikam",
        "--partnership",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("--partnership 'nope'")
            && e.contains("already registered to organization 'contoso'"),
        "{e}"
    );
    assert_eq!(
        cspcost([
            "tenants",
            "add",
            "--lake",
            &l,
            "--tenant",
            "nope",
            "--org",
            "contoso",
            "--partnership",
            "p-eu"
        ])
        .status
        .code(),
        Some(2)
    );
    ok(["tenants", "remove", "--lake", &l, t]);
    assert!(!ok(["tenants", "list", "--lake", &l]).contains(t));
    assert_eq!(
        cspcost(["tenants", "show", "--lake", &l, t]).status.code(),
        Some(2)
    );
}

#[test]
fn io_errors_exit_1_and_name_the_path() {
    let dir = lake();
    let blocker = write(dir.path(), "file", "x");
    let out = cspcost([
        "ingest",
        "reference",
        "--lake",
        &format!("{}/sub", arg(&blocker)),
        &arg(&sample("reference")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&arg(&blocker)), "{}", stderr(&out));
}

#[test]
fn quarantine_command_counts_by_stage_and_reason() {
    let dir = rated_sample();
    let out = ok(["quarantine", "--lake", &arg(dir.path())]);
    assert!(
        out.contains("rate     month=2026-02") && out.contains("NO_FX_RATE") && out.contains("30"),
        "{out}"
    );
    let total = out.lines().last().unwrap();
    // 8 ingest + 108 rate quarantined records.
    assert!(total.trim_end().ends_with("116"), "{total}");
}
