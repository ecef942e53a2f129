//! Run manifests (`_runs/<run_id>.json`, outputs.md): what ran, on which inputs, with which
//! counts. Written last; a run whose counts do not balance fails instead.

use crate::error::{Error, Result};
use crate::store::Lake;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One input file of a run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InputFile {
    /// Path as given (or found in a directory).
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// `ingested`, or `skipped: identical to <earlier path>`.
    pub status: String,
}

/// One partition written (or deleted) by a run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionSummary {
    /// Lake-relative path of the file.
    pub path: String,
    /// Rows.
    pub rows: u64,
    /// Sum of `BilledCost` (cost partitions), as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed_cost: Option<String>,
    /// `written`, `unchanged` or `deleted`.
    pub action: String,
}

/// A run's manifest.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct Manifest {
    /// Run ID (sortable by time).
    pub run_id: String,
    /// Command, e.g. `ingest usage`.
    pub command: String,
    /// Options as given.
    pub options: serde_json::Value,
    /// cspcost version.
    pub version: String,
    /// Start, RFC 3339.
    pub started_at: String,
    /// End, RFC 3339.
    pub ended_at: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Input files.
    #[serde(default)]
    pub inputs: Vec<InputFile>,
    /// Counts (`read`, `new`, `rated`, ...).
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
    /// Quarantined records by reason.
    #[serde(default)]
    pub quarantined: BTreeMap<String, u64>,
    /// Partitions written.
    #[serde(default)]
    pub partitions: Vec<PartitionSummary>,
    /// Per-month input fingerprints (rate) or touched months (ingest).
    #[serde(default)]
    pub months: BTreeMap<String, String>,
    /// Sentences for the operator.
    #[serde(default)]
    pub notes: Vec<String>,
    /// `crashed` for the manifest of a run that died, written by the next writer from its
    /// intent journal ([`crate::emit::journal`]); absent for a run that finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A new run ID: UTC time to the microsecond plus the process ID, sortable.
pub fn new_run_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%6fZ"),
        std::process::id()
    )
}

impl Manifest {
    /// Start a manifest for `command`.
    pub fn start(run_id: &str, command: &str, options: serde_json::Value) -> Manifest {
        Manifest {
            run_id: run_id.to_string(),
            command: command.to_string(),
            options,
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: chrono::Utc::now().to_rfc3339(),
            ..Default::default()
        }
    }

    /// Sum of the quarantine counts.
    pub fn quarantined_total(&self) -> u64 {
        self.quarantined.values().sum()
    }

    /// Check `lhs = sum(rhs) + quarantined` and fail with the equation when it does not hold.
    pub fn check_balance(&self, stage: &str, lhs: &str, rhs: &[&str]) -> Result<()> {
        let left = self.counts.get(lhs).copied().unwrap_or(0);
        let right: u64 = rhs
            .iter()
            .map(|k| self.counts.get(*k).copied().unwrap_or(0))
            .sum::<u64>()
            + self.quarantined_total();
        if left != right {
            let parts: Vec<String> = rhs
                .iter()
                .map(|k| format!("{k} {}", self.counts.get(*k).copied().unwrap_or(0)))
                .collect();
            return Err(Error::Unbalanced {
                stage: stage.to_string(),
                detail: format!(
                    "{lhs} {left} != {} + quarantined {}",
                    parts.join(" + "),
                    self.quarantined_total()
                ),
            });
        }
        Ok(())
    }

    /// Mask secrets in what came from the command line or config (a lake URL with a SAS
    /// token in `run`'s options, paths, notes), before the manifest is written.
    pub fn redact(&mut self) {
        crate::redact::redact_json(&mut self.options);
        for n in &mut self.notes {
            crate::redact::redact_string(n);
        }
        for i in &mut self.inputs {
            crate::redact::redact_string(&mut i.path);
        }
    }

    /// Stamp the end time and write `_runs/<run_id>.json`.
    pub fn finish(mut self, lake: &Lake, started: std::time::Instant) -> Result<Manifest> {
        self.ended_at = chrono::Utc::now().to_rfc3339();
        self.duration_ms = started.elapsed().as_millis() as u64;
        self.redact();
        lake.put_json(&format!("_runs/{}.json", self.run_id), &self)?;
        Ok(self)
    }
}

/// Every manifest in the lake, newest first (by start time, then run ID).
pub fn list_manifests(lake: &Lake) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for name in lake.list_dir("_runs")?.into_iter().rev() {
        if name.ends_with(".json") {
            if let Some(m) = lake.get_json::<Manifest>(&format!("_runs/{name}"))? {
                out.push(m);
            }
        }
    }
    let started = |m: &Manifest| chrono::DateTime::parse_from_rfc3339(&m.started_at).ok();
    out.sort_by(|a, b| (started(b), &b.run_id).cmp(&(started(a), &a.run_id)));
    Ok(out)
}

/// The newest manifest whose command is `command`.
pub fn last_manifest(lake: &Lake, command: &str) -> Result<Option<Manifest>> {
    Ok(list_manifests(lake)?
        .into_iter()
        .find(|m| m.command == command))
}
