//! Rating as a stream (issue 16): the default scope rates each staged file in chunks, cut
//! into tasks where a (subscription, meter) ladder starts. Whatever the task and chunk sizes,
//! the cost partitions, the quarantine and the counts are those of one task per file.

use crate::bench_check::generate;
use crate::common::*;

const MONTH: &str = "2026-01";

/// A month of 2 subscriptions (so ~3,000 rows per staged file) with the generator's corner
/// cases (quarantined records, zero and 10-decimal quantities), staged in `lake`.
fn staged_month(dir: &std::path::Path) -> std::path::PathBuf {
    let input = dir.join("input");
    generate::run(&generate::Opts {
        records: 6_000,
        out: input.clone(),
        tenants: 2,
        subs_per_tenant: 1,
        meters: 6,
        edge_cases: true,
        ..generate::Opts::default()
    })
    .expect("generate");
    let lake = dir.join("lake");
    let l = arg(&lake);
    for kind in ["reference", "prices", "usage"] {
        ok(["ingest", kind, "--lake", &l, &arg(&input.join(kind))]);
    }
    lake
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let st = std::process::Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn tasks_and_chunks_do_not_change_what_is_rated() {
    let dir = lake();
    let whole = staged_month(dir.path());
    let cut = dir.path().join("cut");
    copy_dir(&whole, &cut);
    // The staged files are large enough to be cut: more rows than the task size below.
    let staged: Vec<String> = parquet_files(&whole.join("staged/usage"));
    assert!(!staged.is_empty());
    let rows: usize = staged
        .iter()
        .map(|f| render_file(&whole.join("staged/usage").join(f), &[]).len())
        .max()
        .unwrap();
    assert!(rows > 2_000, "largest staged file has {rows} rows");

    ok(["rate", "--lake", &arg(&whole), "--month", MONTH]);
    let env = [
        ("CSPCOST_RATE_TASK_ROWS", "300"),
        ("CSPCOST_RATE_CHUNK_ROWS", "37"),
    ];
    ok_env(["rate", "--lake", &arg(&cut), "--month", MONTH], &env);

    let (a, b) = (parquet_snapshot(&whole), parquet_snapshot(&cut));
    let costs: Vec<&String> = a.keys().filter(|k| k.starts_with("costs/")).collect();
    assert!(!costs.is_empty());
    let quarantined: usize = a
        .iter()
        .filter(|(k, _)| k.starts_with("quarantine/stage=rate"))
        .map(|(_, v)| v.len())
        .sum();
    assert!(quarantined > 0, "the corner cases quarantine some records");
    assert_eq!(a, b);
    let counts = |lake: &std::path::Path| {
        let m = manifests(lake);
        let rate = m.iter().rev().find(|m| m.command == "rate").unwrap();
        (rate.counts.clone(), rate.quarantined.clone())
    };
    assert_eq!(counts(&whole), counts(&cut));
}
