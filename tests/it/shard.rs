//! Sharding (spec README, scale): `rate --shard i/3` for i = 0, 1, 2 as three concurrent
//! processes on one lake publish exactly the partitions of a single-process run, and their
//! three quarantine files hold the single run's quarantine.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

/// Rating quarantine rows of a lake per month (all shard files together), sorted, without
/// the run ID.
fn rate_quarantine(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in files_under(&dir.join("quarantine/stage=rate")) {
        let month = f.split('/').next().unwrap().to_string();
        let rows = render_file(&dir.join("quarantine/stage=rate").join(&f), &RUN_ID_COLUMNS);
        out.entry(month).or_default().extend(rows);
    }
    for rows in out.values_mut() {
        rows.sort();
    }
    out
}

/// Reason code -> count, from rendered quarantine rows (`reason_code` is the first column).
fn by_reason(rows: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in rows.values().flatten() {
        *out.entry(r.split('|').next().unwrap().to_string())
            .or_insert(0) += 1;
    }
    out
}

fn cost_partitions(dir: &Path) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .filter(|f| f.starts_with("costs/"))
        .collect()
}

#[test]
fn three_concurrent_shards_equal_one_process() {
    let single = rated_sample();
    let sharded = lake();
    ingest_sample(sharded.path());
    let l = arg(sharded.path());
    let children: Vec<_> = (0..3)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_cspcost"))
                .args(["rate", "--lake", &l, "--shard", &format!("{i}/3")])
                .env_remove("CSPCOST_CRASH_AT")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a shard")
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "shard {i}/3 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The union of the shards' partitions is the single run's, file for file, row for row.
    let files = cost_partitions(sharded.path());
    assert_eq!(files, cost_partitions(single.path()));
    assert_eq!(files.len(), 5);
    for f in &files {
        assert!(
            render_file(&sharded.path().join(f), &RUN_ID_COLUMNS)
                == render_file(&single.path().join(f), &RUN_ID_COLUMNS),
            "{f}: the shards and one process differ"
        );
    }

    // One quarantine file per shard and month; together they are the single run's.
    let q_files = files_under(&sharded.path().join("quarantine/stage=rate"));
    assert!(
        q_files.iter().all(|f| f.contains("-of-3.parquet")),
        "{q_files:?}"
    );
    let (q_sharded, q_single) = (
        rate_quarantine(sharded.path()),
        rate_quarantine(single.path()),
    );
    assert_eq!(by_reason(&q_sharded), by_reason(&q_single));
    assert_eq!(q_sharded, q_single);

    // Each shard's manifest balances, and together they count what the single run counted.
    let sum = |dir: &Path, key: &str| -> u64 {
        manifests(dir)
            .iter()
            .filter(|m| m.command == "rate")
            .map(|m| m.counts.get(key).copied().unwrap_or(0))
            .sum()
    };
    let quarantined = |dir: &Path| -> u64 {
        manifests(dir)
            .iter()
            .filter(|m| m.command == "rate")
            .map(|m| m.quarantined_total())
            .sum()
    };
    assert_eq!(
        manifests(sharded.path())
            .iter()
            .filter(|m| m.command == "rate")
            .count(),
        3
    );
    for key in ["staged", "rated"] {
        assert_eq!(sum(sharded.path(), key), sum(single.path(), key), "{key}");
    }
    assert_eq!(quarantined(sharded.path()), quarantined(single.path()));

    // Concurrent shards leave no scratch behind, and each has its own state.
    assert!(!sharded.path().join("_tmp").exists());
    // They shared the writer lease (`rate --shard */3`) and released it together.
    assert!(!sharded.path().join("_lock").exists());
    let states = files_under(&sharded.path().join("_state"));
    assert_eq!(
        states,
        (0..3)
            .map(|i| format!("rate-shard-{i}-of-3.json"))
            .collect::<Vec<_>>()
    );

    // A second round of the shards finds nothing to rate.
    for i in 0..3 {
        let out = ok(["rate", "--lake", &l, "--shard", &format!("{i}/3")]);
        assert!(out.contains("partitions: 0 written"), "{out}");
    }
}
