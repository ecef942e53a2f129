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

#[test]
fn json_log_format_writes_one_object_per_line_with_ts_level_msg() {
    let dir = lake();
    let l = arg(dir.path());
    let out = cspcost([
        "--log-format",
        "json",
        "ingest",
        "usage",
        "--lake",
        &l,
        &arg(&sample("usage/dump-2026-01-20")),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(lines.len() >= 2);
    for v in &lines {
        assert!(v["ts"].as_str().unwrap().ends_with('Z'), "{v}");
        assert_eq!(v["level"], "info");
        assert!(v["msg"].is_string());
    }
    let done = lines.last().unwrap();
    assert_eq!(done["event"], "finished");
    assert_eq!(done["command"], "ingest usage");
    assert_eq!(done["counts"]["read"], 241);
    assert_eq!(done["quarantined"]["DUPLICATE_RECORD"], 2);
    assert!(done["duration_ms"].is_u64());

    // Errors too, with the exit code; the flag goes anywhere on the line.
    let out = cspcost([
        "rate",
        "--lake",
        &l,
        "--month",
        "2026-13",
        "--log-format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_str(stderr(&out).trim()).unwrap();
    assert_eq!(v["level"], "error");
    assert_eq!(v["exit_code"], 2);
    assert!(v["msg"].as_str().unwrap().contains("2026-13"));

    // Text stays `cspcost: ...`; an unknown format is refused.
    let out = cspcost(["rate", "--lake", &l, "--month", "2026-13"]);
    assert!(stderr(&out).starts_with("cspcost: error: --month '2026-13'"));
    let out = cspcost(["--log-format", "xml", "runs", "--lake", &l]);
    assert_eq!(out.status.code(), Some(2));
    // --quiet leaves only the error line.
    let out = cspcost(["--quiet", "--log-format", "json", "rate", "--lake", &l]);
    assert!(out.status.success());
    assert_eq!(stderr(&out), "");
}

#[test]
fn runs_lists_time_duration_command_and_counts_newest_first() {
    let dir = rated_sample();
    let out = ok(["runs", "--lake", &arg(dir.path())]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("started (UTC)"), "{out}");
    assert!(lines[0].contains("duration") && lines[0].contains("counts"));
    let commands: Vec<&str> = lines[1..]
        .iter()
        .map(|l| {
            ["rate", "ingest usage", "ingest prices", "ingest reference"]
                .into_iter()
                .find(|c| l.contains(&format!("  {c}  ")))
                .unwrap_or_else(|| panic!("no command in {l}"))
        })
        .collect();
    assert_eq!(
        commands,
        [
            "rate",
            "ingest usage",
            "ingest usage",
            "ingest prices",
            "ingest reference"
        ]
    );
    let rate = lines[1];
    assert!(
        rate.contains("staged 589, rated 481") && rate.contains("quarantined 108"),
        "{rate}"
    );
    assert!(rate.contains("partitions 5 written, 0 deleted"), "{rate}");
    assert!(rate.contains(" ms ") || rate.contains(" s "), "{rate}");
    // The start time leads each line: YYYY-MM-DD HH:MM:SS.
    let t = &rate[..19];
    assert!(
        chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").is_ok(),
        "{t}"
    );
}

#[test]
fn enum_flags_list_their_values_in_help_on_the_flags_line() {
    for (args, values) in [
        (
            ["rate", "--help"],
            "[possible values: subscription, customer, organization]",
        ),
        (["reconcile", "--help"], "[possible values: period, daily]"),
        (["assets", "--help"], "[possible values: active, expired]"),
        (
            ["runs", "--help"],
            "[default: text] [possible values: text, json]",
        ),
    ] {
        let help = ok(args);
        assert!(help.contains(values), "{values} not in {help}");
        // The values' doc lines stay out of `--help`: it keeps one line per flag.
        assert!(!help.contains("Possible values:"), "{help}");
    }
}
