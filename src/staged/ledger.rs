//! The ingest ledger (`staged/_ledger/<kind>.json`): the SHA-256 of every file content
//! ingested per kind, so that re-ingesting an identical file is a no-op (spec README, stage 1).

use crate::error::Result;
use crate::store::Lake;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One ledger entry: a file content already ingested.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Path it was first ingested from.
    pub path: String,
    /// Bytes.
    pub bytes: u64,
    /// Run that ingested it.
    pub run_id: String,
}

/// Digests of every file ingested for one kind (`staged/_ledger/<kind>.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Ledger {
    /// SHA-256 -> entry.
    pub files: BTreeMap<String, LedgerEntry>,
}

fn ledger_path(kind: &str) -> String {
    format!("staged/_ledger/{kind}.json")
}

impl Ledger {
    /// Load the ledger of `kind`.
    pub fn load(lake: &Lake, kind: &str) -> Result<Ledger> {
        Ok(lake.get_json(&ledger_path(kind))?.unwrap_or_default())
    }

    /// Save the ledger of `kind` (after the staged tables it describes).
    pub fn save(&self, lake: &Lake, kind: &str) -> Result<()> {
        lake.put_json(&ledger_path(kind), self)
    }
}

/// A file this run reads.
#[derive(Clone, Debug)]
pub struct FileToRead {
    /// Where it is.
    pub path: PathBuf,
    /// SHA-256, hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

impl Ledger {
    /// Record the files a run read, so that the same contents are skipped next time.
    pub fn record(&mut self, files: Vec<FileToRead>, run_id: &str) {
        for f in files {
            self.files.insert(
                f.sha256,
                LedgerEntry {
                    path: f.path.display().to_string(),
                    bytes: f.bytes,
                    run_id: run_id.to_string(),
                },
            );
        }
    }
}
