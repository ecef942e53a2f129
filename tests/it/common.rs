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

/// Render chosen columns of every row of a lake Parquet file as `a|b|c` lines (arrow's own
/// display of each value), in file order.
pub fn render(lake: &Path, rel: &str, columns: &[&str]) -> Vec<String> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let l = cspcost::store::Lake::open(&arg(lake)).unwrap();
    let batches = l
        .get_parquet(rel)
        .unwrap()
        .unwrap_or_else(|| panic!("{rel} missing"));
    let mut out = Vec::new();
    let opts = FormatOptions::default().with_null("null");
    for b in &batches {
        let fmts: Vec<ArrayFormatter> = columns
            .iter()
            .map(|c| {
                ArrayFormatter::try_new(
                    b.column_by_name(c)
                        .unwrap_or_else(|| panic!("no column {c}"))
                        .as_ref(),
                    &opts,
                )
                .unwrap()
            })
            .collect();
        for i in 0..b.num_rows() {
            out.push(
                fmts.iter()
                    .map(|f| f.value(i).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    out
}

/// Write a file (creating directories) and return its path.
pub fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

/// stderr of an output as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The one staged usage file of a month (tests that stage a single tenant).
pub fn month_file(lake: &Path, month: &str) -> String {
    let dir = lake.join(format!("staged/usage/month={month}"));
    let buckets: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(buckets.len(), 1, "{buckets:?}");
    format!("staged/usage/month={month}/{}/data.parquet", buckets[0])
}
