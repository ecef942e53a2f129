//! Parquet files whose column chunks are encoded on every core. Encoding and compressing
//! the 79 columns of a cost partition is most of a merge's work, and a month of one
//! organization has one partition to write: with [`parquet::arrow::ArrowWriter`] that is one
//! core. [`ParWriter`] cuts the batches into row groups of the configured size (as
//! `ArrowWriter` does) and encodes each row group's columns in parallel with rayon
//! (parquet's `ArrowColumnWriter` API, made for this).

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowLeafColumn, ArrowRowGroupWriterFactory};
use parquet::arrow::ArrowWriter;
use parquet::errors::Result;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use rayon::prelude::*;
use std::io::Write;

/// Rows per row group when the properties set none (parquet's default).
const DEFAULT_GROUP_ROWS: usize = 1024 * 1024;

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
        let mut b = batch.clone();
        while b.num_rows() > 0 {
            let take = (self.group_rows - self.pending_rows).min(b.num_rows());
            self.pending.push(b.slice(0, take));
            self.pending_rows += take;
            b = b.slice(take, b.num_rows() - take);
            if self.pending_rows == self.group_rows {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Encode the buffered rows as one row group.
    fn flush(&mut self) -> Result<()> {
        if self.pending_rows == 0 {
            return Ok(());
        }
        let writers = self.factory.create_column_writers(self.groups)?;
        // Leaves of each batch, transposed to one list per parquet column.
        let mut columns: Vec<Vec<ArrowLeafColumn>> = writers.iter().map(|_| Vec::new()).collect();
        for b in std::mem::take(&mut self.pending) {
            let mut leaf = 0;
            for (field, array) in self.schema.fields().iter().zip(b.columns()) {
                for l in compute_leaves(field, array)? {
                    columns[leaf].push(l);
                    leaf += 1;
                }
            }
        }
        let chunks = writers
            .into_par_iter()
            .zip(columns.into_par_iter())
            .with_max_len(1)
            .map(|(mut w, leaves)| {
                for l in &leaves {
                    w.write(l)?;
                }
                w.close()
            })
            .collect::<Result<Vec<_>>>()?;
        let mut group = self.writer.next_row_group()?;
        for c in chunks {
            c.append_to_row_group(&mut group)?;
        }
        group.close()?;
        self.groups += 1;
        self.pending_rows = 0;
        Ok(())
    }

    /// Add key-value metadata to the footer.
    pub fn append_key_value_metadata(&mut self, kv: KeyValue) {
        self.writer.append_key_value_metadata(kv);
    }

    /// Write the last row group and the footer; the output back.
    pub fn into_inner(mut self) -> Result<W> {
        self.flush()?;
        self.writer.into_inner()
    }
}
