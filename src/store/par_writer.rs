//! Parquet files whose column chunks are encoded on every core. Encoding and compressing
//! the 79 columns of a cost partition is most of a merge's work, and a month of one
//! organization has one partition to write: with [`parquet::arrow::ArrowWriter`] that is one
//! core. [`ParWriter`] cuts the batches into row groups of the configured size (as
//! `ArrowWriter` does) and encodes each row group's columns in parallel with rayon
//! (parquet's `ArrowColumnWriter` API, made for this).

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowLeafColumn, ArrowRowGroupWriterFactory,
};
use parquet::arrow::ArrowWriter;
use parquet::errors::Result;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use rayon::prelude::*;
use std::io::Write;

/// Rows per row group when the properties set none (parquet's default).
const DEFAULT_GROUP_ROWS: usize = 1024 * 1024;

/// Rows of a decimal column handed to parquet's column writer at once. parquet 60 encodes
/// the decimals of one write into a single buffer and slices each value out of it, so the
/// min and max kept in the row group's statistics pin that whole buffer until the file is
/// closed (apache/arrow-rs#10364): written a row group at a time, 16 bytes per row per
/// decimal column stayed in memory, 360 MB per million rows of a cost partition. In pieces
/// of this many rows, at most two pieces per column and row group stay (1/64 of that).
const DECIMAL_PIECE_ROWS: usize = 256;

/// The slices of `array` to write one after the other: decimals in pieces of
/// [`DECIMAL_PIECE_ROWS`], every other type whole.
fn pieces(data_type: &DataType, array: &ArrayRef) -> Vec<ArrayRef> {
    let decimal = matches!(
        data_type,
        DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
    );
    if !decimal || array.len() <= DECIMAL_PIECE_ROWS {
        return vec![array.clone()];
    }
    (0..array.len())
        .step_by(DECIMAL_PIECE_ROWS)
        .map(|off| array.slice(off, DECIMAL_PIECE_ROWS.min(array.len() - off)))
        .collect()
}

/// Writes record batches as a Parquet file, each row group's columns encoded in parallel.
pub struct ParWriter<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    group_rows: usize,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    groups: usize,
}

impl<W: Write + Send> ParWriter<W> {
    /// A writer of `schema` with `props` (the Arrow schema is embedded as `ArrowWriter` does).
    pub fn try_new(out: W, schema: SchemaRef, props: WriterProperties) -> Result<ParWriter<W>> {
        let group_rows = props
            .max_row_group_row_count()
            .unwrap_or(DEFAULT_GROUP_ROWS)
            .max(1);
        let (writer, factory) =
            ArrowWriter::try_new(out, schema.clone(), Some(props))?.into_serialized_writer()?;
        Ok(ParWriter {
            writer,
            factory,
            schema,
            group_rows,
            pending: Vec::new(),
            pending_rows: 0,
            groups: 0,
        })
    }

    /// Buffer a batch; every full row group is encoded and written.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        push(&mut self.pending, &mut self.pending_rows, batch.clone());
        while self.pending_rows >= self.group_rows {
            self.write_group(self.group_rows)?;
        }
        Ok(())
    }

    /// Encode the first `rows` buffered rows and write them as the next row group.
    fn write_group(&mut self, rows: usize) -> Result<()> {
        let group = take_group(&mut self.pending, &mut self.pending_rows, rows);
        let chunks = encode(&self.factory, &self.schema, self.groups, group)?;
        self.append(chunks)
    }

    /// Write every batch `next` produces (`None` at the end), encoding each row group while
    /// `next` produces the following one (`rayon::join`): a merge that feeds one file then
    /// keeps every core busy instead of waiting for the encoding. The file is the one
    /// [`ParWriter::write`] would make of the same batches.
    pub fn write_from<E: Send>(
        &mut self,
        mut next: impl FnMut() -> std::result::Result<Option<RecordBatch>, E> + Send,
        perr: impl Fn(parquet::errors::ParquetError) -> E,
    ) -> std::result::Result<(), E> {
        let group_rows = self.group_rows;
        let mut done = fill(
            &mut self.pending,
            &mut self.pending_rows,
            group_rows,
            &mut next,
        )?;
        while self.pending_rows >= group_rows {
            let group = take_group(&mut self.pending, &mut self.pending_rows, group_rows);
            let (factory, schema, index) = (&self.factory, &self.schema, self.groups);
            let (pending, pending_rows) = (&mut self.pending, &mut self.pending_rows);
            let (chunks, filled) = rayon::join(
                || encode(factory, schema, index, group),
                || match done {
                    true => Ok(true),
                    false => fill(pending, pending_rows, group_rows, &mut next),
                },
            );
            self.append(chunks.map_err(&perr)?).map_err(&perr)?;
            done = filled?;
        }
        Ok(())
    }

    /// Write encoded columns as the next row group.
    fn append(&mut self, chunks: Vec<ArrowColumnChunk>) -> Result<()> {
        let mut group = self.writer.next_row_group()?;
        for c in chunks {
            c.append_to_row_group(&mut group)?;
        }
        group.close()?;
        self.groups += 1;
        Ok(())
    }

    /// Add key-value metadata to the footer.
    pub fn append_key_value_metadata(&mut self, kv: KeyValue) {
        self.writer.append_key_value_metadata(kv);
    }

    /// Write the last row group and the footer; the output back.
    pub fn into_inner(mut self) -> Result<W> {
        if self.pending_rows > 0 {
            self.write_group(self.pending_rows)?;
        }
        self.writer.into_inner()
    }
}

fn push(pending: &mut Vec<RecordBatch>, rows: &mut usize, batch: RecordBatch) {
    if batch.num_rows() > 0 {
        *rows += batch.num_rows();
        pending.push(batch);
    }
}

/// Pull batches from `next` until a row group is buffered; true once `next` is exhausted.
fn fill<E>(
    pending: &mut Vec<RecordBatch>,
    rows: &mut usize,
    group_rows: usize,
    next: &mut impl FnMut() -> std::result::Result<Option<RecordBatch>, E>,
) -> std::result::Result<bool, E> {
    while *rows < group_rows {
        match next()? {
            Some(b) => push(pending, rows, b),
            None => {
                // The last, partial row group is written like any other.
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The first `n` buffered rows (`n` <= what is buffered), as slices of the buffered batches.
fn take_group(pending: &mut Vec<RecordBatch>, rows: &mut usize, n: usize) -> Vec<RecordBatch> {
    let mut group = Vec::new();
    let mut need = n;
    let mut rest = std::mem::take(pending).into_iter();
    for b in rest.by_ref() {
        if b.num_rows() <= need {
            need -= b.num_rows();
            group.push(b);
        } else {
            group.push(b.slice(0, need));
            pending.push(b.slice(need, b.num_rows() - need));
            need = 0;
        }
        if need == 0 {
            break;
        }
    }
    pending.extend(rest);
    *rows -= n;
    group
}

/// Encode `batches` as row group `index`, the columns in parallel.
fn encode(
    factory: &ArrowRowGroupWriterFactory,
    schema: &SchemaRef,
    index: usize,
    batches: Vec<RecordBatch>,
) -> Result<Vec<ArrowColumnChunk>> {
    let writers = factory.create_column_writers(index)?;
    // Leaves of each batch, transposed to one list per parquet column.
    let mut columns: Vec<Vec<ArrowLeafColumn>> = writers.iter().map(|_| Vec::new()).collect();
    for b in batches {
        let mut leaf = 0;
        for (field, array) in schema.fields().iter().zip(b.columns()) {
            let mut width = 0;
            for piece in pieces(field.data_type(), array) {
                let leaves = compute_leaves(field, &piece)?;
                width = leaves.len();
                for (k, l) in leaves.into_iter().enumerate() {
                    columns[leaf + k].push(l);
                }
            }
            leaf += width;
        }
    }
    writers
        .into_par_iter()
        .zip(columns.into_par_iter())
        .with_max_len(1)
        .map(|(mut w, leaves)| {
            for l in &leaves {
                w.write(l)?;
            }
            w.close()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Decimal128Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::statistics::Statistics;
    use std::sync::Arc;

    /// An id, a nullable decimal amount and a name.
    fn test_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("amount", DataType::Decimal128(38, 10), true),
            Field::new("name", DataType::Utf8, false),
        ]))
    }

    fn group_props(rows: usize) -> WriterProperties {
        WriterProperties::builder()
            .set_max_row_group_row_count(Some(rows))
            .build()
    }

    fn batch(schema: &SchemaRef, from: i64, n: i64) -> RecordBatch {
        // Extremes sit in the middle of pieces, and every 7th amount is null.
        let amounts: Decimal128Array = (from..from + n)
            .map(|i| (i % 7 != 0).then(|| ((i * 7919) % 1000 - 500) as i128 * 10_000_000_001))
            .collect::<Decimal128Array>()
            .with_precision_and_scale(38, 10)
            .unwrap();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(from..from + n)),
                Arc::new(amounts),
                Arc::new(StringArray::from_iter_values(
                    (from..from + n).map(|i| format!("r{i}")),
                )),
            ],
        )
        .unwrap()
    }

    fn decimal_stats(file: &[u8]) -> Vec<(i128, i128, u64)> {
        let meta = parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&bytes::Bytes::copy_from_slice(file))
            .unwrap();
        meta.row_groups()
            .iter()
            .map(|rg| match rg.column(1).statistics() {
                Some(Statistics::FixedLenByteArray(s)) => {
                    let v = |b: &[u8]| i128::from_be_bytes(b.try_into().unwrap());
                    (
                        v(s.min_opt().unwrap().data()),
                        v(s.max_opt().unwrap().data()),
                        s.null_count_opt().unwrap(),
                    )
                }
                other => panic!("no decimal statistics: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn decimals_written_in_pieces_read_back_with_parquets_own_statistics() {
        let schema = test_schema();
        // Batches that straddle row groups, and row groups of many decimal pieces.
        let batches: Vec<RecordBatch> = [(0, 700), (700, 1_900), (2_600, 1_401)]
            .iter()
            .map(|&(from, n)| batch(&schema, from, n))
            .collect();
        let props = || group_props(1_000);
        let mut ours = ParWriter::try_new(Vec::new(), schema.clone(), props()).unwrap();
        let mut theirs = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props())).unwrap();
        for b in &batches {
            ours.write(b).unwrap();
            theirs.write(b).unwrap();
        }
        let ours = ours.into_inner().unwrap();
        let theirs = theirs.into_inner().unwrap();

        let read: Vec<RecordBatch> =
            ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(ours.clone()))
                .unwrap()
                .build()
                .unwrap()
                .map(|b| b.unwrap())
                .collect();
        let read = arrow::compute::concat_batches(&schema, &read).unwrap();
        let written = arrow::compute::concat_batches(&schema, &batches).unwrap();
        assert_eq!(read, written);

        let stats = decimal_stats(&ours);
        assert_eq!(stats.len(), 5, "4,001 rows in row groups of 1,000");
        assert_eq!(stats, decimal_stats(&theirs));
        // The first row group by hand: amounts of rows 0..1000.
        let amounts = written
            .column(1)
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap();
        let first: Vec<i128> = (0..1_000)
            .filter(|&i| amounts.is_valid(i))
            .map(|i| amounts.value(i))
            .collect();
        assert_eq!(
            stats[0],
            (
                *first.iter().min().unwrap(),
                *first.iter().max().unwrap(),
                (1_000 - first.len()) as u64
            )
        );
    }

    #[test]
    fn batches_pulled_while_encoding_make_the_file_written_batch_by_batch() {
        let schema = test_schema();
        let props = || group_props(1_000);
        // Row groups full and partial, batches shorter, longer and empty.
        for sizes in [&[1_000, 1_000][..], &[333, 0, 2_500, 17, 1], &[4_321], &[]] {
            let mut from = 0;
            let batches: Vec<RecordBatch> = sizes
                .iter()
                .map(|&n| {
                    let b = batch(&schema, from, n);
                    from += n;
                    b
                })
                .collect();
            let mut pushed = ParWriter::try_new(Vec::new(), schema.clone(), props()).unwrap();
            for b in &batches {
                pushed.write(b).unwrap();
            }
            let mut pulled = ParWriter::try_new(Vec::new(), schema.clone(), props()).unwrap();
            let mut it = batches.clone().into_iter();
            pulled
                .write_from(|| Ok::<_, String>(it.next()), |e| e.to_string())
                .unwrap();
            let (pushed, pulled) = (pushed.into_inner().unwrap(), pulled.into_inner().unwrap());
            assert_eq!(pushed, pulled, "batch sizes {sizes:?}");
            let groups = parquet::file::metadata::ParquetMetaDataReader::new()
                .parse_and_finish(&bytes::Bytes::from(pulled))
                .unwrap()
                .num_row_groups();
            assert_eq!(
                groups,
                (from as usize).div_ceil(1_000),
                "batch sizes {sizes:?}"
            );
        }
    }

    #[test]
    fn an_error_of_the_producer_stops_the_write() {
        let schema = test_schema();
        let props = group_props(100);
        let mut w = ParWriter::try_new(Vec::new(), schema.clone(), props).unwrap();
        let mut calls = 0;
        let got = w.write_from(
            || {
                calls += 1;
                match calls {
                    1..=3 => Ok(Some(batch(&schema, calls * 100, 100))),
                    _ => Err("spill file unreadable".to_string()),
                }
            },
            |e| e.to_string(),
        );
        assert_eq!(got, Err("spill file unreadable".to_string()));
        assert_eq!(calls, 4);
    }
}
