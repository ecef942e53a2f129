//! Shared helpers: run the binary, build lakes from `sample_data/`, read Parquet back.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A path under `sample_data/`.
pub fn sample(rel: &str) -> PathBuf {
    root().join("sample_data").join(rel)
}

/// A path under `../shared/samples/` (Microsoft's documented records).
pub fn ms_sample(name: &str) -> PathBuf {
    root().join("../shared/samples").join(name)
}

/// Run `cspcost` with arguments.
pub fn cspcost<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_cspcost"))
        .args(args)
        .env_remove("CSPCOST_CRASH_AT")
        .output()
        .expect("run cspcost")
}

/// Run `cspcost` and require exit 0; returns stdout.
pub fn ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = cspcost(args);
    assert!(
        out.status.success(),
        "cspcost failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A temporary lake directory.
pub fn lake() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Path of a lake as a string argument.
pub fn arg(p: &Path) -> String {
    p.display().to_string()
}

/// Ingest reference, prices and both usage dumps of `sample_data/` into `lake`.
pub fn ingest_sample(lake: &Path) {
    let l = arg(lake);
    ok([
        "ingest",
        "reference",
        "--lake",
        &l,
        &arg(&sample("reference")),
    ]);
    ok(["ingest", "prices", "--lake", &l, &arg(&sample("prices"))]);
    ok([
        "ingest",
        "usage",
        "--lake",
        &l,
        &arg(&sample("usage/dump-2026-01-20")),
    ]);
    ok([
        "ingest",
        "usage",
        "--lake",
        &l,
        &arg(&sample("usage/dump-2026-02-16")),
    ]);
}

/// Ingest and rate `sample_data/` (default options).
pub fn rated_sample() -> tempfile::TempDir {
    let dir = lake();
    ingest_sample(dir.path());
    ok(["rate", "--lake", &arg(dir.path())]);
    dir
}

/// Every manifest of a lake, newest first.
pub fn manifests(lake: &Path) -> Vec<cspcost::emit::manifest::Manifest> {
    let l = cspcost::store::Lake::open(&arg(lake)).unwrap();
    cspcost::emit::manifest::list_manifests(&l).unwrap()
}

/// Ingest `sample_data/` reference data, prices and reservation orders (no usage).
pub fn ingest_reservation_inputs(lake: &Path) {
    let l = arg(lake);
    for (kind, dir) in [
        ("reference", "reference"),
        ("prices", "prices"),
        ("reservations", "reservations"),
    ] {
        ok(["ingest", kind, "--lake", &l, &arg(&sample(dir))]);
    }
}

/// Columns `cols` of every row of a lake Parquet file, rendered as text and joined with
/// ` | `, in file order.
pub fn rows_text(lake: &Path, rel: &str, cols: &[&str]) -> Vec<String> {
    use arrow::array::{Array, TimestampMicrosecondArray};
    use arrow::util::display::array_value_to_string;
    let l = cspcost::store::Lake::open(&arg(lake)).unwrap();
    let mut out = Vec::new();
    for b in l.get_parquet(rel).unwrap().unwrap_or_default() {
        for i in 0..b.num_rows() {
            let cells: Vec<String> = cols
                .iter()
                .map(|c| {
                    let a = b
                        .column_by_name(c)
                        .unwrap_or_else(|| panic!("no column {c}"));
                    let ts = a.as_any().downcast_ref::<TimestampMicrosecondArray>();
                    match ts {
                        _ if a.is_null(i) => "null".to_string(),
                        // arrow's display cannot name the "UTC" zone without chrono-tz.
                        Some(ts) => cspcost::model::time::from_micros(ts.value(i))
                            .format("%Y-%m-%dT%H:%M:%SZ")
                            .to_string(),
                        None => array_value_to_string(a, i).unwrap(),
                    }
                })
                .collect();
            out.push(cells.join(" | "));
        }
    }
    out
}

/// Lake-relative path -> bytes of every file under `costs/` whose name starts with `prefix`
/// (`usage-`, `purchases-`).
pub fn cost_files(lake: &Path, prefix: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&lake.join("costs"), &mut files);
    files
        .into_iter()
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().starts_with(prefix))
                .unwrap_or(false)
        })
        .map(|p| {
            let rel = p.strip_prefix(lake).unwrap().display().to_string();
            (rel, std::fs::read(&p).unwrap())
        })
        .collect()
}
