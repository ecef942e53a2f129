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
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Writer settings for files that live only until a merge: row groups of 1,024 rows, no
/// compression, no dictionaries, no statistics (nobody prunes on them; computing min/max of every string column cost a
/// tenth of `rate`'s time).
pub fn scratch_properties() -> WriterProperties {
    scratch_builder().build()
}

/// [`scratch_properties`], to be refined. `CSPCOST_SCRATCH_COMPRESSION=zstd` compresses
/// scratch files (zstd level 1): a fraction of the disk for some CPU, for months whose spills
/// would not fit uncompressed (100 M records spill about 90 GB).
pub fn scratch_builder() -> parquet::file::properties::WriterPropertiesBuilder {
    let compression = match std::env::var("CSPCOST_SCRATCH_COMPRESSION").as_deref() {
        Ok("zstd") => Compression::ZSTD(parquet::basic::ZstdLevel::try_new(1).unwrap_or_default()),
        _ => Compression::UNCOMPRESSED,
    };
    // Small row groups: parquet's reader holds a whole row group's column chunks, and a
    // merge holds one per run it reads.
    WriterProperties::builder()
        .set_max_row_group_row_count(Some(1024))
        .set_compression(compression)
        .set_dictionary_enabled(false)
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
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

/// Write a scratch file of `schema` from `batches` (with [`scratch_properties`]).
pub fn write_file(
    path: &Path,
    schema: arrow::datatypes::SchemaRef,
    batches: impl IntoIterator<Item = Result<arrow::array::RecordBatch>>,
) -> Result<()> {
    let file = fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let perr = |e| Error::Parquet {
        path: path.display().to_string(),
        source: e,
    };
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, Some(scratch_properties()))
        .map_err(perr)?;
    for b in batches {
        w.write(&b?).map_err(perr)?;
    }
    w.close().map_err(perr)?;
    Ok(())
}

/// Read a scratch file back, `batch_size` rows at a time.
pub fn read_file(path: &Path, batch_size: usize) -> Result<crate::store::BatchStream> {
    let file = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let perr = |e| Error::Parquet {
        path: path.display().to_string(),
        source: e,
    };
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(perr)?
        .with_batch_size(batch_size)
        .build()
        .map_err(perr)?;
    Ok(Box::new(reader.map(|b| b.map_err(Error::from))))
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
