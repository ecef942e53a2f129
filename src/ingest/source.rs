//! Input files: paths expanded (directories recursively, in sorted path order), `.gz`
//! decompressed, and the per-kind ledger of SHA-256 digests that makes re-ingesting an
//! identical file a no-op.

use crate::emit::manifest::InputFile;
use crate::error::{Error, Result};
use crate::store::sha256_file;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
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
        return Err(Error::Config { problems });
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

/// The file name without `.gz`, lowercase (used to tell formats apart).
pub fn logical_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.strip_suffix(".gz").map(str::to_string).unwrap_or(name)
}

/// A reader over the file's content, decompressing `.gz`.
pub fn open_reader(path: &Path) -> Result<Box<dyn Read + Send>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(decoded(path, BufReader::with_capacity(1 << 20, f)))
}

/// A reader over a file's bytes already in memory (see [`read_hashed`]), decompressing
/// `.gz` like [`open_reader`].
pub fn bytes_reader(path: &Path, bytes: Vec<u8>) -> Box<dyn Read + Send> {
    decoded(path, std::io::Cursor::new(bytes))
}

fn decoded<R: BufRead + Send + 'static>(path: &Path, inner: R) -> Box<dyn Read + Send> {
    let is_gz = path
        .extension()
        .map(|e| e.eq_ignore_ascii_case("gz"))
        .unwrap_or(false);
    if is_gz {
        Box::new(GzChecked(flate2::bufread::MultiGzDecoder::new(inner)))
    } else {
        Box::new(inner)
    }
}

/// Files up to this size are read into memory once, hashed from those bytes and parsed from
/// them ([`read_hashed`]); a larger file is hashed in a pass of its own and then parsed
/// streaming, so that memory stays bounded by this size and not by the file.
pub const READ_ONCE_MAX: u64 = 64 << 20;

/// A file's SHA-256 and size, and its bytes (as on disk, still compressed) when it was small
/// enough to keep.
pub struct HashedFile {
    /// SHA-256, hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// The content, or None for a file above [`READ_ONCE_MAX`] (to be read again).
    pub content: Option<Vec<u8>>,
}

/// Read a file once for both its ledger digest and its parse: the ledger decision is made on
/// the digest before anything of the file is staged, and the parser then reads the same
/// bytes from memory instead of from the file a second time.
pub fn read_hashed(path: &Path) -> Result<HashedFile> {
    use sha2::{Digest, Sha256};
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > READ_ONCE_MAX {
        let (sha256, bytes) = sha256_file(path)?;
        return Ok(HashedFile {
            sha256,
            bytes,
            content: None,
        });
    }
    let mut content = Vec::with_capacity(len as usize + 1);
    f.read_to_end(&mut content)
        .map_err(|e| Error::io(path, e))?;
    Ok(HashedFile {
        sha256: hex::encode(Sha256::digest(&content)),
        bytes: content.len() as u64,
        content: Some(content),
    })
}

/// Why a `.gz` file could not be decompressed: carried inside the `io::Error` so that
/// [`Error::io`] reports bad input (exit 2) rather than an I/O failure (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("not a complete gzip stream ({0}): the file is truncated or not gzip")]
pub struct BadGzip(String);

/// A gzip decoder whose complaints about the data become [`BadGzip`]; errors of the file
/// underneath (a failing disk) stay I/O errors.
struct GzChecked<R: BufRead>(flate2::bufread::MultiGzDecoder<R>);

impl<R: BufRead> Read for GzChecked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::ErrorKind::{InvalidData, InvalidInput, UnexpectedEof};
        self.0.read(buf).map_err(|e| match e.kind() {
            InvalidData | InvalidInput | UnexpectedEof => {
                std::io::Error::new(InvalidData, BadGzip(e.to_string()))
            }
            _ => e,
        })
    }
}

/// A CSV reader error that is really the file failing to read (a bad `.gz`, a disk error)
/// stops the run; any other is the row's own problem, returned to be quarantined.
pub fn csv_row_error(path: &Path, e: csv::Error) -> Result<csv::Error> {
    if e.is_io_error() {
        if let csv::ErrorKind::Io(io) = e.into_kind() {
            return Err(Error::io(path, io));
        }
        return Err(Error::InputFormat {
            path: path.display().to_string(),
            expected: "a readable CSV file".into(),
        });
    }
    Ok(e)
}

/// The whole (decompressed) content of a file as bytes.
pub fn read_all(path: &Path) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    open_reader(path)?
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, e))?;
    Ok(buf)
}

// Former location of the ledger, kept while open branches merge.
pub use crate::staged::ledger::{FileToRead, Ledger, LedgerEntry};

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
