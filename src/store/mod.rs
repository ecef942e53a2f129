//! The lake: where staged tables, cost partitions, quarantine and manifests live, in a local
//! directory (`DIR`, `file://DIR`) or an object store (`az://`/`abfs://`, `s3://`, `gs://`).
//!
//! Every file is built completely in a local staging file first and then published in one
//! step: a rename on a local lake, one PUT on an object store (outputs.md, writing rules). A
//! crash therefore leaves the previous version intact and readable, and the staging file,
//! under a scratch directory ([`scratch`]), is removed by the next run.

pub mod input;
pub mod lease;
pub mod par_writer;
mod remote;
pub mod scratch;

pub use remote::MULTIPART_THRESHOLD;

use crate::error::{Error, Result};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{FooterTail, KeyValue, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::ChunkReader;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// How a Parquet file of the lake is written, beyond its batches: zstd level 3, row groups
/// of [`ROW_GROUP_ROWS`], and what is set here.
#[derive(Default)]
pub struct FileOptions<'a> {
    /// Key-value metadata of the file.
    pub metadata: Vec<(String, String)>,
    /// The columns given min/max statistics (per column chunk); `None`: every column, per
    /// page (parquet's default). Statistics of long strings cost a comparison of each value
    /// as it is written (a staged partition's `raw` JSON, resource URIs sharing long prefixes).
    pub statistics: Option<&'a [&'a str]>,
    /// Columns written without a dictionary: their values are nearly all distinct, so a
    /// dictionary would be built, then abandoned, in every row group.
    pub no_dictionary: &'a [&'a str],
}

impl FileOptions<'_> {
    fn properties(self) -> parquet::errors::Result<WriterProperties> {
        use parquet::file::properties::EnabledStatistics;
        use parquet::schema::types::ColumnPath;
        let kv: Vec<KeyValue> = self
            .metadata
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect();
        let mut b = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_key_value_metadata(Some(kv));
        if let Some(columns) = self.statistics {
            b = b.set_statistics_enabled(EnabledStatistics::None);
            for c in columns {
                b = b.set_column_statistics_enabled(ColumnPath::from(*c), EnabledStatistics::Chunk);
            }
        }
        for c in self.no_dictionary {
            b = b.set_column_dictionary_enabled(ColumnPath::from(*c), false);
        }
        Ok(b.build())
    }
}
/// Bytes fetched from the end of a remote Parquet file to find its footer in one request.
const FOOTER_GUESS: u64 = 64 * 1024;
/// Lakes opened by this process (makes staging directory names unique).
static OPENED: AtomicU64 = AtomicU64::new(0);

/// A lake rooted in a local directory or an object-store location. Cheap to clone; every
/// method is synchronous (object-store requests block on a runtime the lake owns).
#[derive(Clone, Debug)]
pub struct Lake {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    backend: Backend,
    /// Where scratch directories live: `<lake>/_tmp` locally, a local temp dir for stores.
    scratch_base: PathBuf,
    /// Name of this lake handle's staging directory under `scratch_base`.
    session: String,
    /// The staging directory, once created.
    session_dir: OnceLock<PathBuf>,
    /// Staging files handed out (unique names).
    staged: AtomicU64,
    /// Files published (or deleted) through this handle: tells a failed run whether it
    /// changed the lake (emit::journal).
    changes: AtomicU64,
}

#[derive(Debug)]
enum Backend {
    Local {
        root: PathBuf,
    },
    Remote {
        store: remote::Remote,
        root: PathBuf,
    },
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.session_dir.get().is_some() {
            scratch::remove(&self.scratch_base, &self.session);
        }
    }
}

/// Something Parquet can be read from: a local file or an object fetched whole.
enum Source {
    File(File),
    Bytes(Bytes),
}

impl Lake {
    /// Open a lake: a directory or `file://` URL (created when missing), or an `az://`,
    /// `abfs://`, `s3://` or `gs://` URL with credentials from the environment.
    pub fn open(location: &str) -> Result<Lake> {
        let (backend, scratch_base) = if let Some(p) = location.strip_prefix("file://") {
            let root = PathBuf::from(p);
            (Backend::Local { root: root.clone() }, root.join("_tmp"))
        } else if location.contains("://") {
            let store = remote::Remote::open(location)?;
            let root = PathBuf::from(store.display());
            (Backend::Remote { store, root }, scratch::remote_base())
        } else {
            let root = PathBuf::from(location);
            (Backend::Local { root: root.clone() }, root.join("_tmp"))
        };
        if let Backend::Local { root } = &backend {
            fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        }
        let session = format!(
            "{}-{}-lake{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%6fZ"),
            std::process::id(),
            OPENED.fetch_add(1, Ordering::Relaxed)
        );
        Ok(Lake {
            inner: Arc::new(Inner {
                backend,
                scratch_base,
                session,
                session_dir: OnceLock::new(),
                staged: AtomicU64::new(0),
                changes: AtomicU64::new(0),
            }),
        })
    }

    /// Open a lake that must exist already: every command but `ingest` and `tenants add`
    /// (which create one). A path or URL that holds no lake is refused with
    /// [`Error::NoLake`] (exit 2), and a local path that does not exist is not created.
    /// A lake is a location with a `staged/` or a `_runs/` entry: the first `ingest` or
    /// `tenants add` writes both, and every lake written by an earlier version has them,
    /// so no marker file is needed.
    pub fn open_existing(location: &str) -> Result<Lake> {
        let local = match location.strip_prefix("file://") {
            Some(p) => Some(PathBuf::from(p)),
            None if !location.contains("://") => Some(PathBuf::from(location)),
            None => None,
        };
        if let Some(root) = &local {
            if !root.is_dir() {
                return Err(Error::NoLake {
                    location: root.display().to_string(),
                });
            }
        }
        let lake = Lake::open(location)?;
        if !lake.holds_lake()? {
            return Err(Error::NoLake {
                location: lake.root().display().to_string(),
            });
        }
        Ok(lake)
    }

    /// Whether this location holds a lake (see [`Lake::open_existing`]).
    pub fn holds_lake(&self) -> Result<bool> {
        for dir in ["_runs", "staged"] {
            if !self.list_dir(dir)?.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// How many files this handle has published or deleted so far.
    pub fn changes(&self) -> u64 {
        self.inner.changes.load(Ordering::Relaxed)
    }

    /// Whether the lake lives in an object store.
    pub fn is_remote(&self) -> bool {
        matches!(self.inner.backend, Backend::Remote { .. })
    }

    /// The root directory of a local lake; for an object-store lake, its URL (without
    /// credentials) as a path, good for messages only.
    pub fn root(&self) -> &Path {
        match &self.inner.backend {
            Backend::Local { root } | Backend::Remote { root, .. } => root,
        }
    }

    /// Local path of a lake-relative path. For an object-store lake this is its URL, good
    /// for messages only: do I/O through the lake's methods.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// Where a lake-relative file lives, for messages.
    fn describe(&self, rel: &str) -> String {
        match &self.inner.backend {
            Backend::Local { root } => root.join(rel).display().to_string(),
            Backend::Remote { store, .. } => store.location(rel),
        }
    }

    /// A local directory for the temporary work of run `run_id` (ingest spills, rating's
    /// sorted runs): `<lake>/_tmp/<run_id>/` on a local lake, under a local temp dir for an
    /// object store, never in the store itself. Creating it removes what crashed runs left.
    pub fn scratch_dir(&self, run_id: &str) -> Result<PathBuf> {
        scratch::create(&self.inner.scratch_base, run_id)
    }

    /// Remove the scratch directory of `run_id` (best effort).
    pub fn remove_scratch(&self, run_id: &str) {
        scratch::remove(&self.inner.scratch_base, run_id);
    }

    /// A fresh local file in which to build a new version of `rel` before [`Lake::publish`].
    /// It sits in this lake handle's scratch directory, never beside the published file, so
    /// no reader's glob (`*.parquet`) can match it.
    pub fn staging_file(&self, rel: &str) -> Result<PathBuf> {
        let dir = match self.inner.session_dir.get() {
            Some(d) => d.clone(),
            None => {
                let d = scratch::create(&self.inner.scratch_base, &self.inner.session)?;
                let _ = self.inner.session_dir.set(d.clone());
                d
            }
        };
        let n = self.inner.staged.fetch_add(1, Ordering::Relaxed);
        let name = rel.rsplit('/').next().unwrap_or("file");
        Ok(dir.join(format!("{n:06}-{name}.tmp")))
    }

    /// Make a finished staging file the new version of `rel`, in one step: a rename on a
    /// local lake (then the directory is synced), one PUT (or one multipart upload) on an
    /// object store. The staging file is gone afterwards.
    pub fn publish(&self, rel: &str, staged: &Path) -> Result<()> {
        crate::faults::maybe_crash("before-rename");
        self.inner.changes.fetch_add(1, Ordering::Relaxed);
        match &self.inner.backend {
            Backend::Local { root } => {
                let dest = root.join(rel);
                let dir = dest.parent().unwrap_or(root);
                rename_into(staged, &dest, dir)?;
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
                Ok(())
            }
            Backend::Remote { store, .. } => {
                let result = store.put_file(rel, staged);
                let _ = fs::remove_file(staged);
                result
            }
        }
    }

    /// Whether a lake-relative file exists. When an object store cannot answer (network,
    /// permissions), this says `true`, so that the read that follows reports the error
    /// instead of the file being silently skipped.
    pub fn exists(&self, rel: &str) -> bool {
        match &self.inner.backend {
            Backend::Local { root } => root.join(rel).exists(),
            Backend::Remote { store, .. } => !matches!(store.size(rel), Ok(None)),
        }
    }

    /// Names inside a lake-relative directory, sorted; empty when it does not exist.
    pub fn list_dir(&self, rel: &str) -> Result<Vec<String>> {
        let root = match &self.inner.backend {
            Backend::Local { root } => root,
            Backend::Remote { store, .. } => return store.list(rel),
        };
        let dir = root.join(rel);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(dir, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Delete a lake-relative file if present, then (locally) its directory if that became
    /// empty.
    pub fn remove_file(&self, rel: &str) -> Result<()> {
        self.inner.changes.fetch_add(1, Ordering::Relaxed);
        let root = match &self.inner.backend {
            Backend::Local { root } => root,
            Backend::Remote { store, .. } => return store.delete(rel),
        };
        let p = root.join(rel);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(p, e)),
        }
        if let Some(parent) = p.parent() {
            if fs::read_dir(parent)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false)
            {
                let _ = fs::remove_dir(parent);
            }
        }
        Ok(())
    }

    /// Write a file atomically: `write` fills a staging file, which is synced and published.
    pub fn put_atomic(&self, rel: &str, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
        let tmp = self.staging_file(rel)?;
        let mut file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut result = write(&mut file);
        if result.is_ok() && !self.is_remote() {
            result = file.sync_all().map_err(|e| Error::io(&tmp, e));
        }
        drop(file);
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.publish(rel, &tmp)
    }

    /// Write a JSON document atomically.
    pub fn put_json<T: Serialize>(&self, rel: &str, value: &T) -> Result<()> {
        let text = serde_json::to_vec_pretty(value).map_err(|e| Error::Json {
            path: rel.to_string(),
            source: e,
        })?;
        self.put_atomic(rel, |f| {
            f.write_all(&text).map_err(|e| Error::io(self.path(rel), e))
        })
    }

    /// The bytes of a lake-relative file; `None` when it does not exist.
    pub fn get_bytes(&self, rel: &str) -> Result<Option<Bytes>> {
        match &self.inner.backend {
            Backend::Local { root } => {
                let p = root.join(rel);
                Ok(absent_as_none(fs::read(&p), &p)?.map(Bytes::from))
            }
            Backend::Remote { store, .. } => store.get(rel),
        }
    }

    /// Read a JSON document; `None` when the file does not exist.
    pub fn get_json<T: DeserializeOwned>(&self, rel: &str) -> Result<Option<T>> {
        let Some(bytes) = self.get_bytes(rel)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Json {
                path: self.describe(rel),
                source: e,
            })
    }

    /// Write batches as one zstd Parquet file, atomically, with key-value metadata.
    pub fn put_parquet(
        &self,
        rel: &str,
        schema: SchemaRef,
        batches: &[RecordBatch],
        metadata: Vec<(String, String)>,
    ) -> Result<()> {
        let options = FileOptions {
            metadata,
            ..FileOptions::default()
        };
        self.put_parquet_with(rel, schema, options, |writer| {
            for b in batches {
                writer.write(b).map_err(|e| parquet_error(rel, e))?;
            }
            Ok(())
        })
    }

    /// Write one zstd Parquet file atomically from the batches `next` produces (`None` at the
    /// end), each row group encoded while `next` produces the following one
    /// ([`par_writer::ParWriter::write_from`]): a merge streams a partition it never holds.
    pub fn put_parquet_from(
        &self,
        rel: &str,
        schema: SchemaRef,
        options: FileOptions<'_>,
        next: impl FnMut() -> Result<Option<RecordBatch>> + Send,
    ) -> Result<()> {
        self.put_parquet_with(rel, schema, options, |writer| {
            writer.write_from(next, |e| parquet_error(rel, e))
        })
    }

    /// Write one zstd Parquet file atomically, its batches handed to the writer by `write`.
    fn put_parquet_with(
        &self,
        rel: &str,
        schema: SchemaRef,
        options: FileOptions<'_>,
        write: impl FnOnce(&mut par_writer::ParWriter<File>) -> Result<()>,
    ) -> Result<()> {
        self.put_atomic(rel, |file| {
            let props = options.properties().map_err(|e| parquet_error(rel, e))?;
            let mut writer = par_writer::ParWriter::try_new(
                file.try_clone().map_err(|e| Error::io(self.path(rel), e))?,
                schema,
                props,
            )
            .map_err(|e| parquet_error(rel, e))?;
            write(&mut writer)?;
            writer.into_inner().map_err(|e| parquet_error(rel, e))?;
            Ok(())
        })
    }

    /// Open a file for Parquet reading: the local file, or the object fetched whole.
    fn source(&self, rel: &str) -> Result<Option<Source>> {
        match &self.inner.backend {
            Backend::Local { root } => {
                let p = root.join(rel);
                Ok(absent_as_none(File::open(&p), &p)?.map(Source::File))
            }
            Backend::Remote { store, .. } => Ok(store.get(rel)?.map(Source::Bytes)),
        }
    }

    fn read_parquet(
        &self,
        rel: &str,
        columns: Option<&[&str]>,
    ) -> Result<Option<Vec<RecordBatch>>> {
        self.parquet_batches(rel, columns, None, 64 * 1024)?
            .map(|batches| batches.collect())
            .transpose()
    }

    /// Read a whole Parquet file; `None` when it does not exist.
    pub fn get_parquet(&self, rel: &str) -> Result<Option<Vec<RecordBatch>>> {
        self.read_parquet(rel, None)
    }

    /// Read only the named columns of a Parquet file (the others are never decoded);
    /// `None` when the file does not exist. A missing name is simply not returned: callers
    /// read columns through [`crate::model::schema::Cols`], which names what is missing.
    pub fn get_parquet_columns(
        &self,
        rel: &str,
        columns: &[&str],
    ) -> Result<Option<Vec<RecordBatch>>> {
        self.read_parquet(rel, Some(columns))
    }

    /// Metadata of a Parquet file; `None` when it does not exist. On an object store only
    /// the footer is fetched (ranged reads), not the file.
    fn parquet_footer(&self, rel: &str) -> Result<Option<ParquetMetaData>> {
        let perr = |e| Error::Parquet {
            path: self.describe(rel),
            source: e,
        };
        let meta: ParquetMetaData = match &self.inner.backend {
            Backend::Local { .. } => match self.source(rel)? {
                None => return Ok(None),
                Some(Source::File(f)) => ParquetMetaDataReader::new().parse_and_finish(&f),
                Some(Source::Bytes(b)) => ParquetMetaDataReader::new().parse_and_finish(&b),
            }
            .map_err(perr)?,
            Backend::Remote { store, .. } => {
                let Some(size) = store.size(rel)? else {
                    return Ok(None);
                };
                let short = || {
                    perr(parquet::errors::ParquetError::EOF(format!(
                        "{size} bytes is too small for a Parquet file"
                    )))
                };
                if size < 12 {
                    return Err(short());
                }
                let start = size.saturating_sub(FOOTER_GUESS);
                let tail = store.get_range(rel, start..size)?;
                let footer = FooterTail::try_from(&tail[tail.len() - 8..]).map_err(perr)?;
                let meta_len = footer.metadata_length() as u64;
                if meta_len + 8 > size {
                    return Err(short());
                }
                let meta_start = size - 8 - meta_len;
                let buf = if meta_start >= start {
                    tail.slice((meta_start - start) as usize..tail.len() - 8)
                } else {
                    store.get_range(rel, meta_start..size - 8)?
                };
                ParquetMetaDataReader::decode_metadata(&buf).map_err(perr)?
            }
        };
        Ok(Some(meta))
    }

    /// Rows of a Parquet file (from its footer); `None` when it does not exist.
    pub fn parquet_row_count(&self, rel: &str) -> Result<Option<u64>> {
        Ok(self
            .parquet_footer(rel)?
            .map(|m| m.file_metadata().num_rows().max(0) as u64))
    }

    /// Stream the named columns of a Parquet file (all of them for `None`), `batch_size` rows
    /// at a time, only the rows in `rows` when given (row groups outside them are not read);
    /// `None` when it does not exist. A local file is read as the batches go; an object is
    /// fetched whole.
    pub fn parquet_batches(
        &self,
        rel: &str,
        columns: Option<&[&str]>,
        rows: Option<std::ops::Range<u64>>,
        batch_size: usize,
    ) -> Result<Option<BatchStream>> {
        let name = self.describe(rel);
        Ok(match self.source(rel)? {
            None => None,
            Some(Source::File(f)) => Some(batch_stream(f, columns, rows, batch_size, &name)?),
            Some(Source::Bytes(b)) => Some(batch_stream(b, columns, rows, batch_size, &name)?),
        })
    }

    /// Key-value metadata of a Parquet file; `None` when it does not exist. On an object
    /// store only the footer is fetched (ranged reads), not the file.
    pub fn parquet_metadata(&self, rel: &str) -> Result<Option<Vec<(String, String)>>> {
        let Some(meta) = self.parquet_footer(rel)? else {
            return Ok(None);
        };
        let kv = meta
            .file_metadata()
            .key_value_metadata()
            .cloned()
            .unwrap_or_default();
        Ok(Some(
            kv.into_iter()
                .map(|k| (k.key, k.value.unwrap_or_default()))
                .collect(),
        ))
    }

    /// SHA-256 (hex) and byte size of a lake-relative file; `None` when absent.
    pub fn digest(&self, rel: &str) -> Result<Option<(String, u64)>> {
        match &self.inner.backend {
            Backend::Local { root } => {
                let p = root.join(rel);
                if !p.exists() {
                    return Ok(None);
                }
                sha256_file(&p).map(Some)
            }
            Backend::Remote { store, .. } => Ok(store
                .get(rel)?
                .map(|b| (hex::encode(Sha256::digest(&b)), b.len() as u64))),
        }
    }

    /// A tag of a lake-relative file's current version, for change detection; `None` when
    /// absent. Locally its SHA-256; on an object store its ETag (one HEAD request instead of
    /// downloading the file), which changes whenever the file is rewritten.
    pub fn version_tag(&self, rel: &str) -> Result<Option<String>> {
        match &self.inner.backend {
            Backend::Local { .. } => self.sha256(rel),
            Backend::Remote { store, .. } => store.version(rel),
        }
    }

    /// SHA-256 of a lake-relative file (hex); `None` when absent.
    pub fn sha256(&self, rel: &str) -> Result<Option<String>> {
        Ok(self.digest(rel)?.map(|(h, _)| h))
    }
}

/// A local read whose "not found" means `None`.
fn absent_as_none<T>(result: std::io::Result<T>, path: &Path) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Decode Parquet into batches of up to 64K rows, optionally only some columns.
/// Batches of a Parquet file as they are decoded.
pub type BatchStream = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

fn batch_stream<R: ChunkReader + 'static>(
    reader: R,
    columns: Option<&[&str]>,
    rows: Option<std::ops::Range<u64>>,
    batch_size: usize,
    name: &str,
) -> Result<BatchStream> {
    let perr = |e| Error::Parquet {
        path: name.to_string(),
        source: e,
    };
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(reader).map_err(perr)?;
    if let Some(columns) = columns {
        let mask = parquet::arrow::ProjectionMask::columns(
            builder.parquet_schema(),
            columns.iter().copied(),
        );
        builder = builder.with_projection(mask);
    }
    if let Some(rows) = rows {
        let (groups, selection) = row_range(builder.metadata(), rows);
        builder = builder
            .with_row_groups(groups)
            .with_row_selection(selection);
    }
    let reader = builder.with_batch_size(batch_size).build().map_err(perr)?;
    Ok(Box::new(reader.map(|b| b.map_err(Error::from))))
}

/// The row groups that hold `rows`, and the selection of those rows inside them.
fn row_range(
    meta: &ParquetMetaData,
    rows: std::ops::Range<u64>,
) -> (Vec<usize>, parquet::arrow::arrow_reader::RowSelection) {
    use parquet::arrow::arrow_reader::RowSelector;
    let (mut groups, mut selectors) = (Vec::new(), Vec::new());
    let mut first = 0u64;
    for (i, rg) in meta.row_groups().iter().enumerate() {
        let n = rg.num_rows().max(0) as u64;
        let (a, b) = (first, first + n);
        first = b;
        if b <= rows.start || a >= rows.end {
            continue;
        }
        groups.push(i);
        let (lo, hi) = (rows.start.max(a) - a, rows.end.min(b) - a);
        if lo > 0 {
            selectors.push(RowSelector::skip(lo as usize));
        }
        selectors.push(RowSelector::select((hi - lo) as usize));
        if hi < n {
            selectors.push(RowSelector::skip((n - hi) as usize));
        }
    }
    (groups, selectors.into())
}

/// Rename `staged` to `dest`, creating `dir` (its parent) first. A concurrent writer that
/// deletes the last file of `dir` also removes the directory ([`Lake::remove_file`]), and
/// it can do so between our `create_dir_all` and our rename: concurrent shards share
/// `quarantine/stage=rate/month=M/`. So a rename that finds no directory while the staged
/// file is still there makes the directory again and retries. `create_dir_all` itself can
/// lose the same race: its `mkdir` finds the directory (`AlreadyExists`), which is gone
/// before it checks that it is one; that is retried too.
fn rename_into(staged: &Path, dest: &Path, dir: &Path) -> Result<()> {
    const ATTEMPTS: usize = 100;
    for attempt in 1.. {
        match fs::create_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < ATTEMPTS => {
                continue
            }
            Err(e) => return Err(Error::io(dir, e)),
        }
        match fs::rename(staged, dest) {
            Ok(()) => return Ok(()),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && attempt < ATTEMPTS
                    && staged.exists() => {}
            Err(e) => return Err(Error::io(dest, e)),
        }
    }
    unreachable!("the loop returns by its last attempt")
}

/// A Parquet error writing the lake file `rel`.
fn parquet_error(rel: &str, source: parquet::errors::ParquetError) -> Error {
    Error::Parquet {
        path: rel.to_string(),
        source,
    }
}

/// SHA-256 (hex) and byte size of a file.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((hex::encode(h.finalize()), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two writers share a directory, each publishing then deleting its own file: each
    /// delete of the last file removes the directory, often while the other writer is
    /// between making the directory and renaming into it. Nothing may fail and nothing
    /// may be lost (three concurrent `rate --shard` processes lost a quarantine file so).
    #[test]
    fn publishing_survives_a_concurrent_delete_of_the_directory() {
        let root = tempfile::tempdir().unwrap();
        let location = root.path().display().to_string();
        let writers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|name| {
                let location = location.clone();
                std::thread::spawn(move || -> std::result::Result<(), String> {
                    let lake = Lake::open(&location).map_err(|e| e.to_string())?;
                    let rel = format!("shared/month=2026-01/part-{name}.json");
                    for i in 0..2_000u32 {
                        lake.put_json(&rel, &i).map_err(|e| format!("{i}: {e}"))?;
                        let back = lake.get_json::<u32>(&rel).map_err(|e| e.to_string())?;
                        if back != Some(i) {
                            return Err(format!("{rel}: {back:?} read back, {i} published"));
                        }
                        lake.remove_file(&rel).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap().unwrap();
        }
        assert!(!root.path().join("shared/month=2026-01").exists());
    }
}
