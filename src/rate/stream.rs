//! Rating the default tier scope as a stream (issue 16). `ingest` writes every staged
//! partition in the staged order (subscription, meter, start, end, resource, additional
//! information, key), which inside one (subscription, meter) ladder is rating.md §4's order.
//! So a staged file is rated in chunks, carrying one running sum ([`StreamRater`]), and a
//! large file is cut into tasks where a ladder starts: memory holds one chunk per worker,
//! and a month of a single subscription still keeps every core busy.

use crate::error::Result;
use crate::model::schema::Cols;
use crate::model::usage::{col, usage_from_batch, UsageRecord, RATING_COLUMNS};
use crate::pricing::rated::RatedRow;
use crate::rate::engine::{output_order, OutOfOrder, StreamRater};
use crate::rate::run::{MonthJob, UnitOutput};
use crate::rate::runs::RunWriter;
use crate::store::Lake;
use std::collections::BTreeMap;
use std::ops::Range;

/// Rows of a staged file above which it is cut into several tasks.
const TASK_ROWS: u64 = 128 * 1024;
/// Records rated at a time by one task.
pub(super) const CHUNK_ROWS: usize = 32 * 1024;
/// Rows per batch read from a staged file.
pub(super) const READ_ROWS: usize = 8 * 1024;

/// A stretch of one staged file that starts where a ladder starts and ends where one ends.
pub struct Task {
    /// Lake-relative staged file.
    pub file: String,
    /// Its rows.
    pub rows: Range<u64>,
}

/// Cut a staged file into tasks of at least `TASK_ROWS` rows (the last one may be smaller),
/// each beginning at a (subscription, meter) change.
pub fn plan_tasks(lake: &Lake, file: &str) -> Result<Vec<Task>> {
    let total = lake.parquet_row_count(file)?.unwrap_or(0);
    let limit = crate::store::scratch::size_override("CSPCOST_RATE_TASK_ROWS", TASK_ROWS);
    let mut cuts = vec![0u64];
    if total > limit {
        let columns = [col::SUBSCRIPTION, col::METER];
        let mut prev: Option<(String, String)> = None;
        let mut row = 0u64;
        for b in lake
            .parquet_batches(file, Some(&columns), None, 64 * 1024)?
            .into_iter()
            .flatten()
        {
            let b = b?;
            let c = Cols(&b);
            let (s, m) = (c.str(col::SUBSCRIPTION)?, c.str(col::METER)?);
            for i in 0..b.num_rows() {
                let (si, mi) = (s.value(i), m.value(i));
                let changed = !matches!(&prev, Some((ps, pm)) if ps == si && pm == mi);
                if changed {
                    if prev.is_some() && row - cuts[cuts.len() - 1] >= limit {
                        cuts.push(row);
                    }
                    prev = Some((si.to_string(), mi.to_string()));
                }
                row += 1;
            }
        }
    }
    cuts.push(total);
    Ok(cuts
        .windows(2)
        .map(|w| Task {
            file: file.to_string(),
            rows: w[0]..w[1],
        })
        .collect())
}

/// Where to cut buffered records so that no (subscription, meter, start) group is split
/// (a run's rows are sorted in output order chunk by chunk); 0 when they are all one group.
pub(super) fn chunk_cut(records: &[UsageRecord]) -> usize {
    let Some(last) = records.last() else {
        return 0;
    };
    let same = |r: &UsageRecord| {
        r.subscription_id == last.subscription_id
            && r.meter_id == last.meter_id
            && r.usage_start == last.usage_start
    };
    records.iter().rposition(|r| !same(r)).map_or(0, |i| i + 1)
}

impl MonthJob<'_> {
    /// Phase 1 for one task: stream its records through the rater, appending each chunk's
    /// rated rows to one sorted run per organization. [`OutOfOrder`] when the file is not
    /// in staged order (its runs are removed; the caller rates the file as one unit).
    pub(super) fn rate_task(
        &self,
        unit: usize,
        task: &Task,
    ) -> Result<std::result::Result<UnitOutput, OutOfOrder>> {
        let mut out = UnitOutput::default();
        let Some(mut rater) = StreamRater::new(self.ctx, self.month) else {
            return Ok(Err(OutOfOrder));
        };
        let chunk_rows =
            crate::store::scratch::size_override("CSPCOST_RATE_CHUNK_ROWS", CHUNK_ROWS as u64)
                as usize;
        let mut writers: BTreeMap<String, RunWriter> = BTreeMap::new();
        let mut pending: Vec<UsageRecord> = Vec::new();
        let mut batches = self
            .lake
            .parquet_batches(
                &task.file,
                Some(&RATING_COLUMNS),
                Some(task.rows.clone()),
                READ_ROWS,
            )?
            .into_iter()
            .flatten();
        loop {
            let next = batches.next().transpose()?;
            let done = next.is_none();
            if let Some(b) = next {
                usage_from_batch(&b, &mut pending)?;
            }
            if !done && pending.len() < chunk_rows {
                continue;
            }
            let cut = if done {
                pending.len()
            } else {
                chunk_cut(&pending)
            };
            if cut > 0 {
                let rest = pending.split_off(cut);
                let mut chunk = std::mem::replace(&mut pending, rest);
                chunk.retain(|r| self.owns(r));
                if self
                    .stream_chunk(&mut rater, &chunk, unit, &mut writers, &mut out)?
                    .is_err()
                {
                    for w in writers.into_values() {
                        w.discard();
                    }
                    return Ok(Err(OutOfOrder));
                }
            }
            if done {
                break;
            }
        }
        super::run::fill_raw(
            self.lake,
            &[(task.file.clone(), Some(task.rows.clone()))],
            &mut out.quarantine,
        )?;
        out.runs = writers
            .into_values()
            .map(RunWriter::finish)
            .collect::<Result<_>>()?;
        Ok(Ok(out))
    }

    /// Rate one chunk and append its rows to the organizations' runs.
    pub(super) fn stream_chunk(
        &self,
        rater: &mut StreamRater,
        chunk: &[UsageRecord],
        unit: usize,
        writers: &mut BTreeMap<String, RunWriter>,
        out: &mut UnitOutput,
    ) -> Result<std::result::Result<(), OutOfOrder>> {
        let rows = match rate_counted(rater, chunk, out)? {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let mut by_org: BTreeMap<&str, Vec<RatedRow>> = BTreeMap::new();
        for row in rows {
            by_org.entry(row.org.id.as_str()).or_default().push(row);
        }
        for (org_id, mut rows) in by_org {
            rows.sort_by(output_order);
            if !writers.contains_key(org_id) {
                let w = RunWriter::create(&self.run_path(unit, org_id), rows[0].org, self.month)?;
                writers.insert(org_id.to_string(), w);
            }
            let w = writers.get_mut(org_id).expect("inserted above");
            for c in rows.chunks(64 * 1024) {
                w.append(&crate::emit::costs::usage_batch(
                    &self.header(rows[0].org),
                    c,
                    self.run_id,
                )?)?;
            }
        }
        Ok(Ok(()))
    }
}

/// Rate one chunk of a stream and count it in `out` (staged, rated, unknown units,
/// quarantine); the rated rows.
pub(super) fn rate_counted<'a, 'c: 'a>(
    rater: &mut StreamRater<'c>,
    chunk: &'a [UsageRecord],
    out: &mut UnitOutput,
) -> Result<std::result::Result<Vec<RatedRow<'a>>, OutOfOrder>> {
    let rating = match rater.rate_chunk(chunk)? {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    out.staged += chunk.len() as u64;
    out.rated += rating.rows.len() as u64;
    out.unknown_units
        .add(&crate::emit::focus::UnknownUnits::count(
            rating
                .rows
                .iter()
                .map(|r| [Some(r.version.unit_text.as_str()), r.rec.unit.as_deref()]),
        ));
    out.quarantine.extend(rating.quarantine);
    Ok(Ok(rating.rows))
}
