//! Quarantine files (outputs.md): ingest quarantine is a log per run, rating and reservation
//! quarantine is state replaced with the partitions it belongs to.

use crate::error::Result;
use crate::model::reason::{QuarantineRecord, ReasonCode};
use crate::model::schema::*;
use crate::model::time::{date_to_days, days_to_date};
use crate::store::Lake;
use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Schema of every quarantine file.
pub fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f_str("reason_code", false),
        f_str("detail", false),
        f_str("source_file", false),
        f_i64("source_row", false),
        f_str("raw", false),
        f_str("customer_tenant_id", true),
        f_str("subscription_id", true),
        f_str("meter_id", true),
        f_date("usage_date", true),
        f_str("run_id", false),
    ]))
}

/// Write quarantine records to `rel`, or delete `rel` when there are none (state files).
pub fn write_quarantine(
    lake: &Lake,
    rel: &str,
    run_id: &str,
    records: &[QuarantineRecord],
) -> Result<()> {
    if records.is_empty() {
        return lake.remove_file(rel);
    }
    let batch = RecordBatch::try_new(
        quarantine_schema(),
        vec![
            a_str(records.iter().map(|r| Some(r.reason.as_str()))),
            a_str(records.iter().map(|r| Some(r.detail.as_str()))),
            a_str(records.iter().map(|r| Some(r.source_file.as_str()))),
            a_i64(records.iter().map(|r| Some(r.source_row))),
            a_str(records.iter().map(|r| Some(r.raw.as_str()))),
            a_str(records.iter().map(|r| r.customer_tenant_id.as_deref())),
            a_str(records.iter().map(|r| r.subscription_id.as_deref())),
            a_str(records.iter().map(|r| r.meter_id.as_deref())),
            a_date(records.iter().map(|r| r.usage_date.map(date_to_days))),
            a_str(records.iter().map(|_| Some(run_id))),
        ],
    )?;
    lake.put_parquet(rel, quarantine_schema(), &[batch], vec![])
}

/// Read a quarantine file (empty when absent).
pub fn read_quarantine(lake: &Lake, rel: &str) -> Result<Vec<QuarantineRecord>> {
    let mut out = Vec::new();
    for b in lake.get_parquet(rel)?.unwrap_or_default() {
        let c = Cols(&b);
        let (code, detail, sf, sr, raw) = (
            c.str("reason_code")?,
            c.str("detail")?,
            c.str("source_file")?,
            c.i64("source_row")?,
            c.str("raw")?,
        );
        let (t, s, m, d) = (
            c.str("customer_tenant_id")?,
            c.str("subscription_id")?,
            c.str("meter_id")?,
            c.date("usage_date")?,
        );
        for i in 0..b.num_rows() {
            out.push(QuarantineRecord {
                reason: ReasonCode::parse(code.value(i)).unwrap_or(ReasonCode::Malformed),
                detail: detail.value(i).to_string(),
                source_file: sf.value(i).to_string(),
                source_row: sr.value(i),
                raw: raw.value(i).to_string(),
                customer_tenant_id: opt_str(t, i).map(str::to_string),
                subscription_id: opt_str(s, i).map(str::to_string),
                meter_id: opt_str(m, i).map(str::to_string),
                usage_date: (!d.is_null(i)).then(|| days_to_date(d.value(i))),
            });
        }
    }
    Ok(out)
}

/// Counts by reason code, in code order.
pub fn count_by_reason(records: &[QuarantineRecord]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for r in records {
        *m.entry(r.reason.as_str().to_string()).or_insert(0) += 1;
    }
    m
}

/// Counts of every quarantine file in the lake: (stage, partition, reason) -> count.
pub fn lake_counts(lake: &Lake) -> Result<Vec<(String, String, String, u64)>> {
    let mut out = Vec::new();
    for stage_dir in lake.list_dir("quarantine")? {
        let stage = stage_dir.trim_start_matches("stage=").to_string();
        let base = format!("quarantine/{stage_dir}");
        let mut files = Vec::new();
        let mut dirs = vec![(String::new(), base.clone())];
        for sub in lake.list_dir(&base)? {
            if sub.contains('=') {
                dirs.push((sub.clone(), format!("{base}/{sub}")));
            }
        }
        for (part, dir) in dirs {
            for f in lake.list_dir(&dir)? {
                if f.starts_with("part-") && f.ends_with(".parquet") {
                    files.push((part.clone(), format!("{dir}/{f}")));
                }
            }
        }
        for (part, rel) in files {
            for (reason, n) in count_by_reason(&read_quarantine(lake, &rel)?) {
                out.push((stage.clone(), part.clone(), reason, n));
            }
        }
    }
    Ok(out)
}
