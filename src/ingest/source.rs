//! Input files: paths expanded (directories recursively, in sorted path order), `.gz`
//! decompressed, and the per-kind ledger of SHA-256 digests that makes re-ingesting an
//! identical file a no-op.

use crate::emit::manifest::InputFile;
use crate::error::{Error, Result};
use crate::staged::ledger::{FileToRead, Ledger};
use crate::store::sha256_file;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Expand files and directories into a sorted list of files. Missing paths, broken links
/// and symbolic-link loops are collected and reported together (exit 2).
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    let mut walked = HashMap::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut Vec::new(), &mut walked, &mut files, &mut problems)?;
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            problems.push(format!("{}: no such file or directory", p.display()));
        }
    }
    if !problems.is_empty() {
        return Err(Error::BadInput { problems });
    }
    Ok(files)
}

/// A directory's identity whatever path (or symbolic link) reaches it.
type DirId = (u64, u64);

fn dir_id(dir: &Path) -> Result<DirId> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    Ok((m.dev(), m.ino()))
}

/// Walk `dir` in sorted order. Directories are told apart by (device, inode), not by path:
/// a link back to a directory being walked (`loop -> ..`) is a loop, reported naming the
/// link instead of recursing until memory runs out; a directory reached a second time
/// through another link is read once.
fn walk(
    dir: &Path,
    ancestors: &mut Vec<(DirId, PathBuf)>,
    walked: &mut HashMap<DirId, PathBuf>,
    out: &mut Vec<PathBuf>,
    problems: &mut Vec<String>,
) -> Result<()> {
    let id = dir_id(dir)?;
    if let Some((_, first)) = ancestors.iter().find(|(a, _)| *a == id) {
        problems.push(format!(
            "{}: symbolic link loop: it leads back to {}, which contains it",
            dir.display(),
            first.display()
        ));
        return Ok(());
    }
    if let Some(first) = walked.get(&id) {
        crate::progress::log(&format!(
            "warning: {} is the directory {} already read; its files are read once",
            dir.display(),
            first.display()
        ));
        return Ok(());
    }
    walked.insert(id, dir.to_path_buf());
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .map(|n| n.to_string_lossy().starts_with('.'))
                .unwrap_or(false)
        })
        .collect();
    entries.sort();
    ancestors.push((id, dir.to_path_buf()));
    for p in entries {
        if p.is_dir() {
            walk(&p, ancestors, walked, out, problems)?;
        } else if p.is_symlink() && !p.exists() {
            problems.push(format!(
                "{}: broken symbolic link (its target does not exist)",
                p.display()
            ));
        } else {
            out.push(p);
        }
    }
    ancestors.pop();
    Ok(())
}

/// Digest every file; split into the ones to read and the ones identical to a file already
/// ingested (or to an earlier file of this run). Returns (to_read, manifest entries).
pub fn plan_files(files: &[PathBuf], ledger: &Ledger) -> Result<(Vec<FileToRead>, Vec<InputFile>)> {
    let mut to_read = Vec::new();
    let mut inputs = Vec::new();
    let mut planner = FilePlanner::new(ledger);
    for p in files {
        let (sha, bytes) = sha256_file(p)?;
        let (input, read) = planner.decide(p, sha, bytes);
        inputs.push(input);
        to_read.extend(read);
    }
    Ok((to_read, inputs))
}

/// The ledger decision of [`plan_files`], one file at a time, for a caller that digests each
/// file as it reads it ([`read_hashed`]).
pub struct FilePlanner<'l> {
    ledger: &'l Ledger,
    /// Digest -> first path of this run with that content.
    seen: BTreeMap<String, String>,
}

impl<'l> FilePlanner<'l> {
    /// Nothing seen yet in this run.
    pub fn new(ledger: &'l Ledger) -> FilePlanner<'l> {
        FilePlanner {
            ledger,
            seen: BTreeMap::new(),
        }
    }

    /// The manifest entry of a file with this digest, and the file to read when its content
    /// was neither ingested before nor met earlier in this run.
    pub fn decide(&mut self, p: &Path, sha: String, bytes: u64) -> (InputFile, Option<FileToRead>) {
        let path = p.display().to_string();
        let mut read = None;
        let status = if let Some(e) = self.ledger.files.get(&sha) {
            format!("skipped: identical to {} (run {})", e.path, e.run_id)
        } else if let Some(first) = self.seen.get(&sha) {
            format!("skipped: identical to {first} in this run")
        } else {
            self.seen.insert(sha.clone(), path.clone());
            read = Some(FileToRead {
                path: p.to_path_buf(),
                sha256: sha.clone(),
                bytes,
            });
            "ingested".to_string()
        };
        let input = InputFile {
            path,
            bytes,
            sha256: sha,
            status,
        };
        (input, read)
    }
}
