//! `ingest usage`: utilization dumps into `staged/usage/month=<YYYY-MM>/bucket=<BB>/data.parquet`.
//!
//! Records stream from the files into per-partition buffers that spill to temporary Parquet
//! files, so memory is bounded by the spill threshold plus one partition at merge time, not
//! by the dump. Each partition is then merged with what is already staged: the same natural
//! key twice in this run is `DUPLICATE_RECORD` (first kept, in path order), a key already
//! staged is *unchanged* (same quantity and unit) or *restated* (the new record replaces it).

use crate::emit::manifest::{Manifest, PartitionSummary};
use crate::emit::quarantine::{count_by_reason, write_quarantine};
use crate::error::{Error, Result};
use crate::ingest::source::{expand_paths, plan_files, Ledger};
use crate::ingest::utilization::{parse_file, Parsed};
use crate::model::ids::stable_hash64;
use crate::model::reason::{QuarantineRecord, ReasonCode};
use crate::model::time::{days_to_date, month_of};
use crate::model::usage::{usage_from_batch, usage_schema, usage_to_batch, UsageRecord};
use crate::progress::{log, Progress};
use crate::store::Lake;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::path::PathBuf;

/// Hash buckets per month: usage of one tenant always lands in one bucket, so subscription
/// and customer tier scopes never span buckets.
pub const BUCKETS: u32 = 16;
/// Records buffered in memory before the largest buffers spill to disk.
const SPILL_ROWS: usize = 100_000;

/// Bucket of a customer tenant.
pub fn bucket_of(tenant: &str) -> u32 {
    (stable_hash64(tenant) % BUCKETS as u64) as u32
}

/// Lake-relative data file of a usage partition.
pub fn partition_file(month: &str, bucket: u32) -> String {
    format!("staged/usage/month={month}/bucket={bucket:02}/data.parquet")
}

/// Months that have staged usage, sorted.
pub fn staged_months(lake: &Lake) -> Result<Vec<String>> {
    Ok(lake
        .list_dir("staged/usage")?
        .into_iter()
        .filter_map(|d| d.strip_prefix("month=").map(str::to_string))
        .collect())
}

/// Lake-relative data files of a month, sorted by bucket.
pub fn month_files(lake: &Lake, month: &str) -> Result<Vec<String>> {
    let dir = format!("staged/usage/month={month}");
    Ok(lake
        .list_dir(&dir)?
        .into_iter()
        .filter(|b| b.starts_with("bucket="))
        .map(|b| format!("{dir}/{b}/data.parquet"))
        .filter(|f| lake.exists(f))
        .collect())
}

/// Read one staged usage file.
pub fn read_partition(lake: &Lake, rel: &str) -> Result<Vec<UsageRecord>> {
    let mut rows = Vec::new();
    for b in lake.get_parquet(rel)?.unwrap_or_default() {
        usage_from_batch(&b, &mut rows)?;
    }
    Ok(rows)
}

type PartKey = (String, u32);

struct Spill {
    dir: PathBuf,
    buffers: BTreeMap<PartKey, Vec<UsageRecord>>,
    files: BTreeMap<PartKey, Vec<PathBuf>>,
    buffered: usize,
    spilled_files: usize,
}

impl Spill {
    fn push(&mut self, r: UsageRecord) -> Result<()> {
        let key = (
            month_of(days_to_date(r.usage_date)),
            bucket_of(&r.customer_tenant_id),
        );
        self.buffers.entry(key).or_default().push(r);
        self.buffered += 1;
        if self.buffered >= SPILL_ROWS {
            self.flush_all()?;
        }
        Ok(())
    }

    fn flush_all(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        for (key, rows) in std::mem::take(&mut self.buffers) {
            let path = self
                .dir
                .join(format!("spill-{:06}.parquet", self.spilled_files));
            self.spilled_files += 1;
            let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
            let perr = |e| Error::Parquet {
                path: path.display().to_string(),
                source: e,
            };
            let mut w = ArrowWriter::try_new(file, usage_schema(), None).map_err(perr)?;
            w.write(&usage_to_batch(&rows)?).map_err(perr)?;
            w.close().map_err(perr)?;
            self.files.entry(key).or_default().push(path);
        }
        self.buffered = 0;
        Ok(())
    }
}

/// New records of one partition, in arrival order, from its spill files.
fn read_spilled(paths: &[PathBuf]) -> Result<Vec<UsageRecord>> {
    let mut rows = Vec::new();
    for path in paths {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let perr = |e| Error::Parquet {
            path: path.display().to_string(),
            source: e,
        };
        for b in ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(perr)?
            .build()
            .map_err(perr)?
        {
            usage_from_batch(&b?, &mut rows)?;
        }
        // Each spill file is read once: free the disk as the merge goes.
        let _ = std::fs::remove_file(path);
    }
    Ok(rows)
}

/// Outcome of merging one partition.
#[derive(Default)]
struct MergeStats {
    new: u64,
    restated: u64,
    unchanged: u64,
    duplicates: Vec<QuarantineRecord>,
    rows: u64,
    written: bool,
}

/// Deterministic order of staged rows (close to the rating order, so rating sorts little).
fn staged_order(a: &UsageRecord, b: &UsageRecord) -> std::cmp::Ordering {
    (
        &a.subscription_id,
        &a.meter_id,
        a.usage_start,
        a.usage_end,
        &a.resource_uri,
        &a.additional_info,
        a.key_hash,
    )
        .cmp(&(
            &b.subscription_id,
            &b.meter_id,
            b.usage_start,
            b.usage_end,
            &b.resource_uri,
            &b.additional_info,
            b.key_hash,
        ))
}

fn merge_partition(
    lake: &Lake,
    key: &PartKey,
    incoming: Vec<UsageRecord>,
    run_id: &str,
) -> Result<MergeStats> {
    let rel = partition_file(&key.0, key.1);
    let mut rows = read_partition(lake, &rel)?;
    let mut index: HashMap<u128, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.key_hash, i))
        .collect();
    let mut seen: HashSet<u128> = HashSet::with_capacity(incoming.len());
    let mut st = MergeStats::default();
    for r in incoming {
        if !seen.insert(r.key_hash) {
            st.duplicates.push(QuarantineRecord {
                reason: ReasonCode::DuplicateRecord,
                detail: format!(
                    "the natural key (tenant {}, subscription {}, meter {}, resource '{}', start {}) appeared earlier in this run; the first record is kept",
                    r.customer_tenant_id,
                    r.subscription_id,
                    r.meter_id,
                    r.resource_uri,
                    crate::model::time::from_micros(r.usage_start).to_rfc3339()
                ),
                source_file: r.source_file.clone(),
                source_row: r.source_row,
                raw: r.raw.clone(),
                customer_tenant_id: Some(r.customer_tenant_id.clone()),
                subscription_id: Some(r.subscription_id.clone()),
                meter_id: Some(r.meter_id.clone()),
                usage_date: Some(days_to_date(r.usage_date)),
            });
            continue;
        }
        match index.get(&r.key_hash) {
            Some(&i) if rows[i].quantity == r.quantity && rows[i].unit == r.unit => {
                st.unchanged += 1
            }
            Some(&i) => {
                st.restated += 1;
                rows[i] = r;
            }
            None => {
                st.new += 1;
                index.insert(r.key_hash, rows.len());
                rows.push(r);
            }
        }
    }
    st.rows = rows.len() as u64;
    if st.new + st.restated > 0 {
        rows.sort_by(staged_order);
        let batches: Vec<_> = rows
            .chunks(64 * 1024)
            .map(usage_to_batch)
            .collect::<Result<_>>()?;
        lake.put_parquet(
            &rel,
            usage_schema(),
            &batches,
            vec![("cspcost.run_id".into(), run_id.into())],
        )?;
        st.written = true;
    }
    Ok(st)
}

/// Options of `ingest usage`.
#[derive(Debug, Clone)]
pub struct IngestUsageOptions {
    /// Files and directories.
    pub paths: Vec<PathBuf>,
}

/// Run `ingest usage`.
pub fn ingest_usage(lake: &Lake, opts: &IngestUsageOptions, run_id: &str) -> Result<Manifest> {
    let started = std::time::Instant::now();
    let mut m = Manifest::start(
        run_id,
        "ingest usage",
        serde_json::json!({ "paths": opts.paths }),
    );
    let files = expand_paths(&opts.paths)?;
    let mut ledger = Ledger::load(lake, "usage")?;
    let (to_read, inputs) = plan_files(&files, &ledger)?;
    m.inputs = inputs;
    let mut spill = Spill {
        dir: lake.scratch_dir(run_id)?.join("usage"),
        buffers: BTreeMap::new(),
        files: BTreeMap::new(),
        buffered: 0,
        spilled_files: 0,
    };
    let mut quarantine: Vec<QuarantineRecord> = Vec::new();
    let mut read = 0u64;
    let total_bytes: u64 = to_read.iter().map(|f| f.bytes).sum();
    let mut progress = Progress::new("ingest usage", total_bytes, true);
    for f in &to_read {
        let (path, bytes) = (&f.path, &f.bytes);
        read += parse_file(path, run_id, &mut |p| match p {
            Parsed::Record(r) => spill.push(*r),
            Parsed::Quarantined(q) => {
                quarantine.push(*q);
                Ok(())
            }
        })?;
        progress.inc(*bytes);
    }
    progress.finish();
    // Everything goes to disk first; then each partition is read back and merged on its own,
    // so memory holds one partition per worker thread, never the whole run.
    spill.flush_all()?;
    let parts: Vec<(PartKey, Vec<PathBuf>)> =
        std::mem::take(&mut spill.files).into_iter().collect();
    let results: Vec<(PartKey, MergeStats)> = parts
        .into_par_iter()
        .with_max_len(1)
        .map(|(key, paths)| {
            let rows = read_spilled(&paths)?;
            merge_partition(lake, &key, rows, run_id).map(|s| (key, s))
        })
        .collect::<Result<_>>()?;
    let (mut new, mut restated, mut unchanged) = (0, 0, 0);
    let mut changed_months = BTreeSet::new();
    for (key, st) in results {
        new += st.new;
        restated += st.restated;
        unchanged += st.unchanged;
        quarantine.extend(st.duplicates);
        if st.written {
            changed_months.insert(key.0.clone());
            m.partitions.push(PartitionSummary {
                path: partition_file(&key.0, key.1),
                rows: st.rows,
                billed_cost: None,
                action: "written".into(),
            });
        }
    }
    lake.remove_scratch(run_id);
    quarantine.sort_by(|a, b| (&a.source_file, a.source_row).cmp(&(&b.source_file, b.source_row)));
    m.counts.insert("read".into(), read);
    m.counts.insert("new".into(), new);
    m.counts.insert("restated".into(), restated);
    m.counts.insert("superseded".into(), restated);
    m.counts.insert("unchanged".into(), unchanged);
    m.counts.insert("files".into(), to_read.len() as u64);
    m.counts.insert(
        "files_skipped_identical".into(),
        (m.inputs.len() - to_read.len()) as u64,
    );
    m.quarantined = count_by_reason(&quarantine);
    m.check_balance("ingest usage", "read", &["new", "restated", "unchanged"])?;
    for mo in &changed_months {
        m.months.insert(mo.clone(), "changed".into());
    }
    if !quarantine.is_empty() {
        write_quarantine(
            lake,
            &format!("quarantine/stage=ingest/run={run_id}/part-0.parquet"),
            run_id,
            &quarantine,
        )?;
    }
    ledger.record(to_read, run_id);
    ledger.save(lake, "usage")?;
    log(&format!("ingest usage: {read} records read, {new} new, {restated} restated, {unchanged} unchanged, {} quarantined", m.quarantined_total()));
    m.finish(lake, started)
}
