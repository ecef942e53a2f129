//! Sorted runs and their merge into one partition file. Rating spills, per bucket of subscriptions,
//! one run per organization, already in output order. Runs of different buckets hold
//! disjoint subscriptions (a subscription belongs to one tenant), so the merge interleaves
//! whole subscription blocks and streams them into the partition: memory holds a few
//! batches per run, never the partition.

use crate::emit::costs::{
    cost_schema, hash_batch_buffers, holds_content, sum_decimal, ContentHasher, CONTENT_KEY,
};
use crate::error::{Error, Result};
use crate::model::decimal::Dec10;
use crate::model::reference::Organization;
use crate::model::schema::Cols;
use crate::store::par_writer::ParWriter;
use crate::store::Lake;
use arrow::array::{Array, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Rows per batch and per row group written to a partition (fixed, so the content digest is
/// deterministic; small enough that a merge holds little).
const OUT_BATCH_ROWS: usize = 32 * 1024;

/// Money and quantity columns of a usage partition whose values are nearly all distinct:
/// written plain, since a dictionary (parquet's default) would hash every value into a page
/// as large as the values themselves (a row group is 32 Ki rows, under the dictionary's limit).
pub const DISTINCT_COLUMNS: [&str; 10] = [
    "ListCost",
    "BilledCost",
    "EffectiveCost",
    "ContractedCost",
    "PricingCurrencyEffectiveCost",
    "PricingQuantity",
    "ConsumedQuantity",
    "x_ListCostUsd",
    "x_CumulativeQuantityBefore",
    "x_CumulativeQuantityAfter",
];

/// One organization's sorted run from one unit of work.
pub struct OrgRun {
    /// Organization ID.
    pub org: String,
    /// The run file.
    pub path: PathBuf,
    /// Digest of the run's content (all columns but `x_RunId`).
    pub digest: String,
    /// Sum of `x_ListCostUsd`.
    pub list_cost_usd: Dec10,
    /// Sum of `BilledCost`.
    pub billed_cost: Dec10,
    /// The organization's billing currency.
    pub currency: String,
    /// Rows in the run.
    pub rows: u64,
    /// The run's (subscription, meter) block when it holds only one: the merge opens such a
    /// run only when that block's turn comes.
    pub single_block: Option<Block>,
}

/// Writes one organization's sorted run batch by batch (it lives only until the merge),
/// summing its costs and digesting its content on the way.
pub struct RunWriter {
    org: String,
    currency: String,
    month: String,
    path: PathBuf,
    writer: crate::store::scratch::Writer,
    digest: ContentHasher,
    usd: Dec10,
    billed: Dec10,
    rows: u64,
    /// The blocks of the first and of the last row appended.
    first: Option<Block>,
    last: Option<Block>,
}

impl RunWriter {
    /// Start the run of `org` at `path`.
    pub fn create(path: &Path, org: &Organization, month: &str) -> Result<RunWriter> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let writer = crate::store::scratch::Writer::create(path, &cost_schema())?;
        Ok(RunWriter {
            org: org.id.clone(),
            currency: org.billing_currency.clone(),
            month: month.to_string(),
            path: path.to_path_buf(),
            writer,
            digest: ContentHasher::new(),
            usd: Dec10::ZERO,
            billed: Dec10::ZERO,
            rows: 0,
            first: None,
            last: None,
        })
    }

    /// Append rows that follow the run's last ones in output order.
    pub fn append(&mut self, b: &RecordBatch) -> Result<()> {
        let overflow = |column: &str| Error::Overflow {
            context: format!(
                "summing {column} of organization {}, month {}",
                self.org, self.month
            ),
        };
        self.usd = self
            .usd
            .checked_add(sum_decimal(b, "x_ListCostUsd")?)
            .ok_or_else(|| overflow("x_ListCostUsd"))?;
        self.billed = self
            .billed
            .checked_add(sum_decimal(b, "BilledCost")?)
            .ok_or_else(|| overflow("BilledCost"))?;
        hash_batch_buffers(b, &mut self.digest);
        self.rows += b.num_rows() as u64;
        if b.num_rows() > 0 {
            if self.first.is_none() {
                self.first = block_at(b, 0);
            }
            self.last = block_at(b, b.num_rows() - 1);
        }
        self.writer.write(b)
    }

    /// Close the file.
    pub fn finish(self) -> Result<OrgRun> {
        self.writer.finish()?;
        Ok(OrgRun {
            org: self.org,
            path: self.path,
            digest: self.digest.finish(),
            list_cost_usd: self.usd,
            billed_cost: self.billed,
            currency: self.currency,
            rows: self.rows,
            // Rows are appended in output order: one block when the first and last agree.
            single_block: self.first.filter(|f| Some(f) == self.last.as_ref()),
        })
    }

    /// Drop the run unfinished.
    pub fn discard(self) {
        drop(self.writer);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A (subscription, meter) block: runs hold disjoint blocks, since every unit of work holds
/// whole ladders of the default scope (and a subscription belongs to one customer and one
/// organization, so the other scopes' ladders never split one either).
pub type Block = (String, String);

/// The block of row `i` of a batch of cost rows.
fn block_at(b: &RecordBatch, i: usize) -> Option<Block> {
    let c = Cols(b);
    let (s, m): (&StringArray, &StringArray) = (c.str(SUB).ok()?, c.str(METER).ok()?);
    let v = |a: &StringArray| {
        if a.is_null(i) {
            String::new()
        } else {
            a.value(i).to_string()
        }
    };
    Some((v(s), v(m)))
}

const SUB: &str = crate::emit::costs::col::SUB_ACCOUNT_ID;
const METER: &str = crate::emit::costs::col::METER_ID;

struct Run {
    path: PathBuf,
    /// The one block of a run not opened yet.
    waiting: Option<Block>,
    reader: Option<crate::store::BatchStream>,
    batch: Option<RecordBatch>,
    row: usize,
}

impl Run {
    /// A run; one of a single block is opened only when its block is taken (a merged group
    /// of the customer or organization scope writes a run per block: an organization can have
    /// hundreds, and each open run holds a batch).
    fn open(path: &Path, single_block: Option<Block>) -> Result<Run> {
        let mut run = Run {
            path: path.to_path_buf(),
            waiting: single_block,
            reader: None,
            batch: None,
            row: 0,
        };
        if run.waiting.is_none() {
            run.start()?;
        }
        Ok(run)
    }

    fn start(&mut self) -> Result<()> {
        self.reader = Some(crate::store::scratch::read_file(&self.path, 1024)?);
        self.advance_batch()
    }

    fn advance_batch(&mut self) -> Result<()> {
        self.row = 0;
        self.batch = match self.reader.as_mut() {
            Some(r) => r.next().transpose()?,
            None => None,
        };
        if self.batch.is_none() {
            self.reader = None;
        }
        Ok(())
    }

    /// The (subscription, meter) block at the current row.
    fn block(&self) -> Option<Block> {
        if let Some(w) = &self.waiting {
            return Some(w.clone());
        }
        block_at(self.batch.as_ref()?, self.row)
    }

    /// Take the rows of the current block that lie in the current batch.
    fn take_block(&mut self, block: &Block) -> Result<Option<RecordBatch>> {
        if self.waiting.take().is_some() {
            self.start()?;
        }
        let Some(b) = self.batch.as_ref() else {
            return Ok(None);
        };
        let c = Cols(b);
        let (s, m) = (c.str(SUB)?, c.str(METER)?);
        let is = |a: &StringArray, i: usize, v: &str| {
            if a.is_null(i) {
                v.is_empty()
            } else {
                a.value(i) == v
            }
        };
        let start = self.row;
        let mut end = start;
        while end < b.num_rows() && is(s, end, &block.0) && is(m, end, &block.1) {
            end += 1;
        }
        let slice = b.slice(start, end - start);
        self.row = end;
        if self.row >= b.num_rows() {
            self.advance_batch()?;
        }
        Ok((slice.num_rows() > 0).then_some(slice))
    }
}

/// The merge of sorted runs, a whole (subscription, meter) block at a time from the run whose
/// block sorts first, producing batches of exactly [`OUT_BATCH_ROWS`] rows (the last one
/// shorter), so that the output does not depend on how the runs were cut.
struct RunMerge {
    open: Vec<Run>,
    /// The block being taken, and from which run.
    current: Option<(Block, usize)>,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    done: bool,
    rows: u64,
}

impl RunMerge {
    /// The next slice of the current block, or of the block that sorts first.
    fn pull(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some((key, i)) = &self.current {
                let i = *i;
                if let Some(block) = self.open[i].take_block(key)? {
                    if self.open[i].block().as_ref() != Some(key) {
                        self.current = None;
                    }
                    return Ok(Some(block));
                }
                self.current = None;
            }
            let next = self
                .open
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.block().map(|s| (s, i)))
                .min();
            match next {
                None => return Ok(None),
                Some(n) => self.current = Some(n),
            }
        }
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        while !self.done && self.pending_rows < OUT_BATCH_ROWS {
            match self.pull()? {
                Some(b) => {
                    self.pending_rows += b.num_rows();
                    self.rows += b.num_rows() as u64;
                    self.pending.push(b);
                }
                None => self.done = true,
            }
        }
        if self.pending_rows == 0 {
            return Ok(None);
        }
        let all = concat_batches(&cost_schema(), self.pending.iter())?;
        let n = OUT_BATCH_ROWS.min(all.num_rows());
        self.pending_rows = all.num_rows() - n;
        self.pending = vec![all.slice(n, self.pending_rows)];
        Ok(Some(all.slice(0, n)))
    }
}

/// What a merge produced.
pub struct Merged {
    /// Rows in the partition.
    pub rows: u64,
    /// `true` when the file was written, `false` when the same content was already there.
    pub written: bool,
}

/// Merge sorted runs into the partition file `rel`, atomically (a staging file, then
/// [`Lake::publish`]). If the file already holds the same content (all columns but
/// `x_RunId`), it is left untouched, and nothing is merged: the runs' digests say so before
/// a row is read, which makes re-rating an unchanged month cost its rating only.
pub fn merge_runs(lake: &Lake, rel: &str, runs: &[&OrgRun], digest: &str) -> Result<Merged> {
    if holds_content(lake, rel, digest)? {
        return Ok(Merged {
            rows: runs.iter().map(|r| r.rows).sum(),
            written: false,
        });
    }
    let tmp = lake.staging_file(rel)?;
    let perr = |e| Error::Parquet {
        path: rel.to_string(),
        source: e,
    };
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(perr)?))
        .set_max_row_group_row_count(Some(OUT_BATCH_ROWS));
    for c in DISTINCT_COLUMNS {
        props = props.set_column_dictionary_enabled(ColumnPath::from(c), false);
    }
    let props = props.build();
    let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut writer = ParWriter::try_new(file, cost_schema(), props).map_err(perr)?;
    let mut merge = RunMerge {
        open: runs
            .iter()
            .map(|r| Run::open(&r.path, r.single_block.clone()))
            .collect::<Result<_>>()?,
        current: None,
        pending: Vec::new(),
        pending_rows: 0,
        done: false,
        rows: 0,
    };
    writer.write_from(|| merge.next_batch(), perr)?;
    let rows = merge.rows;
    crate::faults::maybe_crash("partition-write");
    writer.append_key_value_metadata(KeyValue::new(CONTENT_KEY.to_string(), digest.to_string()));
    let file = writer.into_inner().map_err(perr)?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    lake.publish(rel, &tmp)?;
    Ok(Merged {
        rows,
        written: true,
    })
}
