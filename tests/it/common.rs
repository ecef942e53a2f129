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
