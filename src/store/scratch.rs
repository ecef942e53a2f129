//! Local scratch space: ingest spills, rating's sorted runs and files being staged for
//! publication live in `<base>/<name>/` directories, one per run or per open lake. A local
//! lake keeps them in its own `_tmp/` (same filesystem, so publishing is one rename); an
//! object-store lake in a local temporary directory (`CSPCOST_SCRATCH_DIR`, else the system's).
//!
//! A process that crashes leaves its directory behind. Each directory records its owner
//! (host, process ID and the process's start time), and creating a new one removes those
//! whose owner is gone: dead on this host, or older than [`FOREIGN_MAX_AGE`] when written by
//! another host sharing the lake. Directories of live processes, such as concurrent shards,
//! are never touched.

use crate::error::{Error, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Rows per message of a scratch file: a reader holds one message of every file it merges
/// (a month of one organization merges about 80 runs at once).
const MESSAGE_ROWS: usize = 1024;
/// Bytes a writer gathers before writing to its file.
const BUFFER_BYTES: usize = 1 << 20;

/// A scratch file being written: Arrow IPC, the in-memory layout as it is, compressed with
/// LZ4. Scratch files live only until a merge of the same run reads them back, so
/// nothing is encoded: writing them as Parquet (plain, uncompressed) cost an eighth of
/// `ingest`'s CPU in copying each value into pages, and as much again to decode them. They
/// are compressed because a month spills more than it reads (about 1.3 KB a record
/// uncompressed, 13 GB at 10 M records): uncompressed, the kernel's page-cache work took 38 s
/// of a 10 M ingest's 128 CPU seconds, compressed 4.5 s, and the run 56 s instead of 71.
/// LZ4 rather than zstd level 1: a third more bytes written, and at 10 M, interleaved, rate
/// 6–12 % faster (CPU 97–100 → 85–90 s) and a month of four subscriptions, whose partitions
/// go through scratch twice, ingested 5–6 % faster; the default month's ingest is unchanged
/// (`benches/README.md`, tenth part).
/// `CSPCOST_SCRATCH_COMPRESSION` = `zstd` or `none` chooses the others.
pub struct Writer {
    path: PathBuf,
    inner: arrow_ipc::writer::FileWriter<std::io::BufWriter<fs::File>>,
    /// Rows not yet written: small batches (a page file's share of a partition is a few
    /// rows) are gathered into full messages, so a reader never sees thousands of tiny ones.
    pending: Vec<arrow::array::RecordBatch>,
    pending_rows: usize,
    message_rows: usize,
}

/// How a scratch file is cut and buffered. The defaults suit a file written and read alone
/// (a spill); a file among many open at once wants less of each.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// Rows per IPC message: what a reader holds decoded at a time. A merge of a month of
    /// one subscription reads a hundred and more sorted runs at once.
    message_rows: usize,
    /// Bytes of the writer's buffer: resident once the file passes that size, for every
    /// writer open (routing the scopes opens hundreds).
    buffer_bytes: usize,
}

impl Default for Layout {
    fn default() -> Layout {
        Layout {
            message_rows: MESSAGE_ROWS,
            buffer_bytes: BUFFER_BYTES,
        }
    }
}

impl Layout {
    pub fn with_message_rows(self, message_rows: usize) -> Layout {
        Layout {
            message_rows,
            ..self
        }
    }

    pub fn with_buffer_bytes(self, buffer_bytes: usize) -> Layout {
        Layout {
            buffer_bytes,
            ..self
        }
    }
}

impl Writer {
    /// Create the file at `path` for batches of `schema`, with the default [`Layout`].
    pub fn create(path: &Path, schema: &arrow::datatypes::Schema) -> Result<Writer> {
        Writer::create_with(path, schema, Layout::default())
    }

    /// Create the file at `path` for batches of `schema`, cut and buffered as `layout` says.
    pub fn create_with(
        path: &Path,
        schema: &arrow::datatypes::Schema,
        layout: Layout,
    ) -> Result<Writer> {
        Writer::create_coded(path, schema, layout, compression_from_env()?)
    }

    fn create_coded(
        path: &Path,
        schema: &arrow::datatypes::Schema,
        layout: Layout,
        compression: Option<arrow_ipc::CompressionType>,
    ) -> Result<Writer> {
        let file = fs::File::create(path).map_err(|e| Error::io(path, e))?;
        let level = (compression == Some(arrow_ipc::CompressionType::ZSTD)).then_some(1);
        let options = arrow_ipc::writer::IpcWriteOptions::default()
            .try_with_compression(compression)
            .and_then(|o| o.try_with_compression_level(level))
            .map_err(|e| ipc_error(path, e))?;
        let inner = arrow_ipc::writer::FileWriter::try_new_with_options(
            std::io::BufWriter::with_capacity(layout.buffer_bytes.max(1), file),
            schema,
            options,
        )
        .map_err(|e| ipc_error(path, e))?;
        Ok(Writer {
            path: path.to_path_buf(),
            inner,
            pending: Vec::new(),
            pending_rows: 0,
            message_rows: layout.message_rows.max(1),
        })
    }

    /// Append a batch, in messages of at most [`Layout::message_rows`] rows; small batches
    /// are gathered first.
    pub fn write(&mut self, batch: &arrow::array::RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.pending.is_empty() && batch.num_rows() >= self.message_rows.div_ceil(2) {
            // Large batches (rating's chunks) go out as they are: holding a remainder would
            // keep the whole batch alive. So do batches of half a message or more (a page of
            // 1,000 records of one subscription): gathering them would copy every value once
            // more, for messages hardly larger.
            self.write_messages(batch, true)?;
            return Ok(());
        }
        self.pending_rows += batch.num_rows();
        self.pending.push(batch.clone());
        if self.pending_rows >= self.message_rows {
            self.write_pending(false)?;
        }
        Ok(())
    }

    /// Append a batch as it is (in messages of at most [`Layout::message_rows`]), nothing held back:
    /// for a writer among hundreds open at once, each of which would otherwise hold up to a
    /// message of rows.
    pub fn write_through(&mut self, batch: &arrow::array::RecordBatch) -> Result<()> {
        self.write_pending(true)?;
        self.write_messages(batch, true)?;
        Ok(())
    }

    /// Write the pending rows as full messages, and the rest too when `all`.
    fn write_pending(&mut self, all: bool) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = if self.pending.len() == 1 {
            self.pending.remove(0)
        } else {
            let all = arrow::compute::concat_batches(&self.pending[0].schema(), &self.pending)?;
            self.pending.clear();
            all
        };
        let off = self.write_messages(&batch, all)?;
        self.pending_rows = batch.num_rows() - off;
        if self.pending_rows > 0 {
            self.pending.push(batch.slice(off, self.pending_rows));
        }
        Ok(())
    }

    /// Write `batch` as messages of [`Layout::message_rows`], the last shorter one too when `all`;
    /// the rows written.
    fn write_messages(&mut self, batch: &arrow::array::RecordBatch, all: bool) -> Result<usize> {
        let mut off = 0;
        let rows = self.message_rows;
        while batch.num_rows() - off >= rows || (all && off < batch.num_rows()) {
            let n = rows.min(batch.num_rows() - off);
            self.inner
                .write(&batch.slice(off, n))
                .map_err(|e| ipc_error(&self.path, e))?;
            off += n;
        }
        Ok(off)
    }

    /// Write the last rows and the footer, and flush the file.
    pub fn finish(mut self) -> Result<()> {
        self.write_pending(true)?;
        self.inner.finish().map_err(|e| ipc_error(&self.path, e))?;
        let mut out = self
            .inner
            .into_inner()
            .map_err(|e| ipc_error(&self.path, e))?;
        std::io::Write::flush(&mut out).map_err(|e| Error::io(&self.path, e))
    }
}

/// The codec of scratch files, `CSPCOST_SCRATCH_COMPRESSION` (see [`compression_named`]).
fn compression_from_env() -> Result<Option<arrow_ipc::CompressionType>> {
    let value = std::env::var("CSPCOST_SCRATCH_COMPRESSION").ok();
    compression_named(value.as_deref()).map_err(Error::config)
}

/// Refuse a `CSPCOST_SCRATCH_COMPRESSION` that names no codec before a command starts work,
/// not when its first spill is written.
pub fn check_env() -> Result<()> {
    compression_from_env().map(|_| ())
}

/// The codec named by `CSPCOST_SCRATCH_COMPRESSION`: `lz4` (the default, also when the
/// variable is empty), `zstd` (level 1) or `none`. Any other value is refused rather than
/// silently replaced by the default.
fn compression_named(
    value: Option<&str>,
) -> std::result::Result<Option<arrow_ipc::CompressionType>, String> {
    use arrow_ipc::CompressionType;
    match value.map(str::trim).unwrap_or("") {
        "" | "lz4" => Ok(Some(CompressionType::LZ4_FRAME)),
        "zstd" => Ok(Some(CompressionType::ZSTD)),
        "none" => Ok(None),
        other => Err(format!(
            "CSPCOST_SCRATCH_COMPRESSION is '{other}': expected lz4 (the default), zstd or none"
        )),
    }
}

/// A scratch file that cannot be written or read back is an I/O problem of the scratch
/// directory, reported with the file's path.
fn ipc_error(path: &Path, e: arrow::error::ArrowError) -> Error {
    Error::io(path, std::io::Error::other(e))
}

/// Write a scratch file of `schema` from `batches`, cut and buffered as `layout` says.
pub fn write_file(
    path: &Path,
    schema: arrow::datatypes::SchemaRef,
    layout: Layout,
    batches: impl IntoIterator<Item = Result<arrow::array::RecordBatch>>,
) -> Result<()> {
    let mut w = Writer::create_with(path, &schema, layout)?;
    for b in batches {
        w.write(&b?)?;
    }
    w.finish()
}

/// Read a scratch file back, at most `batch_size` rows at a time.
pub fn read_file(path: &Path, batch_size: usize) -> Result<crate::store::BatchStream> {
    let file = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = arrow_ipc::reader::FileReader::try_new_buffered(file, None)
        .map_err(|e| ipc_error(path, e))?;
    let path = path.to_path_buf();
    let batch_size = batch_size.max(1);
    Ok(Box::new(reader.flat_map(move |b| {
        let slices: Vec<Result<arrow::array::RecordBatch>> = match b {
            Err(e) => vec![Err(ipc_error(&path, e))],
            Ok(b) => (0..b.num_rows())
                .step_by(batch_size)
                .map(|off| Ok(b.slice(off, batch_size.min(b.num_rows() - off))))
                .collect(),
        };
        slices
    })))
}

/// A size from the environment (`name`), else `default`: tests set tiny sizes to prove that
/// a result never depends on them.
pub fn size_override(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// File inside each scratch directory naming its owner.
const OWNER_FILE: &str = ".owner";
/// Age after which a scratch directory whose owner cannot be checked (another host, or no
/// owner file) is removed.
pub const FOREIGN_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The scratch base of an object-store lake: `CSPCOST_SCRATCH_DIR`, else `<tmp>/cspcost`.
pub fn remote_base() -> PathBuf {
    match std::env::var_os("CSPCOST_SCRATCH_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => std::env::temp_dir().join("cspcost"),
    }
}

/// Identity of a process: host name, process ID, and its start time (clock ticks since boot,
/// so that a reused process ID is not mistaken for the original owner).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    host: String,
    pid: u32,
    start: Option<u64>,
}

impl Owner {
    fn current() -> Owner {
        let pid = std::process::id();
        Owner {
            host: host_name(),
            pid,
            start: process_start(pid),
        }
    }

    fn to_text(&self) -> String {
        format!(
            "host={}\npid={}\nstart={}\n",
            self.host,
            self.pid,
            self.start.map(|s| s.to_string()).unwrap_or_default()
        )
    }

    fn parse(text: &str) -> Option<Owner> {
        let mut host = None;
        let mut pid = None;
        let mut start = None;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("host", v)) => host = Some(v.to_string()),
                Some(("pid", v)) => pid = v.parse().ok(),
                Some(("start", v)) => start = v.parse().ok(),
                _ => {}
            }
        }
        Some(Owner {
            host: host?,
            pid: pid?,
            start,
        })
    }

    /// Whether the owning process still runs. `None` when this host cannot tell.
    fn alive(&self) -> Option<bool> {
        if self.host != host_name() || !cfg!(target_os = "linux") {
            return None;
        }
        if !Path::new(&format!("/proc/{}", self.pid)).exists() {
            return Some(false);
        }
        Some(match (self.start, process_start(self.pid)) {
            (Some(recorded), Some(now)) => recorded == now,
            _ => true,
        })
    }
}

/// This process's identity for the writer lease: host name, process ID, start time.
pub(crate) fn current_process() -> (String, u32, Option<u64>) {
    let o = Owner::current();
    (o.host, o.pid, o.start)
}

/// Whether a process recorded as (host, pid, start) still runs; `None` when this host
/// cannot tell (another host, or no `/proc`).
pub(crate) fn process_alive(host: &str, pid: u32, start: Option<u64>) -> Option<bool> {
    Owner {
        host: host.to_string(),
        pid,
        start,
    }
    .alive()
}

fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Start time of a process in clock ticks since boot (`/proc/<pid>/stat` field 22).
fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Create `<base>/<name>/` owned by this process, first removing stale siblings.
pub fn create(base: &Path, name: &str) -> Result<PathBuf> {
    sweep(base, name);
    let dir = base.join(name);
    let owner = dir.join(OWNER_FILE);
    // Another process removes `base` when its last directory goes; retry if that happens
    // between creating the directory and writing the owner file.
    let mut attempt = 0;
    loop {
        let made = fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e));
        let written = made.and_then(|_| {
            if owner.exists() {
                return Ok(());
            }
            fs::write(&owner, Owner::current().to_text()).map_err(|e| Error::io(&owner, e))
        });
        match written {
            Err(Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && attempt < 3 =>
            {
                attempt += 1
            }
            other => return other.map(|_| dir),
        }
    }
}

/// Remove `<base>/<name>/` and everything in it (best effort).
pub fn remove(base: &Path, name: &str) {
    let _ = fs::remove_dir_all(base.join(name));
    let _ = fs::remove_dir(base);
}

/// Remove the scratch directories under `base` whose owner is gone (best effort: a
/// directory that cannot be removed is left for the next run). Returns the names removed.
pub fn sweep(base: &Path, keep: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(base) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name == keep || !path.is_dir() || !is_stale(&path) {
            continue;
        }
        if fs::remove_dir_all(&path).is_ok() {
            removed.push(name);
        }
    }
    removed.sort();
    removed
}

fn is_stale(dir: &Path) -> bool {
    let owner_file = dir.join(OWNER_FILE);
    let owner = fs::read_to_string(&owner_file)
        .ok()
        .and_then(|t| Owner::parse(&t));
    if let Some(alive) = owner.as_ref().and_then(Owner::alive) {
        return !alive;
    }
    // Another host's directory, or one whose owner file was never written (a crash between
    // creating the directory and writing the file): judge by age.
    let probe = if owner.is_some() {
        owner_file
    } else {
        dir.to_path_buf()
    };
    fs::metadata(&probe)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > FOREIGN_MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every codec reads back what was written, values and nulls, across message
    /// boundaries; an unknown codec name is refused, not replaced by the default.
    #[test]
    fn scratch_files_round_trip_with_every_codec() {
        use arrow::array::{Array, Int64Array, RecordBatch, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        use arrow_ipc::CompressionType;
        assert_eq!(
            compression_named(None),
            Ok(Some(CompressionType::LZ4_FRAME))
        );
        assert_eq!(
            compression_named(Some("")),
            Ok(Some(CompressionType::LZ4_FRAME))
        );
        assert_eq!(
            compression_named(Some("zstd")),
            Ok(Some(CompressionType::ZSTD))
        );
        assert_eq!(compression_named(Some("none")), Ok(None));
        let refused = compression_named(Some("gzip")).unwrap_err();
        assert!(refused.contains("'gzip'"), "{refused}");

        let schema = std::sync::Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let rows = 2_500;
        let n: Int64Array = (0..rows).map(|i| i * 7 - 3).collect();
        let s: StringArray = (0..rows)
            .map(|i| (i % 5 != 0).then(|| format!("/subscriptions/{i:06}/rg")))
            .collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![std::sync::Arc::new(n), std::sync::Arc::new(s)],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut sizes = Vec::new();
        for name in ["lz4", "zstd", "none"] {
            let codec = compression_named(Some(name)).unwrap();
            let path = dir.path().join(format!("{name}.arrow"));
            let layout = Layout::default().with_message_rows(512);
            let mut w = Writer::create_coded(&path, &schema, layout, codec).unwrap();
            for off in (0..rows as usize).step_by(700) {
                w.write(&batch.slice(off, 700.min(rows as usize - off)))
                    .unwrap();
            }
            w.finish().unwrap();
            let back: Vec<RecordBatch> =
                read_file(&path, 300).unwrap().map(|b| b.unwrap()).collect();
            assert!(back.iter().all(|b| b.num_rows() <= 300), "{name}");
            let back = arrow::compute::concat_batches(&schema, &back).unwrap();
            assert_eq!(back, batch, "{name}");
            assert_eq!(back.column(1).null_count(), 500, "{name}");
            sizes.push(fs::metadata(&path).unwrap().len());
        }
        let [lz4, zstd, none] = sizes[..] else {
            unreachable!()
        };
        assert!(lz4 < none && zstd < none, "compressed: {sizes:?}");
    }

    #[test]
    fn owner_round_trips_and_is_alive() {
        let me = Owner::current();
        assert_eq!(Owner::parse(&me.to_text()), Some(me.clone()));
        if cfg!(target_os = "linux") {
            assert_eq!(me.alive(), Some(true));
            let reused = Owner {
                start: me.start.map(|s| s + 1),
                ..me.clone()
            };
            assert_eq!(reused.alive(), Some(false), "a reused pid is not the owner");
        }
        let elsewhere = Owner {
            host: format!("{}-elsewhere", me.host),
            ..me
        };
        assert_eq!(elsewhere.alive(), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn sweep_removes_dead_owners_only() {
        let base = tempfile::tempdir().unwrap();
        let live = create(base.path(), "live").unwrap();
        let dead = base.path().join("dead");
        fs::create_dir_all(dead.join("rate")).unwrap();
        let mut gone = Owner::current();
        gone.start = gone.start.map(|s| s + 1);
        fs::write(dead.join(OWNER_FILE), gone.to_text()).unwrap();
        let foreign = base.path().join("foreign");
        fs::create_dir_all(&foreign).unwrap();
        let other = Owner {
            host: "another-host".into(),
            pid: 1,
            start: None,
        };
        fs::write(foreign.join(OWNER_FILE), other.to_text()).unwrap();
        assert_eq!(sweep(base.path(), "keep"), vec!["dead".to_string()]);
        assert!(live.exists());
        assert!(foreign.exists(), "a recent directory of another host stays");
    }
}
