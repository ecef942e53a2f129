//! Crash safety (outputs.md, writing rules): `rate` is killed at every point where it
//! publishes a file (`CSPCOST_CRASH_AT=before-rename:N`) and in the middle of writing each
//! partition (`partition-write:N`), on a lake whose partitions were published by an earlier
//! rate and whose inputs then changed (a second usage dump). After each crash every
//! partition is readable and is either the old or the new version; the next run cleans up
//! what the crashed one left in `_tmp/` and publishes exactly what an uninterrupted run does.

use crate::common::*;
use std::collections::BTreeSet;
use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    for rel in files_under(from) {
        let dest = to.join(&rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&rel), dest).unwrap();
    }
}

/// A lake rated on the first dump, then given the second dump (not yet rated).
fn published_then_changed() -> tempfile::TempDir {
    let dir = lake();
    let l = arg(dir.path());
    ingest_inputs(&l, &SAMPLE_INPUTS[..3], &[]);
    ok(["rate", "--lake", &l]);
    ingest_inputs(&l, &SAMPLE_INPUTS[3..], &[]);
    dir
}

/// Files a reader of the lake sees: cost partitions and rating quarantine.
fn published(dir: &Path) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .filter(|f| f.starts_with("costs/") || f.starts_with("quarantine/stage=rate/"))
        .collect()
}

/// A file's data: every row, every column but the run ID (which names the writing run).
fn data(dir: &Path, rel: &str) -> Vec<String> {
    render_file(&dir.join(rel), &RUN_ID_COLUMNS)
}

/// Check every published file of `work` is `old`'s version (same bytes) or `new`'s (same
/// data), and that a file is missing only where one of the versions has none.
pub fn old_or_new(work: &Path, old: &Path, new: &Path, what: &str) {
    let (old_files, new_files) = (published(old), published(new));
    let known: BTreeSet<&String> = old_files.iter().chain(&new_files).collect();
    let work_files = published(work);
    for f in &work_files {
        assert!(
            known.contains(f),
            "{what}: unexpected file {f} (a partial or temporary file is visible)"
        );
        assert!(f.ends_with(".parquet"), "{what}: {f} is not a Parquet file");
        let bytes = std::fs::read(work.join(f)).unwrap();
        let is_old = old_files.contains(f) && bytes == std::fs::read(old.join(f)).unwrap();
        // render_file panics on an unreadable (partial) file.
        let is_new = new_files.contains(f) && data(work, f) == data(new, f);
        assert!(
            is_old || is_new,
            "{what}: {f} is neither the old nor the new version"
        );
    }
    for f in known {
        if !work_files.contains(f) {
            assert!(
                !old_files.contains(f) || !new_files.contains(f),
                "{what}: {f} disappeared although both versions have it"
            );
        }
    }
}

/// Every cost partition and rating quarantine file of `a` holds the same data as in `b`
/// (all columns but the run ID, so also the content digest the writer stores).
pub fn same_data(a: &Path, b: &Path, what: &str) {
    assert_eq!(published(a), published(b), "{what}: files differ");
    for f in published(a) {
        assert!(data(a, &f) == data(b, &f), "{what}: {f} differs");
    }
}

fn crash_at_every_pass(point: &str) -> usize {
    let base = published_then_changed();
    let uninterrupted = lake();
    copy_dir(base.path(), uninterrupted.path());
    ok(["rate", "--lake", &arg(uninterrupted.path())]);
    assert_ne!(
        published(base.path()),
        published(uninterrupted.path()),
        "the second dump must change what is published"
    );
    let mut crashes = 0;
    for n in 1..=40 {
        let work = lake();
        copy_dir(base.path(), work.path());
        let spec = format!("{point}:{n}");
        let out = cspcost_env(
            ["rate", "--lake", &arg(work.path())],
            &[("CSPCOST_CRASH_AT", &spec)],
        );
        if out.status.success() {
            // Fewer than n passes: this run went through uninterrupted.
            same_data(work.path(), uninterrupted.path(), &spec);
            break;
        }
        crashes += 1;
        let err = stderr(&out);
        assert!(
            err.contains(&format!("injected crash at {point} #{n}")),
            "{spec}: {err}"
        );
        assert!(out.status.code().is_none(), "{spec}: aborted by a signal");
        old_or_new(work.path(), base.path(), uninterrupted.path(), &spec);
        assert!(
            work.path().join("_tmp").exists(),
            "{spec}: a crashed rate leaves its scratch directory"
        );

        ok(["rate", "--lake", &arg(work.path())]);
        same_data(
            work.path(),
            uninterrupted.path(),
            &format!("rerun after {spec}"),
        );
        assert!(
            !work.path().join("_tmp").exists(),
            "rerun after {spec}: leftovers of the crashed run are removed: {:?}",
            files_under(&work.path().join("_tmp"))
        );
        // The next run after that has nothing to do and changes nothing.
        let again = ok(["rate", "--lake", &arg(work.path())]);
        assert!(again.contains("partitions: 0 written"), "{again}");
    }
    crashes
}

#[test]
fn crash_before_any_publish_leaves_old_or_new_and_the_rerun_matches() {
    let crashes = crash_at_every_pass("before-rename");
    // Five partitions, two quarantine files, the state and the manifest are published.
    assert!(crashes >= 5, "only {crashes} crash points");
}

#[test]
fn crash_while_writing_a_partition_leaves_old_or_new_and_the_rerun_matches() {
    let crashes = crash_at_every_pass("partition-write");
    assert!(crashes >= 3, "only {crashes} crash points");
}

/// Killed as it publishes its source archive (publish 2, after the intent journal) or its
/// first partition (publish 3, the spill written), an ingest leaves its scratch behind and
/// no partial staged file; the next run removes the scratch and stages what a fresh lake
/// does. An archive the crashed run published stays, referred to by nothing.
#[test]
fn leftovers_of_a_crashed_ingest_are_removed_by_the_next_run() {
    for n in [2, 3] {
        let dir = lake();
        let l = arg(dir.path());
        ingest_inputs(&l, &SAMPLE_INPUTS[..1], &[]);
        let dump = arg(&sample("usage/dump-2026-01-20"));
        let spec = format!("before-rename:{n}");
        let out = cspcost_env(
            ["ingest", "usage", "--lake", &l, &dump],
            &[("CSPCOST_CRASH_AT", &spec)],
        );
        assert!(!out.status.success(), "{spec}");
        let left = files_under(&dir.path().join("_tmp"));
        let archives = files_under(&dir.path().join("staged/sources"));
        if n == 2 {
            assert!(
                left.iter().any(|f| f.ends_with("part-00000.zst.tmp")),
                "{left:?}"
            );
            assert!(archives.is_empty(), "{archives:?}");
        } else {
            assert!(
                left.iter().any(|f| f.contains("/usage/")),
                "the crashed ingest's spill files stay behind: {left:?}"
            );
            assert_eq!(archives.len(), 1, "{archives:?}");
        }
        // No staged file is partial: each is absent or complete.
        for f in files_under(dir.path()) {
            if f.starts_with("staged/usage/") {
                assert!(!render_file(&dir.path().join(&f), &[]).is_empty(), "{f}");
            }
        }
        ok(["ingest", "usage", "--lake", &l, &dump]);
        assert!(!dir.path().join("_tmp").exists(), "{spec}");
        let fresh = lake();
        ingest_inputs(&arg(fresh.path()), &SAMPLE_INPUTS[..1], &[]);
        ok(["ingest", "usage", "--lake", &arg(fresh.path()), &dump]);
        let staged = |d: &Path| {
            parquet_snapshot(d)
                .into_iter()
                .filter(|(k, _)| k.starts_with("staged/usage/"))
                .collect::<Vec<_>>()
        };
        assert_eq!(staged(dir.path()), staged(fresh.path()), "{spec}");
        // Rating reads the texts of its quarantine from the rerun's archive.
        ok(["rate", "--lake", &l]);
    }
}

/// Usage manifests of a lake that are not in `before` (by run ID).
fn new_usage_manifests(
    dir: &Path,
    before: &BTreeSet<String>,
) -> Vec<cspcost::emit::manifest::Manifest> {
    manifests(dir)
        .into_iter()
        .filter(|m| m.command == "ingest usage" && !before.contains(&m.run_id))
        .collect()
}

fn count(m: &cspcost::emit::manifest::Manifest, key: &str) -> u64 {
    m.counts.get(key).copied().unwrap_or(0)
}

fn staged_usage(d: &Path) -> Vec<(String, Vec<String>)> {
    parquet_snapshot(d)
        .into_iter()
        .filter(|(k, _)| k.starts_with("staged/usage/"))
        .collect()
}

/// Issue 11, case 7: killed after the ledger is written but before the manifest, an ingest
/// used to appear in no manifest, and the rerun reported "0 read, N skipped". Now the next
/// run writes the crashed run's manifest from its journal, with what it read.
#[test]
fn an_ingest_killed_after_its_ledger_appears_in_a_manifest_marked_crashed() {
    let dir = lake();
    let l = arg(dir.path());
    ingest_inputs(&l, &SAMPLE_INPUTS[..2], &[]);
    let dump = arg(&sample("usage/dump-2026-01-20"));
    let out = cspcost_env(
        ["ingest", "usage", "--lake", &l, &dump],
        &[("CSPCOST_CRASH_AT", "ingest-ledger:1")],
    );
    assert!(out.status.code().is_none(), "{}", stderr(&out));
    let pending = files_under(&dir.path().join("_runs/_pending"));
    assert_eq!(
        pending.len(),
        1,
        "the crashed run's journal stays: {pending:?}"
    );
    assert!(manifests(dir.path())
        .iter()
        .all(|m| m.command != "ingest usage"));

    let rerun = cspcost(["ingest", "usage", "--lake", &l, &dump]);
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    assert!(
        stderr(&rerun).contains("had crashed; its manifest is written now, marked crashed"),
        "{}",
        stderr(&rerun)
    );
    let ms = new_usage_manifests(dir.path(), &BTreeSet::new());
    assert_eq!(ms.len(), 2);
    let crashed = ms
        .iter()
        .find(|m| m.status.as_deref() == Some("crashed"))
        .unwrap();
    let again = ms.iter().find(|m| m.status.is_none()).unwrap();
    assert_eq!(count(crashed, "read"), 241);
    assert_eq!(count(crashed, "new"), 233);
    assert_eq!(crashed.quarantined_total(), 8);
    assert_eq!(
        count(again, "read"),
        0,
        "the rerun skips the files already ingested"
    );
    assert_eq!(
        count(again, "files_skipped_identical"),
        count(crashed, "files")
    );
    let runs = ok(["runs", "--lake", &l]);
    let line = runs.lines().find(|r| r.contains(&crashed.run_id)).unwrap();
    assert!(
        line.contains("ingest usage") && line.contains("crashed: "),
        "{runs}"
    );
    assert!(!dir.path().join("_runs/_pending").exists());
    assert!(!dir.path().join("_lock").exists());
}

/// Issue 11, case 7 (second half): killed at every publish of an ingest that restates
/// earlier usage. After the rerun, every record read is counted in exactly one manifest and
/// the restatements reported by the crashed run and the rerun add up to those of an
/// uninterrupted ingest (they used to come out short after a crash mid-publish).
#[test]
fn an_ingest_killed_at_every_publish_counts_every_record_and_restatement_once() {
    let base = lake();
    let b = arg(base.path());
    ingest_inputs(&b, &SAMPLE_INPUTS[..3], &[]);
    let before: BTreeSet<String> = manifests(base.path())
        .into_iter()
        .map(|m| m.run_id)
        .collect();
    let dump = arg(&sample("usage/dump-2026-02-16"));
    let whole = lake();
    copy_dir(base.path(), whole.path());
    ok(["ingest", "usage", "--lake", &arg(whole.path()), &dump]);
    let u = new_usage_manifests(whole.path(), &before).remove(0);
    assert!(
        count(&u, "restated") > 0,
        "the second dump restates the first"
    );
    let mut crashes = 0;
    let mut recovered = 0;
    for n in 1..=60 {
        let work = lake();
        copy_dir(base.path(), work.path());
        let w = arg(work.path());
        let spec = format!("before-rename:{n}");
        let out = cspcost_env(
            ["ingest", "usage", "--lake", &w, &dump],
            &[("CSPCOST_CRASH_AT", &spec)],
        );
        if out.status.success() {
            break;
        }
        crashes += 1;
        assert!(out.status.code().is_none(), "{spec}: {}", stderr(&out));
        ok(["ingest", "usage", "--lake", &w, &dump]);
        assert_eq!(
            staged_usage(work.path()),
            staged_usage(whole.path()),
            "{spec}: staged usage"
        );
        let ms = new_usage_manifests(work.path(), &before);
        let crashed: Vec<_> = ms
            .iter()
            .filter(|m| m.status.as_deref() == Some("crashed"))
            .collect();
        assert!(crashed.len() <= 1, "{spec}");
        recovered += crashed.len();
        let sum = |k: &str| ms.iter().map(|m| count(m, k)).sum::<u64>();
        assert_eq!(sum("read"), count(&u, "read"), "{spec}: read");
        assert_eq!(
            sum("restated") + sum("published_restated"),
            count(&u, "restated"),
            "{spec}: restated"
        );
        assert_eq!(
            sum("new") + sum("published_new"),
            count(&u, "new"),
            "{spec}: new"
        );
        let q: u64 = ms.iter().map(|m| m.quarantined_total()).sum();
        assert_eq!(q, u.quarantined_total(), "{spec}: quarantined");
        // The quarantine files on disk match the manifests: one run's worth.
        let q_files = files_under(&work.path().join("quarantine/stage=ingest"))
            .into_iter()
            .filter(|f| !before.iter().any(|r| f.contains(r.as_str())))
            .count();
        assert_eq!(q_files, usize::from(u.quarantined_total() > 0), "{spec}");
        assert!(!work.path().join("_runs/_pending").exists(), "{spec}");
    }
    assert!(crashes >= 4, "only {crashes} crash points");
    assert!(recovered >= 3, "only {recovered} crashed manifests");
}
