//! What a pull writes under `--out DIR` (pull.md, failure rules): every file through a
//! hidden temporary name and a rename; the pages of one window (or one price download) in
//! a [`PageSet`] under `.partial/`, moved into place only when the set is complete; and the
//! run's manifest `DIR/_pull/<run_id>.json`, written last.
//!
//! `ingest` skips hidden files and directories, so neither temporary files nor `.partial/`
//! are ever read. A set's move is journalled (a `.complete` marker listing its files): a
//! run killed in the middle of a move has the move finished by [`recover`] before the next
//! run touches that directory.

use super::http::{Client, RequestRecord};
use super::{Endpoints, PullOptions};
use crate::error::{Error, Result};
use crate::faults::maybe_crash;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Temporary files made by this process (unique names).
static TEMPS: AtomicU64 = AtomicU64::new(0);

/// A file written, as the manifest lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileRecord {
    /// Path relative to `--out`, `/`-separated.
    pub path: String,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// Size.
    pub bytes: u64,
}

/// The output directory and the files written into it this run.
#[derive(Debug)]
pub struct OutDir {
    root: PathBuf,
    files: Mutex<Vec<FileRecord>>,
}

/// Write `bytes` to `path` through a hidden temporary file in the same directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        TEMPS.fetch_add(1, Ordering::Relaxed)
    ));
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl OutDir {
    /// Open (create) `root`.
    pub fn new(root: &Path) -> Result<OutDir> {
        std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        Ok(OutDir {
            root: root.to_path_buf(),
            files: Mutex::new(Vec::new()),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Write one file (relative path) atomically and list it.
    pub fn write_file(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.root.join(rel), bytes)?;
        self.note(rel, bytes);
        Ok(())
    }

    fn note(&self, rel: &str, bytes: &[u8]) {
        if let Ok(mut f) = self.files.lock() {
            f.push(FileRecord {
                path: rel.to_string(),
                sha256: sha256_hex(bytes),
                bytes: bytes.len() as u64,
            });
        }
    }

    /// Files written so far, sorted by path.
    pub fn files(&self) -> Vec<FileRecord> {
        let mut f = self.files.lock().map(|f| f.clone()).unwrap_or_default();
        f.sort_by(|a, b| a.path.cmp(&b.path));
        f
    }
}

/// How a set names its pages: `first` for page 1 when given, else `{prefix}{n:0width}.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Naming {
    /// Name of page 1 (`customers.json`), if it differs from the pattern.
    pub first: Option<String>,
    /// Prefix of numbered pages (`<window>-page-`, `retail-`).
    pub prefix: String,
    /// Digits of the page number.
    pub width: usize,
}

impl Naming {
    /// File name of page `n` (1-based).
    pub fn name(&self, n: usize) -> String {
        match (&self.first, n) {
            (Some(f), 1) => f.clone(),
            _ => format!("{}{:0w$}.json", self.prefix, n, w = self.width),
        }
    }

    /// Whether `name` is one of this set's page names (any number).
    fn matches(&self, name: &str) -> bool {
        if self.first.as_deref() == Some(name) {
            return true;
        }
        name.strip_prefix(&self.prefix)
            .and_then(|r| r.strip_suffix(".json"))
            .map(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or(false)
    }
}

/// The journal of a set being moved into place.
#[derive(Serialize, Deserialize)]
struct Marker {
    naming: Naming,
    files: Vec<String>,
}

/// Pages that become visible together.
#[derive(Debug)]
pub struct PageSet<'a> {
    out: &'a OutDir,
    /// Final directory, relative to the out dir.
    dir_rel: String,
    partial: PathBuf,
    naming: Naming,
    pages: Vec<(String, String, u64)>,
}

impl<'a> PageSet<'a> {
    /// Start a set of pages for `dir_rel` (relative to `--out`), staged under
    /// `dir_rel/.partial/<id>/`; leftovers of a killed run there are discarded.
    pub fn begin(out: &'a OutDir, dir_rel: &str, id: &str, naming: Naming) -> Result<PageSet<'a>> {
        let dir = out.root.join(dir_rel);
        recover(out, dir_rel)?;
        let partial = dir.join(".partial").join(id);
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(|e| Error::io(&partial, e))?;
        }
        std::fs::create_dir_all(&partial).map_err(|e| Error::io(&partial, e))?;
        Ok(PageSet {
            out,
            dir_rel: dir_rel.to_string(),
            partial,
            naming,
            pages: Vec::new(),
        })
    }

    /// Stage page `n` (1-based, in the order fetched), bytes as received.
    pub fn add(&mut self, n: usize, bytes: &[u8]) -> Result<()> {
        let name = self.naming.name(n);
        write_atomic(&self.partial.join(&name), bytes)?;
        self.pages
            .push((name, sha256_hex(bytes), bytes.len() as u64));
        maybe_crash("pull-page");
        Ok(())
    }

    /// Pages staged so far.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Publish the set: journal it, move every page into place, remove pages of an earlier
    /// download of the same set that this one no longer has, drop the staging directory.
    pub fn commit(self) -> Result<()> {
        let marker = Marker {
            naming: self.naming.clone(),
            files: self.pages.iter().map(|p| p.0.clone()).collect(),
        };
        let text = serde_json::to_vec(&marker).map_err(|e| Error::Json {
            path: self.partial.display().to_string(),
            source: e,
        })?;
        write_atomic(&self.partial.join(".complete"), &text)?;
        maybe_crash("pull-commit");
        for (name, sha256, bytes) in &self.pages {
            self.out
                .files
                .lock()
                .map(|mut f| {
                    f.push(FileRecord {
                        path: join_rel(&self.dir_rel, name),
                        sha256: sha256.clone(),
                        bytes: *bytes,
                    })
                })
                .ok();
        }
        finish_move(&self.out.root.join(&self.dir_rel), &self.partial, &marker)
    }
}

fn join_rel(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Move a journalled set into `dir` (idempotent: pages already moved are skipped).
fn finish_move(dir: &Path, partial: &Path, marker: &Marker) -> Result<()> {
    for name in &marker.files {
        let from = partial.join(name);
        if from.exists() {
            let to = dir.join(name);
            std::fs::rename(&from, &to).map_err(|e| Error::io(&to, e))?;
            maybe_crash("pull-move");
        }
    }
    let keep: BTreeSet<&String> = marker.files.iter().collect();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if marker.naming.matches(&name) && !keep.contains(&name) {
            std::fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
        }
    }
    std::fs::remove_dir_all(partial).map_err(|e| Error::io(partial, e))?;
    let parent = dir.join(".partial");
    // Empty `.partial/` left behind is harmless (hidden); remove it when it is empty.
    let _ = std::fs::remove_dir(parent);
    Ok(())
}

/// Finish the moves a killed run journalled under `dir_rel/.partial/` and discard the
/// staging of sets it never completed.
pub fn recover(out: &OutDir, dir_rel: &str) -> Result<()> {
    let dir = out.root.join(dir_rel);
    let partial_root = dir.join(".partial");
    let Ok(entries) = std::fs::read_dir(&partial_root) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let partial = e.path();
        let marker_path = partial.join(".complete");
        match std::fs::read(&marker_path) {
            Ok(text) => {
                let marker: Marker = serde_json::from_slice(&text).map_err(|err| Error::Json {
                    path: marker_path.display().to_string(),
                    source: err,
                })?;
                for name in &marker.files {
                    if let Ok(bytes) = std::fs::read(partial.join(name)) {
                        out.note(&join_rel(dir_rel, name), &bytes);
                    }
                }
                finish_move(&dir, &partial, &marker)?;
            }
            Err(_) => {
                std::fs::remove_dir_all(&partial).map_err(|err| Error::io(&partial, err))?;
            }
        }
    }
    let _ = std::fs::remove_dir(&partial_root);
    Ok(())
}

/// A subscription listed but not pulled.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    /// Customer tenant.
    pub tenant: String,
    /// Subscription ID.
    pub subscription: String,
    /// Its offer (`offerId`).
    pub offer_id: String,
    /// Why.
    pub reason: String,
}

/// One customer's line of the summary (pull.md, failure rules).
#[derive(Clone, Debug, Default, Serialize)]
pub struct CustomerSummary {
    /// Tenant.
    pub tenant: String,
    /// Company name from Partner Center.
    pub company: String,
    /// Subscriptions whose utilization was pulled.
    pub subscriptions_pulled: u64,
    /// Subscriptions skipped (not legacy Azure CSP).
    pub subscriptions_skipped: u64,
    /// Subscriptions that failed.
    pub subscriptions_failed: u64,
    /// Pages written.
    pub pages: u64,
    /// Records on them.
    pub records: u64,
    /// Retried attempts of its requests.
    pub retries: u64,
}

/// Counts of the run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    /// Logical requests.
    pub requests: u64,
    /// Attempts beyond the first.
    pub retries: u64,
    /// Pages written.
    pub pages: u64,
    /// Items on them.
    pub records: u64,
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Partner Center customers seen.
    pub customers: u64,
    /// Customers pulled.
    pub customers_selected: u64,
    /// Subscriptions pulled.
    pub subscriptions_pulled: u64,
    /// Subscriptions skipped.
    pub subscriptions_skipped: u64,
    /// Subscriptions failed.
    pub subscriptions_failed: u64,
    /// Utilization windows completed.
    pub windows: u64,
    /// Records of a consumption day pulled again with a smaller quantity than an earlier
    /// window had (README: a day reported across two windows).
    pub smaller_later_records: u64,
}

/// `DIR/_pull/<run_id>.json`.
#[derive(Clone, Debug, Serialize)]
pub struct PullManifest {
    /// Run ID.
    pub run_id: String,
    /// `pull usage`, ...
    pub command: String,
    /// Start (UTC).
    pub started_at: String,
    /// End (UTC).
    pub finished_at: String,
    /// `ok`, `partial` (some subscriptions failed) or `failed`.
    pub status: String,
    /// The error that stopped the run.
    pub error: Option<String>,
    /// Options as validated.
    pub options: serde_json::Value,
    /// Endpoint URLs (never credentials).
    pub endpoints: serde_json::Value,
    /// MS-CorrelationId of every request.
    pub correlation_id: String,
    /// Counts.
    pub counts: Counts,
    /// Per customer.
    pub customers: Vec<CustomerSummary>,
    /// Subscriptions not pulled, with their offer.
    pub skipped: Vec<Skipped>,
    /// Subscriptions that failed after their retries.
    pub failures: Vec<String>,
    /// Warnings (Count mismatches, registered tenants unknown to Partner Center, ...).
    pub warnings: Vec<String>,
    /// Every logical request.
    pub requests: Vec<RequestRecord>,
    /// Every file written, with its SHA-256.
    pub files: Vec<FileRecord>,
    #[serde(skip)]
    started: Option<std::time::Instant>,
}

impl PullManifest {
    /// Start a manifest.
    pub fn start(
        run_id: &str,
        command: &str,
        opts: &PullOptions,
        endpoints: &Endpoints,
    ) -> PullManifest {
        PullManifest {
            run_id: run_id.to_string(),
            command: command.to_string(),
            started_at: now_text(),
            finished_at: String::new(),
            status: "running".into(),
            error: None,
            options: opts.echo.clone(),
            endpoints: endpoints.echo(),
            correlation_id: String::new(),
            counts: Counts::default(),
            customers: Vec::new(),
            skipped: Vec::new(),
            failures: Vec::new(),
            warnings: Vec::new(),
            requests: Vec::new(),
            files: Vec::new(),
            started: Some(std::time::Instant::now()),
        }
    }

    /// The manifest of a dry run (never written).
    pub fn dry(opts: &PullOptions, endpoints: &Endpoints) -> PullManifest {
        let mut m = PullManifest::start("dry-run", "pull", opts, endpoints);
        m.status = "dry-run".into();
        m
    }

    /// Seconds since the start.
    pub fn elapsed_secs(&self) -> f64 {
        self.started
            .map(|s| s.elapsed().as_secs_f64())
            .unwrap_or(0.0)
    }

    /// Fill requests, files and counts, then write the manifest (last file of the run).
    pub fn finish(&mut self, client: &Client, out: &OutDir, error: Option<&Error>) -> Result<()> {
        self.finished_at = now_text();
        self.correlation_id = client.correlation_id().to_string();
        self.requests = client.records();
        self.files = out.files();
        self.error = error.map(|e| e.to_string());
        self.status = match (error, self.failures.is_empty()) {
            (Some(_), _) => "failed",
            (None, false) => "partial",
            (None, true) => "ok",
        }
        .into();
        self.counts.requests = self.requests.len() as u64;
        self.counts.retries = client.retries();
        self.counts.files = self.files.len() as u64;
        self.counts.bytes = self.files.iter().map(|f| f.bytes).sum();
        self.customers.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        self.skipped
            .sort_by(|a, b| (&a.tenant, &a.subscription).cmp(&(&b.tenant, &b.subscription)));
        self.failures.sort();
        let path = out.root.join("_pull").join(format!("{}.json", self.run_id));
        let text = serde_json::to_vec_pretty(self).map_err(|e| Error::Json {
            path: path.display().to_string(),
            source: e,
        })?;
        maybe_crash("pull-manifest");
        write_atomic(&path, &text)
    }
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_set_appears_whole_and_replaces_its_older_pages() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutDir::new(tmp.path()).unwrap();
        let naming = Naming {
            first: None,
            prefix: "w1-page-".into(),
            width: 4,
        };
        let mut s = PageSet::begin(&out, "a", "w1", naming.clone()).unwrap();
        for n in 1..=3 {
            s.add(n, format!("page {n}").as_bytes()).unwrap();
        }
        assert_eq!(names(&tmp.path().join("a")), [".partial"]);
        s.commit().unwrap();
        assert_eq!(
            names(&tmp.path().join("a")),
            [
                "w1-page-0001.json",
                "w1-page-0002.json",
                "w1-page-0003.json"
            ]
        );
        std::fs::write(tmp.path().join("a/w2-page-0001.json"), "other").unwrap();
        let mut s = PageSet::begin(&out, "a", "w1", naming).unwrap();
        s.add(1, b"page 1").unwrap();
        s.commit().unwrap();
        assert_eq!(
            names(&tmp.path().join("a")),
            ["w1-page-0001.json", "w2-page-0001.json"]
        );
        assert_eq!(out.files().len(), 4);
    }

    #[test]
    fn recover_finishes_a_journalled_move_and_drops_an_unfinished_set() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutDir::new(tmp.path()).unwrap();
        let dir = tmp.path().join("a");
        let naming = Naming {
            first: Some("c.json".into()),
            prefix: "c-page-".into(),
            width: 4,
        };
        std::fs::create_dir_all(dir.join(".partial/x")).unwrap();
        std::fs::create_dir_all(dir.join(".partial/y")).unwrap();
        std::fs::write(dir.join(".partial/x/c-page-0002.json"), "2").unwrap();
        std::fs::write(dir.join("c.json"), "1").unwrap();
        let marker = Marker {
            naming,
            files: vec!["c.json".into(), "c-page-0002.json".into()],
        };
        std::fs::write(
            dir.join(".partial/x/.complete"),
            serde_json::to_vec(&marker).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.join(".partial/y/c-page-0001.json"), "junk").unwrap();
        recover(&out, "a").unwrap();
        assert_eq!(names(&dir), ["c-page-0002.json", "c.json"]);
        assert_eq!(out.files().len(), 1);
    }
}
