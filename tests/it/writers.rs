//! Issue 11, part A: one writer per lake (the lease `_lock/writer.json`), commands that read
//! a lake refuse a path holding none, a closed stdout ends a command quietly, and secrets in
//! lake URLs are never printed or stored.

use crate::common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// This host's name as the lease records it.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Start time of a process (`/proc/<pid>/stat` field 22), as the lease records it.
fn pid_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Write a lease held by `pid` on `host` for `command` (lease key `key`), expiring in
/// `expires_in` seconds (negative: already expired).
fn hold(lake: &Path, key: &str, command: &str, pid: u32, host: &str, expires_in: i64) {
    let expires = chrono::Utc::now() + chrono::Duration::seconds(expires_in);
    let doc = serde_json::json!({
        "command": key,
        "holders": [{
            "run_id": "20260101T000000000000Z-1",
            "pid": pid,
            "host": host,
            "pid_start": pid_start(pid),
            "command": command,
            "started_at": "2026-01-01T00:00:00.000Z",
            "expires_at": expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }]
    });
    std::fs::create_dir_all(lake.join("_lock")).unwrap();
    std::fs::write(
        lake.join("_lock/writer.json"),
        serde_json::to_vec_pretty(&doc).unwrap(),
    )
    .unwrap();
}

fn usage_dump(which: &str) -> String {
    arg(&sample(&format!("usage/{which}")))
}

/// Reference and prices only (what usage needs to be rated later).
fn base_lake() -> tempfile::TempDir {
    let dir = lake();
    ingest_inputs(&arg(dir.path()), &SAMPLE_INPUTS[..2], &[]);
    dir
}

fn staged_usage(dir: &Path) -> Vec<(String, Vec<String>)> {
    parquet_snapshot(dir)
        .into_iter()
        .filter(|(k, _)| k.starts_with("staged/usage/"))
        .collect()
}

fn usage_manifests(dir: &Path) -> Vec<cspcost::emit::manifest::Manifest> {
    manifests(dir)
        .into_iter()
        .filter(|m| m.command == "ingest usage")
        .collect()
}

#[test]
fn a_second_writer_exits_2_naming_the_holder() {
    let dir = base_lake();
    let l = arg(dir.path());
    // The holder is this test process: alive, on this host, lease unexpired.
    hold(
        dir.path(),
        "ingest usage",
        "ingest usage",
        std::process::id(),
        &host(),
        600,
    );
    let cfg = write(
        dir.path(),
        "reserve.toml",
        &format!("lake = \"{l}\"\nstages = [\"reserve\"]\n"),
    );
    let cfg = arg(&cfg);
    for args in [
        vec!["run", &cfg],
        vec!["tenants", "remove", "--lake", &l, T],
        vec![
            "ingest",
            "usage",
            "--lake",
            &l,
            &usage_dump("dump-2026-01-20"),
        ],
        vec!["rate", "--lake", &l],
        vec!["reserve", "--lake", &l, "--as-of", "2026-02-16"],
        vec!["rate", "--lake", &l, "--shard", "0/2"],
    ] {
        let out = cspcost(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("_lock/writer.json: the lake is being written by `ingest usage` (run 20260101T000000000000Z-1, pid "),
            "{args:?}: {err}"
        );
        assert!(err.contains("pass --wait DURATION"), "{err}");
    }
    // Nothing was written: the refused ingest staged no usage and left no manifest.
    assert!(staged_usage(dir.path()).is_empty());
    assert_eq!(manifests(dir.path()).len(), 2);
    // Readers are not writers: they still work while the lease is held.
    ok(["runs", "--lake", &l]);
    ok(["quarantine", "--lake", &l]);
    ok(["rate", "--lake", &l, "--dry-run"]);
}

#[test]
fn a_waiting_writer_runs_once_the_holder_releases() {
    let dir = base_lake();
    let l = arg(dir.path());
    hold(
        dir.path(),
        "reserve",
        "reserve",
        std::process::id(),
        &host(),
        600,
    );
    let lock = dir.path().join("_lock/writer.json");
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        std::fs::remove_file(lock).unwrap();
    });
    let started = Instant::now();
    let out = cspcost([
        "--wait",
        "30s",
        "ingest",
        "usage",
        "--lake",
        &l,
        &usage_dump("dump-2026-01-20"),
    ]);
    release.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert!(
        stderr(&out)
            .contains("waiting for the writer lease: the lake is being written by `reserve`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(usage_manifests(dir.path())[0].counts["read"], 241);
    assert!(!dir.path().join("_lock").exists(), "the lease is released");

    // A wait that runs out is the same refusal, after the wait.
    hold(
        dir.path(),
        "reserve",
        "reserve",
        std::process::id(),
        &host(),
        600,
    );
    let out = cspcost(["--wait", "300ms", "rate", "--lake", &l]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("still held after waiting 300 ms"),
        "{}",
        stderr(&out)
    );
    let out = cspcost(["--wait", "soon", "rate", "--lake", &l]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--wait 'soon'"), "{}", stderr(&out));
}

#[test]
fn a_dead_or_expired_holder_is_taken_over_and_logged() {
    let dir = base_lake();
    let l = arg(dir.path());
    // A process of this host that has ended: taken over at once.
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    hold(
        dir.path(),
        "ingest usage",
        "ingest usage",
        pid,
        &host(),
        600,
    );
    let out = cspcost([
        "ingest",
        "usage",
        "--lake",
        &l,
        &usage_dump("dump-2026-01-20"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("took over the writer lease of `ingest usage` (run 20260101T000000000000Z-1, pid {pid} on ")),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("its process is gone"),
        "{}",
        stderr(&out)
    );

    // Another host's holder whose lease has not expired cannot be checked: refused...
    hold(dir.path(), "rate", "rate", 1, "another-host", 600);
    let out = cspcost(["rate", "--lake", &l]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // ...until it expires.
    hold(dir.path(), "rate", "rate", 1, "another-host", -1);
    let out = cspcost(["rate", "--lake", &l]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pid 1 on another-host") && stderr(&out).contains("it expired"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("_lock").exists());
}

#[test]
fn a_live_writer_renews_its_lease_so_a_short_ttl_is_never_taken_over() {
    // CSPCOST_LEASE_TTL=1s: the holder renews every 250 ms. A lease file is read back while
    // an ingest runs; its expiry moves forward.
    let dir = base_lake();
    let l = arg(dir.path());
    let child = Command::new(env!("CARGO_BIN_EXE_cspcost"))
        .args([
            "--wait",
            "10s",
            "ingest",
            "usage",
            "--lake",
            &l,
            &usage_dump("dump-2026-01-20"),
            &usage_dump("dump-2026-02-16"),
        ])
        .env("CSPCOST_LEASE_TTL", "1s")
        .env_remove("CSPCOST_CRASH_AT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A second writer with the same short lease: it must wait for the first, not take over.
    let second = cspcost_env(
        [
            "--wait",
            "60s",
            "reserve",
            "--lake",
            &l,
            "--as-of",
            "2026-02-16",
        ],
        &[("CSPCOST_LEASE_TTL", "1s")],
    );
    let first = child.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(second.status.success(), "{}", stderr(&second));
    for err in [
        String::from_utf8_lossy(&first.stderr).into_owned(),
        stderr(&second),
    ] {
        assert!(!err.contains("took over"), "{err}");
        assert!(!err.contains("taken over"), "{err}");
    }
    let bad = cspcost_env(["rate", "--lake", &l], &[("CSPCOST_LEASE_TTL", "0s")]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("CSPCOST_LEASE_TTL '0s'"),
        "{}",
        stderr(&bad)
    );
}

/// The case 1: two ingests of different dumps into one lake at the same time.
#[test]
fn two_concurrent_ingests_of_different_dumps_lose_nothing() {
    // Sequentially, for reference.
    let seq = base_lake();
    let s = arg(seq.path());
    ok([
        "ingest",
        "usage",
        "--lake",
        &s,
        &usage_dump("dump-2026-01-20"),
    ]);
    ok([
        "ingest",
        "usage",
        "--lake",
        &s,
        &usage_dump("dump-2026-02-16"),
    ]);
    let seq_rows: usize = staged_usage(seq.path()).iter().map(|(_, r)| r.len()).sum();
    let seq_ledger = std::fs::read_to_string(seq.path().join("staged/_ledger/usage.json")).unwrap();
    let seq_entries = seq_ledger.matches("\"run_id\"").count();

    for wait in [false, true] {
        let dir = base_lake();
        let l = arg(dir.path());
        let spawn = |dump: &str| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_cspcost"));
            if wait {
                c.args(["--wait", "120s"]);
            }
            c.args(["ingest", "usage", "--lake", &l, &usage_dump(dump)])
                .env_remove("CSPCOST_CRASH_AT")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn("dump-2026-01-20"), spawn("dump-2026-02-16"));
        let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        let succeeded = outs.iter().filter(|o| o.status.success()).count();
        for o in &outs {
            if !o.status.success() {
                let err = String::from_utf8_lossy(&o.stderr);
                assert_eq!(o.status.code(), Some(2), "{err}");
                assert!(
                    err.contains("the lake is being written by `ingest usage` (run "),
                    "{err}"
                );
            }
        }
        let ms = usage_manifests(dir.path());
        assert_eq!(ms.len(), succeeded, "one manifest per ingest that ran");
        let rows: usize = staged_usage(dir.path()).iter().map(|(_, r)| r.len()).sum();
        let ledger = std::fs::read_to_string(dir.path().join("staged/_ledger/usage.json")).unwrap();
        if wait {
            assert_eq!(succeeded, 2, "with --wait both run, one after the other");
            // Every row of both dumps is staged, and the ledger holds every file of both.
            assert_eq!(rows, seq_rows);
            assert_eq!(ledger.matches("\"run_id\"").count(), seq_entries);
            let read: u64 = ms.iter().map(|m| m.counts["read"]).sum();
            let new: u64 = ms.iter().map(|m| m.counts["new"]).sum();
            assert_eq!(read, 241 + 396);
            assert_eq!(new, seq_rows as u64);
        } else {
            // Either the second was refused, or the first had finished before it began: in
            // both cases every row of each ingest that ran is staged.
            assert!(succeeded >= 1);
            let new: u64 = ms.iter().map(|m| m.counts["new"]).sum();
            assert_eq!(rows as u64, new);
        }
        assert!(!dir.path().join("_lock").exists());
    }
}

#[test]
fn shards_of_one_n_share_the_lease_other_writers_are_refused() {
    let dir = lake();
    ingest_sample(dir.path());
    let l = arg(dir.path());
    // A running shard 0/3 (this process) holds the lease `rate --shard */3`.
    hold(
        dir.path(),
        "rate --shard */3",
        "rate --shard 0/3",
        std::process::id(),
        &host(),
        600,
    );
    for i in 1..3 {
        ok(["rate", "--lake", &l, "--shard", &format!("{i}/3")]);
    }
    // Shard 0 itself, another n, unsharded rate and ingest are refused.
    for args in [
        vec!["rate", "--lake", &l, "--shard", "0/3"],
        vec!["rate", "--lake", &l, "--shard", "1/4"],
        vec!["rate", "--lake", &l],
        vec![
            "ingest",
            "usage",
            "--lake",
            &l,
            &usage_dump("dump-2026-01-20"),
        ],
    ] {
        let out = cspcost(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("being written by `rate --shard 0/3`"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // The shards that ran removed only themselves: shard 0 still holds the lease.
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("_lock/writer.json")).unwrap())
            .unwrap();
    assert_eq!(doc["command"], "rate --shard */3");
    assert_eq!(doc["holders"].as_array().unwrap().len(), 1);
    assert_eq!(doc["holders"][0]["command"], "rate --shard 0/3");
    assert_eq!(
        manifests(dir.path())
            .iter()
            .filter(|m| m.command == "rate")
            .count(),
        2
    );
}

/// The case 11: a reading command on a path that holds no lake.
#[test]
fn commands_that_read_a_lake_refuse_a_path_that_holds_none() {
    let parent = lake();
    let typo = parent.path().join("a/typo");
    let t = arg(&typo);
    let empty = parent.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = arg(&empty);
    let out_dir = arg(&parent.path().join("recon"));
    for l in [&t, &e] {
        for args in [
            vec!["rate", "--lake", l],
            vec!["rate", "--lake", l, "--dry-run"],
            vec!["reserve", "--lake", l],
            vec![
                "reconcile",
                "--lake",
                l,
                "--from",
                "2026-01-01",
                "--to",
                "2026-01-31",
                "--out",
                &out_dir,
            ],
            vec!["quarantine", "--lake", l],
            vec!["runs", "--lake", l],
            vec!["assets", "--lake", l],
            vec!["tenants", "list", "--lake", l],
            vec!["tenants", "show", "--lake", l, T],
            vec!["tenants", "remove", "--lake", l, T],
        ] {
            let out = cspcost(&args);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            let shown = l.trim_end_matches('/');
            assert!(
                stderr(&out).contains(&format!("no cspcost lake at {shown}")),
                "{args:?}: {}",
                stderr(&out)
            );
            assert!(String::from_utf8_lossy(&out.stdout).is_empty());
        }
    }
    // Nothing was created: not the typo'd path, not a lock, not scratch.
    assert!(!typo.exists());
    assert!(files_under(&empty).is_empty());
    assert!(!parent.path().join("recon").exists());

    // `ingest` and `tenants add` create a lake; then reading works.
    ok([
        "ingest",
        "reference",
        "--lake",
        &t,
        &arg(&sample("reference")),
    ]);
    assert!(ok(["runs", "--lake", &t]).contains("ingest reference"));
    // `tenants add` on a new path is judged on its arguments, not refused as "no lake".
    let fresh = arg(&parent.path().join("tenants-only"));
    let out = cspcost([
        "tenants",
        "add",
        "--lake",
        &fresh,
        "--tenant",
        T,
        "--org",
        "contoso",
        "--partnership",
        "p1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--org 'contoso' is not a known organization"),
        "{}",
        stderr(&out)
    );
    // A pipeline that only rates needs a lake too.
    let cfg = write(
        parent.path(),
        "rate-only.toml",
        &format!(
            "lake = \"{}\"\nstages = [\"rate\"]\n",
            arg(&parent.path().join("nolake"))
        ),
    );
    let out = cspcost(["run", &arg(&cfg)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no cspcost lake at"),
        "{}",
        stderr(&out)
    );
}

/// A stdout whose reader is gone before the command writes anything.
fn closed_stdout() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer
}

/// The case 15: printing into a closed pipe.
#[test]
fn a_closed_stdout_ends_each_printing_command_quietly_with_its_usual_exit_code() {
    let dir = rated_sample();
    let l = arg(dir.path());
    let recon = lake();
    for args in [
        vec!["quarantine", "--lake", &l],
        vec!["runs", "--lake", &l],
        vec!["assets", "--lake", &l],
        vec!["tenants", "list", "--lake", &l],
        vec!["rate", "--lake", &l, "--dry-run"],
        vec!["rate", "--lake", &l],
        vec![
            "reconcile",
            "--lake",
            &l,
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-31",
            "--out",
            &arg(recon.path()),
        ],
        vec![
            "ingest",
            "usage",
            "--lake",
            &l,
            &usage_dump("dump-2026-01-20"),
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_cspcost"))
            .args(&args)
            .env_remove("CSPCOST_CRASH_AT")
            .stdout(closed_stdout())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        assert!(
            !dir.path().join("_lock").exists(),
            "{args:?}: the lease is released"
        );
    }
    // A failing command keeps its exit code with a closed stdout.
    let out = Command::new(env!("CARGO_BIN_EXE_cspcost"))
        .args(["runs", "--lake", &arg(&dir.path().join("nope"))])
        .stdout(closed_stdout())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Through a real `head -1`, the first line arrives and the exit status is 0.
    let sh = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; '{}' quarantine --lake '{l}' | head -1",
            env!("CARGO_BIN_EXE_cspcost")
        ))
        .output()
        .unwrap();
    assert!(sh.status.success(), "{}", stderr(&sh));
    assert_eq!(String::from_utf8_lossy(&sh.stdout).lines().count(), 1);
    assert!(!stderr(&sh).contains("panicked"), "{}", stderr(&sh));
}

/// Every file under a directory, as text (lossy), for a grep.
fn all_text(dir: &Path) -> String {
    let mut text = String::new();
    for f in files_under(dir) {
        text.push_str(&f);
        text.push('\n');
        text.push_str(&String::from_utf8_lossy(
            &std::fs::read(dir.join(&f)).unwrap(),
        ));
    }
    text
}

/// The case 16: a SAS signature in a lake URL.
#[test]
fn a_sas_signature_is_never_printed_or_stored() {
    const SAS: &str = "az://c/p?sv=2024-11-04&ss=b&sig=SECRET";
    let mut seen = String::new();
    let mut record = |out: &std::process::Output| {
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        seen.push_str(&String::from_utf8_lossy(&out.stderr));
    };
    // Failing: the store cannot be built (no account configured).
    for format in ["text", "json"] {
        for args in [
            vec!["--log-format", format, "rate", "--lake", SAS],
            vec![
                "--log-format",
                format,
                "ingest",
                "usage",
                "--lake",
                SAS,
                &usage_dump("dump-2026-01-20"),
            ],
            vec!["--log-format", format, "runs", "--lake", SAS],
        ] {
            let out = cspcost(&args);
            assert_ne!(out.status.code(), Some(0), "{args:?}");
            assert!(
                stderr(&out).contains("az://c/p?***"),
                "{args:?}: {}",
                stderr(&out)
            );
            record(&out);
        }
    }
    // A connection string or key in a path or value is masked as well.
    let out = cspcost([
        "ingest",
        "usage",
        "--lake",
        &arg(lake().path()),
        "/nonexistent/x?sig=SECRET&token=SECRET",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("sig=***&token=***"),
        "{}",
        stderr(&out)
    );
    record(&out);

    // Succeeding: `run --dry-run` of a pipeline on the SAS URL (the plan names the lake),
    // in both log formats, and a real run on a local lake whose pipeline config carries a
    // SAS-bearing note in its lake path's neighbour: the manifests are grepped too.
    let dir = lake();
    let cfg = write(
        dir.path(),
        "sas.toml",
        &format!("lake = \"{SAS}\"\nstages = [\"reserve\"]\n[reserve]\nas_of = \"2026-02-16\"\n"),
    );
    let creds = [
        ("AZURE_STORAGE_ACCOUNT_NAME", "devstoreaccount1"),
        ("AZURE_STORAGE_ACCOUNT_KEY", "a2V5"),
    ];
    for format in ["text", "json"] {
        let out = cspcost_env(
            ["--log-format", format, "run", "--dry-run", &arg(&cfg)],
            &creds,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let shown = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(shown.contains("on lake az://c/p?***"), "{shown}");
        assert!(shown.contains("1. reserve as of 2026-02-16"), "{shown}");
        record(&out);
    }
    // A local pipeline run: its `run` manifest stores the lake as given.
    let local = dir.path().join("lake?sig=SECRET");
    let cfg = write(
        dir.path(),
        "local.toml",
        &format!(
            "lake = \"{}\"\nstages = [\"ingest\"]\n[ingest]\nreference = [\"{}\"]\n",
            arg(&local),
            arg(&sample("reference"))
        ),
    );
    for format in ["text", "json"] {
        let out = cspcost(["--log-format", format, "run", &arg(&cfg)]);
        assert!(out.status.success(), "{}", stderr(&out));
        record(&out);
    }
    let run = manifests(&local)
        .into_iter()
        .find(|m| m.command == "run")
        .unwrap();
    assert!(
        run.options["lake"]
            .as_str()
            .unwrap()
            .ends_with("lake?sig=***"),
        "{}",
        run.options
    );
    let stored = all_text(&local);
    assert!(!stored.is_empty());
    assert!(!stored.contains("SECRET"), "a lake file holds the secret");
    assert!(
        !seen.contains("SECRET"),
        "an output holds the secret:\n{seen}"
    );
}

/// An ingest that fails before changing the lake (a missing path: exit 2) leaves no journal
/// and no manifest, so the next run reports no crashed run; its lease is released.
#[test]
fn an_ingest_that_fails_before_changing_the_lake_leaves_nothing_to_account() {
    let dir = base_lake();
    let l = arg(dir.path());
    let out = cspcost(["ingest", "usage", "--lake", &l, "/nonexistent/dump"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/dump: no such file or directory"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("_runs/_pending").exists());
    assert!(!dir.path().join("_lock").exists());
    let next = cspcost([
        "ingest",
        "usage",
        "--lake",
        &l,
        &usage_dump("dump-2026-01-20"),
    ]);
    assert!(next.status.success());
    assert!(!stderr(&next).contains("crashed"), "{}", stderr(&next));
    assert_eq!(manifests(dir.path()).len(), 3);
    assert!(manifests(dir.path()).iter().all(|m| m.status.is_none()));
}

/// The case 1, second bullet: two concurrent ingests of the same dump used to count
/// the same rows as new in both manifests. With `--wait` they run one after the other and
/// the second skips the files the first recorded.
#[test]
fn two_concurrent_ingests_of_the_same_dump_count_its_rows_once() {
    let dir = base_lake();
    let l = arg(dir.path());
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_cspcost"))
            .args([
                "--wait",
                "120s",
                "ingest",
                "usage",
                "--lake",
                &l,
                &usage_dump("dump-2026-01-20"),
            ])
            .env_remove("CSPCOST_CRASH_AT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for c in [a, b] {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let ms = usage_manifests(dir.path());
    assert_eq!(ms.len(), 2);
    let mut reads: Vec<u64> = ms.iter().map(|m| m.counts["read"]).collect();
    reads.sort();
    assert_eq!(reads, vec![0, 241]);
    assert_eq!(ms.iter().map(|m| m.counts["new"]).sum::<u64>(), 233);
}
