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
    cspcost_env(args, &[])
}

/// Run `cspcost` and require exit 0; returns stdout.
pub fn ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    ok_env(args, &[])
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
    let l = cspcost::store::Lake::open(&arg(lake)).unwrap();
    let batches = l
        .get_parquet(rel)
        .unwrap()
        .unwrap_or_else(|| panic!("{rel} missing"));
    let mut out = Vec::new();
    for b in &batches {
        out.extend(rows_of(b, columns));
    }
    out
}

/// The rows of a batch, the named columns in order, as `a|b|c` (arrow's display of each value).
pub fn rows_of(b: &arrow::array::RecordBatch, columns: &[&str]) -> Vec<String> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let opts = FormatOptions::default().with_null("null");
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
    (0..b.num_rows())
        .map(|i| {
            fmts.iter()
                .map(|f| f.value(i).to_string())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
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

/// Tenant, subscriptions and meter of the synthetic lakes built from rating.md's examples.
pub const T: &str = "aaaaaaaa-0000-0000-0000-000000000001";
/// First subscription.
pub const S1: &str = "bbbbbbbb-0000-0000-0000-000000000001";
/// Second subscription.
pub const S2: &str = "bbbbbbbb-0000-0000-0000-000000000002";
/// Meter `M` of rating.md §7.
pub const M: &str = "cccccccc-0000-0000-0000-000000000001";

/// A lake with one EUR organization (+10 %), Microsoft's 2026-01 EUR rate 1.0854, tenant `T`,
/// the given price-sheet rows (`meter,unit,min,price,effective`) and usage records
/// (`subscription,day,quantity,unit`, January 2026 unless the day is `MM-DD`).
pub fn synth_lake(
    prices: &[(&str, &str, &str, &str, &str)],
    usage: &[(&str, &str, &str, &str)],
) -> tempfile::TempDir {
    let dir = lake();
    let src = lake();
    let s = src.path();
    write(
        s,
        "ref/partnerships.csv",
        "partnership_id,partnership_name\np1,Partner One\n",
    );
    write(s, "ref/organizations.csv", "organization_id,organization_name,billing_currency,consumption_adjustment_percent,reservation_markup_percent\neu,Euro Org,EUR,10,\n");
    write(
        s,
        "ref/tenants.csv",
        &format!("customer_tenant_id,organization_id,partnership_id\n{T},eu,p1\n"),
    );
    write(s, "ref/fx_rates.csv", "\"CurrencyCode\",\"USDPerUnit\",\"Month\"\n\"EUR\",\"1.0854\",\"202601\"\n\"EUR\",\"1.0790\",\"202602\"\n");
    let mut sheet = String::from("meterId,meterName,unitOfMeasure,tierMinimumUnits,unitPrice,effectiveStartDate,currencyCode,type,isPrimaryMeterRegion\n");
    for (meter, unit, min, price, eff) in prices {
        sheet.push_str(&format!(
            "{meter},Meter,{unit},{min},{price},{eff}T00:00:00Z,USD,Consumption,true\n"
        ));
    }
    write(s, "prices/sheet.csv", &sheet);
    let mut nd = String::new();
    for (sub, day, q, unit) in usage {
        let day = if day.contains('-') {
            format!("2026-{day}")
        } else {
            format!("2026-01-{day}")
        };
        let d = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d").unwrap();
        let next = d.succ_opt().unwrap();
        let unit_field = if unit.is_empty() {
            String::new()
        } else {
            format!(r#","unit":"{unit}""#)
        };
        nd.push_str(&format!(
            r#"{{"customerTenantId":"{T}","subscriptionId":"{sub}","usageStartTime":"{d}T00:00:00Z","usageEndTime":"{next}T00:00:00Z","resource":{{"id":"{M}"}},"quantity":{q}{unit_field}}}"#
        ));
        nd.push('\n');
    }
    write(s, "usage/u.ndjson", &nd);
    let l = arg(dir.path());
    ok(["ingest", "reference", "--lake", &l, &arg(&s.join("ref"))]);
    ok(["ingest", "prices", "--lake", &l, &arg(&s.join("prices"))]);
    ok(["ingest", "usage", "--lake", &l, &arg(&s.join("usage"))]);
    dir
}

/// The four January days of rating.md §7 on subscription `S1`.
pub const FOUR_DAYS: [(&str, &str, &str, &str); 4] = [
    (S1, "01", "3", "1 GB"),
    (S1, "02", "4", "1 GB"),
    (S1, "03", "95.5", "1 GB"),
    (S1, "04", "1.25", "1 GB"),
];

/// Ladder L1 of rating.md §7.
pub const L1: [(&str, &str, &str, &str, &str); 3] = [
    (M, "1 GB", "0", "0", "2026-01-01"),
    (M, "1 GB", "5", "0.087", "2026-01-01"),
    (M, "1 GB", "100", "0.083", "2026-01-01"),
];

/// Run `cspcost` with extra environment variables (object-store credentials, fault
/// injection); `CSPCOST_CRASH_AT` is only set when given.
pub fn cspcost_env<I, S>(args: I, env: &[(&str, &str)]) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_cspcost"))
        .args(args)
        .env_remove("CSPCOST_CRASH_AT")
        .envs(env.iter().copied())
        .output()
        .expect("run cspcost")
}

/// [`cspcost_env`] requiring exit 0; returns stdout.
pub fn ok_env<I, S>(args: I, env: &[(&str, &str)]) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = cspcost_env(args, env);
    assert!(
        out.status.success(),
        "cspcost failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What [`ingest_sample`] ingests, in order: (kind, path under `sample_data/`).
pub const SAMPLE_INPUTS: [(&str, &str); 4] = [
    ("reference", "reference"),
    ("prices", "prices"),
    ("usage", "usage/dump-2026-01-20"),
    ("usage", "usage/dump-2026-02-16"),
];

/// Ingest some of [`SAMPLE_INPUTS`] into any lake location (a directory or an object-store
/// URL), with extra environment variables.
pub fn ingest_inputs(lake: &str, inputs: &[(&str, &str)], env: &[(&str, &str)]) {
    for (kind, rel) in inputs {
        ok_env(["ingest", kind, "--lake", lake, &arg(&sample(rel))], env);
    }
}

/// Columns that name the run which wrote a row: they differ between two runs of the same
/// inputs, everything else must not (`raw_source` is the path of the run's source archive).
pub const RUN_ID_COLUMNS: [&str; 4] = ["x_RunId", "ingest_run_id", "run_id", "raw_source"];

/// Every row of a Parquet file, all columns but `skip`, rendered `a|b|c` in file order.
pub fn render_file(path: &Path, skip: &[&str]) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .build()
        .unwrap();
    let mut out = Vec::new();
    for b in reader {
        let b = b.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let schema = b.schema();
        let columns: Vec<&str> = schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|n| !skip.contains(n))
            .collect();
        out.extend(rows_of(&b, &columns));
    }
    out
}

/// Lake-relative paths of every file under `dir` (sorted, `/`-separated).
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap();
                out.push(
                    rel.components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/"),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The data of every Parquet file in a lake, keyed by path with `run=<id>` folded to `run=*`
/// (ingest quarantine is one file per run), rows rendered without the run-ID columns. Two
/// lakes built from the same inputs have equal snapshots.
pub fn parquet_snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out = std::collections::BTreeMap::new();
    for rel in files_under(dir) {
        if !rel.ends_with(".parquet") || rel.starts_with("_tmp/") {
            continue;
        }
        let key = rel
            .split('/')
            .map(|s| if s.starts_with("run=") { "run=*" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let mut rows = render_file(&dir.join(&rel), &RUN_ID_COLUMNS);
        out.entry(key).or_insert_with(Vec::new).append(&mut rows);
    }
    out
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

/// A copy of a shipped pipeline whose lake points into `dir`.
pub fn pipeline_into(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(root().join("pipelines").join(name)).unwrap();
    let text = text
        .replace("${CSPCOST_LAKE:-../out}", &arg(&dir.join("lake")))
        .replace(
            "\"../sample_data",
            &format!("\"{}", arg(&root().join("sample_data"))),
        );
    write(dir, name, &text)
}

/// Like [`render`], joined with ` | `.
pub fn rows_text(lake: &Path, rel: &str, columns: &[&str]) -> Vec<String> {
    render(lake, rel, columns)
        .into_iter()
        .map(|r| r.replace('|', " | "))
        .collect()
}

/// The Python with `duckdb` and `pyarrow`: `CSPCOST_PYTHON` (as `make test` sets it), else the
/// repository's `.venv/` that `make venv` creates. Missing, the test fails naming the make
/// target, unless `CSPCOST_SKIP_INTEROP=1` skips it explicitly (`make test` never sets it).
pub fn interop_python(test: &str) -> Option<String> {
    match std::env::var("CSPCOST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => venv_python(".venv", "venv", "CSPCOST_SKIP_INTEROP").map(|p| {
            eprintln!("{test}: using {}", p.display());
            p.display().to_string()
        }),
    }
}

/// Every `*.parquet` file under `dir`, sorted, as paths relative to `dir`.
pub fn parquet_files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// One Parquet file read back with its columns cast to the cost schema's types (files written
/// by other tools may choose other Arrow types for the same Parquet column, e.g. a timestamp
/// zone written `+00:00`) and rendered as text, one `Vec` per row in file order; `x_RunId` is
/// left out (it names the writer).
pub fn cost_rows(path: &Path) -> Vec<Vec<String>> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let schema = cspcost::emit::costs::cost_schema();
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let opts = FormatOptions::default().with_null("null");
    let mut out = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let cols: Vec<arrow::array::ArrayRef> = schema
            .fields()
            .iter()
            .filter(|f| f.name() != cspcost::emit::costs::col::RUN_ID)
            .map(|f| {
                let c = b
                    .column_by_name(f.name())
                    .unwrap_or_else(|| panic!("{}: no column {}", path.display(), f.name()));
                arrow::compute::cast(c, f.data_type())
                    .unwrap_or_else(|e| panic!("{}: column {}: {e}", path.display(), f.name()))
            })
            .collect();
        let fmts: Vec<ArrayFormatter> = cols
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap())
            .collect();
        for i in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    out
}

/// The Python of a venv that a Makefile target creates under the repository (`make test`
/// depends on it), e.g. `.venv-airflow`. Missing, the test fails, naming the target, unless
/// `skip_var` is `1` (which `make test` never sets): then it says so and returns `None`.
pub fn venv_python(venv: &str, make_target: &str, skip_var: &str) -> Option<PathBuf> {
    let dir = root().join(venv);
    // The Makefile touches `.ok` after the last install step: a half-made venv is missing.
    if dir.join(".ok").exists() {
        return Some(dir.join("bin/python"));
    }
    if std::env::var(skip_var).is_ok_and(|v| v == "1") {
        eprintln!("skipped: {venv}/ is missing and {skip_var}=1");
        return None;
    }
    panic!(
        "{}/ is missing or incomplete: run `make {make_target}` (or set {skip_var}=1 to skip)",
        dir.display()
    );
}

/// `(org, month, rows, billed cost)` of every partition the lake's newest run published, as
/// its manifest records them, sorted: what readers' per-partition sums must equal.
pub fn manifest_totals(lake: &Path) -> Vec<(String, String, u64, String)> {
    let m = &manifests(lake)[0];
    let mut cli: Vec<_> = m
        .partitions
        .iter()
        .map(|p| {
            let parts: Vec<&str> = p.path.split('/').collect();
            (
                parts[1].trim_start_matches("org=").to_string(),
                parts[2].trim_start_matches("month=").to_string(),
                p.rows,
                p.billed_cost.clone().unwrap(),
            )
        })
        .collect();
    cli.sort();
    cli
}

/// Copy every object under `prefix/` of an object store into a new local directory, same
/// layout, so that the local helpers (`files_under`, `parquet_snapshot`) read a remote lake.
pub fn mirror_store(store: &dyn object_store::ObjectStore, prefix: &str) -> tempfile::TempDir {
    use object_store::ObjectStoreExt;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = lake();
    rt.block_on(async {
        let prefix = object_store::path::Path::from(prefix);
        let mut pending = vec![prefix.clone()];
        let mut copied = 0;
        while let Some(p) = pending.pop() {
            let listed = store.list_with_delimiter(Some(&p)).await.unwrap();
            pending.extend(listed.common_prefixes);
            for o in listed.objects {
                let rel: Vec<String> = o
                    .location
                    .prefix_match(&prefix)
                    .unwrap()
                    .map(|p| p.as_ref().to_string())
                    .collect();
                let bytes = store.get(&o.location).await.unwrap().bytes().await.unwrap();
                let path = dir.path().join(rel.join("/"));
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, &bytes).unwrap();
                copied += 1;
            }
        }
        assert!(copied > 0, "nothing under {prefix}");
    });
    dir
}

/// Check a mirrored object-store lake against a local lake of the same inputs: nothing
/// temporary on the store, the same cost files and number of source archives, the same data
/// in every Parquet file (run IDs aside). Returns the mirror's snapshot.
pub fn assert_mirror_equals(
    mirror: &Path,
    local: &Path,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let costs = |files: Vec<String>| -> Vec<String> {
        files
            .into_iter()
            .filter(|f| f.starts_with("costs/"))
            .collect()
    };
    let remote_files = files_under(mirror);
    assert!(
        !remote_files.iter().any(|f| f.starts_with("_tmp")),
        "scratch work must stay local: {remote_files:?}"
    );
    // The source archives are named by run: as many on the store as in the local lake.
    let archives = |files: &[String]| {
        files
            .iter()
            .filter(|f| f.starts_with("staged/sources/") && f.ends_with(".zst"))
            .count()
    };
    let local_files = files_under(local);
    assert!(archives(&local_files) > 0, "{local_files:?}");
    assert_eq!(archives(&remote_files), archives(&local_files));
    assert_eq!(costs(remote_files), costs(local_files));
    let remote_data = parquet_snapshot(mirror);
    assert_eq!(remote_data, parquet_snapshot(local));
    remote_data
}
