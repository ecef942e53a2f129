//! Sorted runs and their merge into one partition file. Rating spills, per bucket of subscriptions,
//! one run per organization, already in output order. Runs of different buckets hold
//! disjoint subscriptions (a subscription belongs to one tenant), so the merge interleaves
//! whole subscription blocks and streams them into the partition: memory holds a few
//! batches per run, never the partition.

use crate::emit::costs::{cost_schema, CONTENT_KEY};
use crate::error::{Error, Result};
use crate::model::schema::Cols;
use crate::store::scratch::scratch_properties;
use crate::store::Lake;
use arrow::array::{Array, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Rows per batch and per row group written to a partition (fixed, so the content digest is
/// deterministic; small enough that a merge holds little).
const OUT_BATCH_ROWS: usize = 32 * 1024;

/// Write one sorted run (it lives only until the merge).
pub fn write_run(path: &Path, batches: &[RecordBatch]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let perr = |e| Error::Parquet {
        path: path.display().to_string(),
        source: e,
    };
    let mut w =
        ArrowWriter::try_new(file, cost_schema(), Some(scratch_properties())).map_err(perr)?;
    for b in batches {
        w.write(b).map_err(perr)?;
    }
    w.close().map_err(perr)?;
    Ok(())
}

struct Run {
    reader: ParquetRecordBatchReader,
    batch: Option<RecordBatch>,
    row: usize,
    path: PathBuf,
}

impl Run {
    fn open(path: &Path) -> Result<Run> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let perr = |e| Error::Parquet {
            path: path.display().to_string(),
            source: e,
        };
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(perr)?
            .with_batch_size(1024)
            .build()
            .map_err(perr)?;
        let mut run = Run {
            reader,
            batch: None,
            row: 0,
            path: path.to_path_buf(),
        };
        run.advance_batch()?;
        Ok(run)
    }

    fn advance_batch(&mut self) -> Result<()> {
        self.row = 0;
        self.batch = match self.reader.next() {
            Some(b) => Some(b.map_err(|e| Error::Parquet {
                path: self.path.display().to_string(),
                source: parquet::errors::ParquetError::ArrowError(e.to_string()),
            })?),
            None => None,
        };
        Ok(())
    }

    fn subscription(&self) -> Option<String> {
        let b = self.batch.as_ref()?;
        let a: &StringArray = Cols(b).str("SubAccountId").ok()?;
        Some(if a.is_null(self.row) {
            String::new()
        } else {
            a.value(self.row).to_string()
        })
    }

    /// Take the rows of the current subscription block that lie in the current batch.
    fn take_block(&mut self, sub: &str) -> Result<Option<RecordBatch>> {
        let Some(b) = self.batch.as_ref() else {
            return Ok(None);
        };
        let a = Cols(b).str("SubAccountId")?;
        let start = self.row;
        let mut end = start;
        while end < b.num_rows() && !a.is_null(end) && a.value(end) == sub {
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

/// What a merge produced.
pub struct Merged {
    /// Rows in the partition.
    pub rows: u64,
    /// `true` when the file was written, `false` when the same content was already there.
    pub written: bool,
}

/// Merge sorted runs into the partition file `rel`, atomically (a staging file, then
/// [`Lake::publish`]). If the file already holds the same content (all columns but
/// `x_RunId`), it is left untouched.
pub fn merge_runs(lake: &Lake, rel: &str, runs: &[PathBuf], digest: &str) -> Result<Merged> {
    let tmp = lake.staging_file(rel)?;
    let perr = |e| Error::Parquet {
        path: rel.to_string(),
        source: e,
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(perr)?))
        .set_max_row_group_row_count(Some(OUT_BATCH_ROWS))
        .build();
    let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut writer = ArrowWriter::try_new(file, cost_schema(), Some(props)).map_err(perr)?;
    let mut open: Vec<Run> = runs.iter().map(|p| Run::open(p)).collect::<Result<_>>()?;
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_rows = 0usize;
    let mut rows = 0u64;
    let flush =
        |pending: &mut Vec<RecordBatch>, n: usize, writer: &mut ArrowWriter<File>| -> Result<()> {
            if pending.is_empty() {
                return Ok(());
            }
            let all = concat_batches(&cost_schema(), pending.iter())?;
            pending.clear();
            let mut off = 0;
            while off < all.num_rows() {
                let len = n.min(all.num_rows() - off);
                let chunk = all.slice(off, len);
                writer.write(&chunk).map_err(perr)?;
                off += len;
            }
            Ok(())
        };
    loop {
        // The run whose current subscription sorts first emits its whole block.
        let next = open
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.subscription().map(|s| (s, i)))
            .min();
        let Some((sub, i)) = next else { break };
        while let Some(block) = open[i].take_block(&sub)? {
            pending_rows += block.num_rows();
            rows += block.num_rows() as u64;
            pending.push(block);
            if pending_rows >= OUT_BATCH_ROWS {
                // Keep batch boundaries independent of run layout: flush exact multiples.
                let all = concat_batches(&cost_schema(), pending.iter())?;
                let full = all.num_rows() / OUT_BATCH_ROWS * OUT_BATCH_ROWS;
                let rest = all.slice(full, all.num_rows() - full);
                let mut head = vec![all.slice(0, full)];
                flush(&mut head, OUT_BATCH_ROWS, &mut writer)?;
                pending = vec![rest];
                pending_rows = all.num_rows() - full;
            }
            if open[i].subscription().as_deref() != Some(sub.as_str()) {
                break;
            }
        }
    }
    flush(&mut pending, OUT_BATCH_ROWS, &mut writer)?;
    if let Some(kv) = lake.parquet_metadata(rel)? {
        if kv.iter().any(|(k, v)| k == CONTENT_KEY && v == digest) {
            drop(writer);
            let _ = std::fs::remove_file(&tmp);
            return Ok(Merged {
                rows,
                written: false,
            });
        }
    }
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
