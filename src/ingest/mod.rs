//! Stage 1, ingest: raw Microsoft and reference files into staged Parquet under the lake,
//! every bad record quarantined with a reason (inputs.md).

mod big_merge;
pub mod json_text;
pub mod orders;
pub mod prices;
pub mod reference;
pub mod source;
mod staged_order;
mod text_refs;
pub mod usage;
pub mod usage_rows;
pub mod utilization;

use crate::emit::manifest::Manifest;
use crate::emit::quarantine::{count_by_reason, write_quarantine};
use crate::error::Result;
use crate::model::reason::QuarantineRecord;
use crate::store::Lake;
use std::path::PathBuf;

/// Kinds of input, in the order a pipeline ingests them (reference data first, usage last but
/// one, so that prices and mappings are there before anything is rated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// Reference CSVs.
    Reference,
    /// Price sheets.
    Prices,
    /// Utilization dumps.
    Usage,
    /// Reservation orders.
    Reservations,
}

impl InputKind {
    /// Name as in the CLI (`ingest <kind>`) and the ledger (`staged/_ledger/<kind>.json`).
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::Reference => "reference",
            InputKind::Prices => "prices",
            InputKind::Usage => "usage",
            InputKind::Reservations => "reservations",
        }
    }
}

/// One `ingest <kind> PATH...`, from flags or from a pipeline's `[ingest]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestRequest {
    /// What the files are.
    pub kind: InputKind,
    /// Files and directories, read recursively in sorted path order.
    pub paths: Vec<PathBuf>,
}

/// Run one ingest inside its crash journal (a run killed after changing the lake is reported
/// by the next one): the kind's reader, then its manifest.
pub fn ingest(lake: &Lake, request: &IngestRequest, run_id: &str) -> Result<Manifest> {
    let paths = &request.paths;
    let options = serde_json::json!({ "paths": paths });
    crate::emit::journal::run_ingest(
        lake,
        run_id,
        request.kind.as_str(),
        options,
        || match request.kind {
            InputKind::Reference => reference::ingest_reference(lake, paths, run_id),
            InputKind::Prices => prices::ingest_prices(lake, paths, run_id),
            InputKind::Usage => usage::ingest_usage(lake, paths, run_id),
            InputKind::Reservations => orders::ingest_orders(lake, paths, run_id),
        },
    )
}

/// The start every ingest shares: its manifest (command and paths) and the files the paths
/// expand to.
fn begin_ingest(
    command: &str,
    paths: &[PathBuf],
    run_id: &str,
) -> Result<(Manifest, Vec<PathBuf>)> {
    let m = Manifest::start(run_id, command, serde_json::json!({ "paths": paths }));
    Ok((m, source::expand_paths(paths)?))
}

/// Why one input record is quarantined: its reason and the sentence naming field and value.
struct RecordProblem {
    reason: crate::model::reason::ReasonCode,
    detail: String,
}

/// The quarantine record of a CSV row the reader could not split; a read failure of the
/// file itself stops the run instead.
fn unreadable_csv_row(
    path: &std::path::Path,
    e: csv::Error,
    line: i64,
) -> Result<QuarantineRecord> {
    let e = crate::store::input::csv_row_error(path, e)?;
    Ok(QuarantineRecord::of_row(
        crate::model::reason::ReasonCode::Malformed,
        format!("CSV row is not readable: {e}"),
        &path.display().to_string(),
        line,
        String::new(),
    ))
}

/// An ingest's files weighed against its ledger.
struct PlannedIngest {
    /// The ledger of files read before.
    ledger: crate::staged::ledger::Ledger,
    /// The files to read now (new or changed).
    to_read: Vec<crate::staged::ledger::FileToRead>,
}

/// Load the `ledger_kind` ledger and decide which `files` to read; every file goes into
/// the manifest's inputs.
fn plan_ingest(
    lake: &Lake,
    m: &mut Manifest,
    files: &[PathBuf],
    ledger_kind: &str,
) -> Result<PlannedIngest> {
    let ledger = crate::staged::ledger::Ledger::load(lake, ledger_kind)?;
    let (to_read, inputs) = source::plan_files(files, &ledger)?;
    m.inputs = inputs;
    Ok(PlannedIngest { ledger, to_read })
}

/// Record in the manifest a staged table written whole.
fn record_written(m: &mut Manifest, path: &str, rows: usize) {
    m.partitions.push(crate::emit::manifest::PartitionSummary {
        path: path.into(),
        rows: rows as u64,
        billed_cost: None,
        action: "written".into(),
    });
}

/// What one ingest run found, for its manifest.
#[derive(Clone, Copy, Debug, Default)]
pub struct IngestCounts {
    /// Records read.
    pub read: u64,
    /// New records staged.
    pub new: u64,
    /// Records that replaced an earlier version.
    pub restated: u64,
    /// Records identical to what was staged.
    pub unchanged: u64,
}

/// Record the counts and quarantine by reason, and check `read = new + restated +
/// unchanged + quarantined` (a run that does not balance fails instead of writing).
pub fn record_counts(
    m: &mut Manifest,
    c: IngestCounts,
    quarantine: &[QuarantineRecord],
) -> crate::Result<()> {
    m.counts.insert("read".into(), c.read);
    m.counts.insert("new".into(), c.new);
    m.counts.insert("restated".into(), c.restated);
    m.counts.insert("unchanged".into(), c.unchanged);
    m.quarantined = count_by_reason(quarantine);
    let stage = m.command.clone();
    m.check_balance(&stage, "read", &["new", "restated", "unchanged"])
}

/// The end of every ingest, after its staged table is written: the run's quarantine log,
/// the ledger of files read (so identical files are skipped next time), a log line, and
/// the manifest, written last.
pub fn finish_ingest(
    lake: &Lake,
    m: Manifest,
    mut ledger: crate::staged::ledger::Ledger,
    ledger_kind: &str,
    quarantine: &[QuarantineRecord],
    to_read: Vec<crate::staged::ledger::FileToRead>,
    started: std::time::Instant,
) -> crate::Result<Manifest> {
    let run_id = m.run_id.clone();
    if !quarantine.is_empty() {
        write_quarantine(
            lake,
            &format!("quarantine/stage=ingest/run={run_id}/part-0.parquet"),
            &run_id,
            quarantine,
        )?;
    }
    // Everything staged is published: the journal now holds the whole manifest, so a
    // crash from here on still leaves one manifest with these counts (emit::journal).
    crate::emit::journal::recorded(lake, &m, ledger_kind, &to_read)?;
    ledger.record(to_read, &run_id);
    ledger.save(lake, ledger_kind)?;
    crate::faults::maybe_crash("ingest-ledger");
    let c = |k: &str| m.counts.get(k).copied().unwrap_or(0);
    crate::progress::log(&format!(
        "{}: {} read, {} new, {} restated, {} unchanged, {} quarantined",
        m.command,
        c("read"),
        c("new"),
        c("restated"),
        c("unchanged"),
        m.quarantined_total()
    ));
    let m = m.finish(lake, started)?;
    crate::emit::journal::end(lake, &run_id)?;
    Ok(m)
}
