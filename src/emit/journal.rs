//! The ingest intent journal (`_runs/_pending/<run_id>.json`): what a run that dies after
//! changing the lake had read, so that every record read appears in exactly one manifest.
//!
//! An ingest writes its journal twice: `started` (command, paths) before anything in the
//! lake changes, and `recorded` (its complete, balanced manifest and the ledger entries it
//! is about to add) after its staged tables and quarantine are published and before the
//! ledger is saved. The manifest is written last, then the journal is deleted.
//!
//! The next writer of the lake (any command that takes the writer lease) turns each journal
//! left behind into a manifest with `"status": "crashed"`:
//! - `recorded`: the run's data is all published, so its ledger entries are completed and
//!   its own manifest is written with its counts: the records it read count there, and the
//!   files are skipped as already ingested from then on;
//! - `started`: the run died before or while publishing. Nothing of it is in the ledger, so
//!   the next ingest of the same files reads and counts them again; the crashed manifest
//!   says `read` 0, and for each staged usage partition the crashed run published it
//!   reports what that partition's merge found (`published_new`, `published_restated`,
//!   `published_unchanged`), because the rerun sees those records as unchanged: together
//!   the two manifests count every restatement that happened.

use crate::emit::manifest::{InputFile, Manifest, PartitionSummary};
use crate::error::Result;
use crate::ingest::source::{FileToRead, Ledger};
use crate::store::Lake;
use serde::{Deserialize, Serialize};

/// Directory of pending journals.
pub const PENDING_DIR: &str = "_runs/_pending";
/// Parquet metadata key of a staged usage partition: what the merge that wrote it found.
pub const INGEST_COUNTS_KEY: &str = "cspcost.ingest_counts";

/// One pending journal.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Journal {
    /// The run.
    pub run_id: String,
    /// `ingest usage`, ...
    pub command: String,
    /// RFC 3339.
    pub started_at: String,
    /// `started` or `recorded`.
    pub phase: String,
    /// Options as given.
    #[serde(default)]
    pub options: serde_json::Value,
    /// The ledger kind (`usage`, `prices`, `reference`, `reservations`).
    pub kind: String,
    /// `recorded`: the complete manifest (not yet stamped with its end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
    /// `recorded`: the files to add to the ledger.
    #[serde(default)]
    pub files: Vec<InputFile>,
}

fn path_of(run_id: &str) -> String {
    format!("{PENDING_DIR}/{run_id}.json")
}

/// Write the `started` journal of an ingest (before it changes anything).
pub fn begin(
    lake: &Lake,
    run_id: &str,
    command: &str,
    kind: &str,
    options: serde_json::Value,
) -> Result<()> {
    let mut options = options;
    crate::redact::redact_json(&mut options);
    lake.put_json(
        &path_of(run_id),
        &Journal {
            run_id: run_id.to_string(),
            command: command.to_string(),
            started_at: chrono::Utc::now().to_rfc3339(),
            phase: "started".into(),
            options,
            kind: kind.to_string(),
            manifest: None,
            files: Vec::new(),
        },
    )
}

/// Run one ingest (`f`) under its journal: `started` before, deleted by `f`'s manifest
/// write at the end. When `f` fails without having changed the lake (bad arguments, a bad
/// file before anything was published), the journal is deleted: there is nothing to
/// account for. When it fails after changing the lake, its manifest is written at once,
/// marked `failed`, the same way as a crashed run's.
pub fn run_ingest<T>(
    lake: &Lake,
    run_id: &str,
    kind: &str,
    options: serde_json::Value,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    begin(lake, run_id, &format!("ingest {kind}"), kind, options)?;
    let before = lake.changes();
    let result = f();
    if let Err(e) = &result {
        let rel = path_of(run_id);
        if lake.changes() == before {
            let _ = lake.remove_file(&rel);
        } else if let Ok(Some(j)) = lake.get_json::<Journal>(&rel) {
            let note = format!("the run failed: {e}");
            let written = account(lake, &j, run_id, "failed", note);
            if let Err(w) = written {
                crate::progress::log(&format!(
                    "could not write the manifest of failed run {run_id}: {w}"
                ));
            }
        }
    }
    result
}

/// Rewrite the journal as `recorded`: everything but the ledger and the manifest is
/// published. Nothing is written for a run without a `started` journal (a library caller
/// that did not ask for one).
pub fn recorded(lake: &Lake, m: &Manifest, kind: &str, files: &[FileToRead]) -> Result<()> {
    let rel = path_of(&m.run_id);
    let Some(mut j) = lake.get_json::<Journal>(&rel)? else {
        return Ok(());
    };
    j.phase = "recorded".into();
    j.kind = kind.to_string();
    j.manifest = Some(m.clone());
    j.files = files
        .iter()
        .map(|f| InputFile {
            path: f.path.display().to_string(),
            bytes: f.bytes,
            sha256: f.sha256.clone(),
            status: "ingested".into(),
        })
        .collect();
    lake.put_json(&rel, &j)
}

/// Delete the journal of a run whose manifest is written.
pub fn end(lake: &Lake, run_id: &str) -> Result<()> {
    lake.remove_file(&path_of(run_id))
}

/// Turn every journal left by a crashed run into its `crashed` manifest (see the module
/// documentation). Called by a writer holding the lease, so no journal belongs to a live
/// run. Returns the run IDs recovered.
pub fn recover(lake: &Lake, by_run: &str) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for name in lake.list_dir(PENDING_DIR)? {
        let Some(run_id) = name.strip_suffix(".json") else {
            continue;
        };
        if run_id == by_run {
            continue;
        }
        let rel = path_of(run_id);
        let Some(j) = lake.get_json::<Journal>(&rel)? else {
            continue;
        };
        account(lake, &j, by_run, "crashed", String::new())?;
        crate::progress::log(&format!(
            "{} (run {}) had crashed; its manifest is written now, marked crashed",
            j.command, j.run_id
        ));
        done.push(j.run_id);
    }
    Ok(done)
}

/// Write the manifest of a run that did not finish from its journal, then delete the
/// journal.
fn account(lake: &Lake, j: &Journal, by_run: &str, status: &str, note: String) -> Result<()> {
    let mut m = match (j.phase.as_str(), j.manifest.clone()) {
        ("recorded", Some(m)) => complete_recorded(lake, j, m, by_run)?,
        _ => crashed_before_recording(lake, j, by_run)?,
    };
    m.status = Some(status.to_string());
    if !note.is_empty() {
        m.notes.push(note);
    }
    m.redact();
    lake.put_json(&format!("_runs/{}.json", m.run_id), &m)?;
    lake.remove_file(&path_of(&j.run_id))
}

fn stamp(m: &mut Manifest, by_run: &str, note: String) {
    m.status = Some("crashed".into());
    m.ended_at = chrono::Utc::now().to_rfc3339();
    m.notes.push(note);
    m.notes.push(format!("manifest written by run {by_run}"));
}

fn complete_recorded(lake: &Lake, j: &Journal, mut m: Manifest, by_run: &str) -> Result<Manifest> {
    let mut ledger = Ledger::load(lake, &j.kind)?;
    let files: Vec<FileToRead> = j
        .files
        .iter()
        .map(|f| FileToRead {
            path: f.path.clone().into(),
            sha256: f.sha256.clone(),
            bytes: f.bytes,
        })
        .collect();
    let missing = files
        .iter()
        .filter(|f| !ledger.files.contains_key(&f.sha256))
        .count();
    if missing > 0 {
        ledger.record(files, &j.run_id);
        ledger.save(lake, &j.kind)?;
    }
    stamp(
        &mut m,
        by_run,
        format!(
            "the run died after publishing everything it staged, before its manifest; {missing} of its {} files were added to the ledger afterwards",
            j.files.len()
        ),
    );
    Ok(m)
}

fn crashed_before_recording(lake: &Lake, j: &Journal, by_run: &str) -> Result<Manifest> {
    let mut m = Manifest::start(&j.run_id, &j.command, j.options.clone());
    m.started_at = j.started_at.clone();
    m.counts.insert("read".into(), 0);
    if j.kind == "usage" {
        let (mut new, mut restated, mut unchanged) = (0, 0, 0);
        for month in crate::ingest::usage::staged_months(lake)? {
            for file in crate::ingest::usage::month_files(lake, &month)? {
                let Some(meta) = lake.parquet_metadata(&file)? else {
                    continue;
                };
                let get = |k: &str| meta.iter().find(|(key, _)| key == k).map(|(_, v)| v);
                if get("cspcost.run_id").map(String::as_str) != Some(j.run_id.as_str()) {
                    continue;
                }
                let counts = get(INGEST_COUNTS_KEY).map(|v| parse_counts(v));
                let (n, r, u) = counts.unwrap_or((0, 0, 0));
                new += n;
                restated += r;
                unchanged += u;
                m.partitions.push(PartitionSummary {
                    path: file,
                    rows: n + r + u,
                    billed_cost: None,
                    action: "written".into(),
                });
            }
        }
        m.counts.insert("published_new".into(), new);
        m.counts.insert("published_restated".into(), restated);
        m.counts.insert("published_unchanged".into(), unchanged);
    }
    // Its quarantine file, if it got published, is orphaned: the records in it are read and
    // quarantined again by the next ingest of the same files.
    let quarantine = format!("quarantine/stage=ingest/run={}/part-0.parquet", j.run_id);
    if lake.exists(&quarantine) {
        lake.remove_file(&quarantine)?;
        m.notes.push(format!(
            "removed {quarantine}: its records are quarantined again by the next ingest"
        ));
    }
    let note = format!(
        "the run died before recording its files in the ledger ({} partitions of it were published): the next ingest of the same files reads and counts them again",
        m.partitions.len()
    );
    stamp(&mut m, by_run, note);
    Ok(m)
}

/// `new=N;restated=R;unchanged=U` as written by the usage merge.
pub fn format_counts(new: u64, restated: u64, unchanged: u64) -> String {
    format!("new={new};restated={restated};unchanged={unchanged}")
}

fn parse_counts(text: &str) -> (u64, u64, u64) {
    let mut out = (0, 0, 0);
    for part in text.split(';') {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let v = v.parse().unwrap_or(0);
        match k {
            "new" => out.0 = v,
            "restated" => out.1 = v,
            "unchanged" => out.2 = v,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_counts_round_trip() {
        assert_eq!(parse_counts(&format_counts(3, 2, 1)), (3, 2, 1));
        assert_eq!(parse_counts("garbage"), (0, 0, 0));
    }
}
