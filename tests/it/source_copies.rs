//! Record texts kept by reference (staged/sources): staged rows of JSON pages refer to the
//! lake's compressed copy of their page instead of copying the text, and every quarantine
//! shows exactly the texts a lake that carries them (`CSPCOST_INGEST_RAW_REFS=0`) shows.

use crate::common::*;
use cspcost::model::usage::{usage_from_batch, RawRef, UsageRecord};
use cspcost::store::Lake;
use std::collections::BTreeMap;
use std::path::Path;

/// Every staged usage row, by (source file, row).
fn staged_rows(lake: &Path) -> BTreeMap<(String, i64), UsageRecord> {
    let l = Lake::open(&arg(lake)).unwrap();
    let mut rows = Vec::new();
    for month in cspcost::staged::usage::staged_months(&l).unwrap() {
        for f in cspcost::staged::usage::month_files(&l, &month).unwrap() {
            for b in l.get_parquet(&f).unwrap().unwrap() {
                usage_from_batch(&b, &mut rows).unwrap();
            }
        }
    }
    rows.into_iter()
        .map(|r| ((r.source_file.clone(), r.source_row), r))
        .collect()
}

/// Every quarantine row of a lake (ingest runs and rated months): stage, reason, file, row
/// and text, sorted.
fn quarantined_texts(lake: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for f in parquet_files(&lake.join("quarantine")) {
        let stage = f.split('/').next().unwrap_or_default().to_string();
        let rel = format!("quarantine/{f}");
        for r in render(
            lake,
            &rel,
            &["reason_code", "source_file", "source_row", "raw"],
        ) {
            out.push(format!("{stage}|{r}"));
        }
    }
    out.sort();
    out
}

/// The sample dumps, ingested and rated with texts by reference or carried.
fn sample_lake(env: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = lake();
    ingest_inputs(&arg(dir.path()), &SAMPLE_INPUTS, env);
    ok(["rate", "--lake", &arg(dir.path())]);
    dir
}

#[test]
fn texts_read_back_from_the_source_copies_equal_the_texts_carried() {
    let by_ref = sample_lake(&[]);
    let carried = sample_lake(&[("CSPCOST_INGEST_RAW_REFS", "0")]);
    let (refs, texts) = (staged_rows(by_ref.path()), staged_rows(carried.path()));
    assert_eq!(
        refs.keys().collect::<Vec<_>>(),
        texts.keys().collect::<Vec<_>>()
    );
    // Every sample record is a JSON page item or NDJSON line: all by reference.
    assert!(refs.len() > 200, "{}", refs.len());
    let wanted: Vec<&RawRef> = refs.values().filter_map(|r| r.raw_ref.as_ref()).collect();
    assert_eq!(wanted.len(), refs.len());
    assert!(refs.values().all(|r| r.raw.is_empty()));
    assert!(texts
        .values()
        .all(|r| r.raw_ref.is_none() && r.raw.starts_with('{')));
    // Read back, each is the text carried, byte for byte.
    let l = Lake::open(&arg(by_ref.path())).unwrap();
    let back = cspcost::staged::sources::read_texts(&l, &wanted).unwrap();
    for ((key, carried), back) in texts.iter().zip(&back) {
        assert_eq!(&carried.raw, back, "{key:?}");
    }
    // Apart from the text, the rows are the same.
    for (key, r) in &refs {
        let mut r = r.clone();
        let t = &texts[key];
        (r.raw, r.raw_ref, r.ingest_run_id) = (t.raw.clone(), None, t.ingest_run_id.clone());
        assert_eq!(&r, t);
    }
    // The quarantines (duplicates at ingest, records rating could not price) show the same
    // texts, and some of them were read back.
    let q = quarantined_texts(by_ref.path());
    assert!(
        q.iter()
            .any(|r| r.starts_with("stage=ingest|DUPLICATE_RECORD|")),
        "{q:?}"
    );
    assert!(q.iter().any(|r| r.starts_with("stage=rate|")), "{q:?}");
    let duplicates = q.iter().filter(|r| r.contains("|DUPLICATE_RECORD|"));
    assert!(duplicates.clone().all(|r| r.ends_with('}')), "{q:?}");
    assert_eq!(q, quarantined_texts(carried.path()));
    // The copies: one archive of the first dump, one of the second.
    let copies = files_under(&by_ref.path().join("staged/sources"));
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert!(!carried.path().join("staged/sources").exists());
}

/// A gzip page's records refer to its decompressed text (read back, it is the text a lake
/// that carries it holds); CSV rows carry theirs (a row's text is rebuilt from its cells).
#[test]
fn gzip_pages_refer_to_their_text_and_csv_rows_carry_theirs() {
    let src = lake();
    let route = "customers/cb68bce3-1e3f-416d-a860-6a6043d14194/subscriptions/a6ed65ff-25c8-4671-9309-ee09d8c6571a/utilizations/azure";
    let page = std::fs::read(sample(&format!(
        "usage/dump-2026-01-20/{route}/page-001.json"
    )))
    .unwrap();
    let dir = src.path().join(route);
    std::fs::create_dir_all(&dir).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &page).unwrap();
    std::fs::write(dir.join("page-001.json.gz"), gz.finish().unwrap()).unwrap();
    let t = "cb68bce3-1e3f-416d-a860-6a6043d14194";
    let s = "a6ed65ff-25c8-4671-9309-ee09d8c6571a";
    let m = "9995d93a-7d35-4d3f-9c69-7a7fea447ef4";
    write(
        src.path(),
        "u.csv",
        &format!("customerTenantId,subscriptionId,usageStartTime,usageEndTime,resource.id,quantity,unit,resourceUri\n{t},{s},2025-12-01T00:00:00Z,2025-12-02T00:00:00Z,{m},1,1 GB,/r/csv\n"),
    );
    let (by_ref, carried) = (lake(), lake());
    ok([
        "ingest",
        "usage",
        "--lake",
        &arg(by_ref.path()),
        &arg(src.path()),
    ]);
    ok_env(
        [
            "ingest",
            "usage",
            "--lake",
            &arg(carried.path()),
            &arg(src.path()),
        ],
        &[("CSPCOST_INGEST_RAW_REFS", "0")],
    );
    let (rows, texts) = (staged_rows(by_ref.path()), staged_rows(carried.path()));
    let of = |rows: &BTreeMap<(String, i64), UsageRecord>, suffix: &str| -> Vec<UsageRecord> {
        rows.values()
            .filter(|r| r.source_file.ends_with(suffix))
            .cloned()
            .collect()
    };
    let (gz, csv) = (of(&rows, "page-001.json.gz"), of(&rows, "u.csv"));
    assert!(
        gz.len() > 10 && csv.len() == 1,
        "{} {}",
        gz.len(),
        csv.len()
    );
    assert!(csv[0].raw_ref.is_none() && csv[0].raw == of(&texts, "u.csv")[0].raw);
    let wanted: Vec<&RawRef> = gz.iter().filter_map(|r| r.raw_ref.as_ref()).collect();
    assert_eq!(wanted.len(), gz.len());
    let l = Lake::open(&arg(by_ref.path())).unwrap();
    let back = cspcost::staged::sources::read_texts(&l, &wanted).unwrap();
    let carried: Vec<String> = of(&texts, "page-001.json.gz")
        .into_iter()
        .map(|r| r.raw)
        .collect();
    assert_eq!(back, carried);
    assert!(carried.iter().all(|t| t.starts_with('{') && t.len() > 100));
    assert_eq!(files_under(&by_ref.path().join("staged/sources")).len(), 1);
}

/// A lake staged before the references (no `raw_source`, `raw_offset`, `raw_length`) keeps
/// working: a new dump merges into its partitions, in memory and from disk, and rating
/// quarantines with the texts of both.
#[test]
fn partitions_staged_without_references_merge_and_rate() {
    let by_ref = sample_lake(&[]);
    for big in ["0", "100000000"] {
        let old = lake();
        let l = arg(old.path());
        let env = [("CSPCOST_INGEST_RAW_REFS", "0")];
        ingest_inputs(&l, &SAMPLE_INPUTS[..3], &env);
        strip_reference_columns(old.path());
        ingest_inputs(&l, &SAMPLE_INPUTS[3..], &[("CSPCOST_INGEST_BIG_ROWS", big)]);
        ok(["rate", "--lake", &l]);
        assert_eq!(
            quarantined_texts(old.path()),
            quarantined_texts(by_ref.path()),
            "big rows {big}"
        );
        let rows = staged_rows(old.path());
        assert!(rows.values().any(|r| r.raw_ref.is_some()), "big rows {big}");
        assert!(rows.values().any(|r| r.raw_ref.is_none()), "big rows {big}");
    }
}

/// Rewrite every staged usage partition as a version without the reference columns wrote it.
fn strip_reference_columns(lake: &Path) {
    let l = Lake::open(&arg(lake)).unwrap();
    for month in cspcost::staged::usage::staged_months(&l).unwrap() {
        for f in cspcost::staged::usage::month_files(&l, &month).unwrap() {
            let batches = l.get_parquet(&f).unwrap().unwrap();
            let keep: Vec<usize> = (0..batches[0].num_columns() - 3).collect();
            let old: Vec<_> = batches.iter().map(|b| b.project(&keep).unwrap()).collect();
            let path = lake.join(&f);
            let file = std::fs::File::create(&path).unwrap();
            let mut w = parquet::arrow::ArrowWriter::try_new(file, old[0].schema(), None).unwrap();
            for b in &old {
                w.write(b).unwrap();
            }
            w.close().unwrap();
        }
    }
}
