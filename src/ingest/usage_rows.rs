//! A validated utilization record as it comes out of the parser, borrowing its text from the
//! page buffer, and the Arrow column builders it is appended to. Ingest never turns a
//! record into owned `String`s: each field is copied once, from the page into the column.

use crate::error::Result;
use crate::model::decimal::{Dec10, PRECISION, SCALE};
use crate::model::usage::{usage_schema, RawRef, UsageRecord};
use arrow::array::{
    ArrayRef, Date32Builder, Decimal128Builder, FixedSizeBinaryBuilder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use std::borrow::Cow;
use std::sync::Arc;

/// One valid record, with the columns of the staged usage table ([`UsageRecord`]'s fields),
/// borrowed where the page holds the text as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow<'a> {
    /// xxh3-128 of the natural key.
    pub key_hash: u128,
    /// Customer tenant GUID, lowercase.
    pub customer_tenant_id: Cow<'a, str>,
    /// Subscription GUID, lowercase.
    pub subscription_id: Cow<'a, str>,
    /// Meter GUID, lowercase.
    pub meter_id: Cow<'a, str>,
    /// `resource.name`.
    pub meter_name: Option<Cow<'a, str>>,
    /// `resource.category`.
    pub meter_category: Option<Cow<'a, str>>,
    /// `resource.subcategory`.
    pub meter_subcategory: Option<Cow<'a, str>>,
    /// `resource.region`.
    pub meter_region: Option<Cow<'a, str>>,
    /// `instanceData.resourceUri`, empty when absent.
    pub resource_uri: Cow<'a, str>,
    /// `instanceData.location`.
    pub location: Option<Cow<'a, str>>,
    /// `instanceData.partNumber` as text.
    pub part_number: Option<Cow<'a, str>>,
    /// `instanceData.orderNumber` as text.
    pub order_number: Option<Cow<'a, str>>,
    /// Canonical JSON of `instanceData.additionalInfo`, empty when absent.
    pub additional_info: Cow<'a, str>,
    /// Canonical JSON of `instanceData.tags`, `{}` when none.
    pub tags: Cow<'a, str>,
    /// Canonical JSON of `infoFields`, when present.
    pub info_fields: Option<Cow<'a, str>>,
    /// Unit as reported, when present.
    pub unit: Option<Cow<'a, str>>,
    /// Quantity (scale 10).
    pub quantity: Dec10,
    /// `usageStartTime`, µs UTC.
    pub usage_start: i64,
    /// `usageEndTime`, µs UTC.
    pub usage_end: i64,
    /// UTC date of the start, days since epoch.
    pub usage_date: i32,
    /// File the record came from.
    pub source_file: &'a str,
    /// Item/line/row within the file (1-based).
    pub source_row: i64,
    /// Ingest run.
    pub ingest_run_id: &'a str,
    /// Original record text.
    pub raw: Cow<'a, str>,
    /// The source archive and offset that hold `raw` byte for byte
    /// ([`crate::staged::sources`]): the staged row refers to it instead of copying the text.
    pub raw_at: Option<(&'a str, i64)>,
}

impl UsageRow<'_> {
    /// The owned record (tests, and callers that keep records as structs).
    pub fn to_record(&self) -> UsageRecord {
        let o = |v: &Option<Cow<str>>| v.as_deref().map(str::to_string);
        UsageRecord {
            key_hash: self.key_hash,
            customer_tenant_id: self.customer_tenant_id.to_string(),
            subscription_id: self.subscription_id.to_string(),
            meter_id: self.meter_id.to_string(),
            meter_name: o(&self.meter_name),
            meter_category: o(&self.meter_category),
            meter_subcategory: o(&self.meter_subcategory),
            meter_region: o(&self.meter_region),
            resource_uri: self.resource_uri.to_string(),
            location: o(&self.location),
            part_number: o(&self.part_number),
            order_number: o(&self.order_number),
            additional_info: self.additional_info.to_string(),
            tags: self.tags.to_string(),
            info_fields: o(&self.info_fields),
            unit: o(&self.unit),
            quantity: self.quantity,
            usage_start: self.usage_start,
            usage_end: self.usage_end,
            usage_date: self.usage_date,
            source_file: self.source_file.to_string(),
            source_row: self.source_row,
            ingest_run_id: self.ingest_run_id.to_string(),
            raw: match self.raw_at {
                Some(_) => String::new(),
                None => self.raw.to_string(),
            },
            raw_ref: self.raw_at.map(|(source, offset)| RawRef {
                source: source.to_string(),
                offset,
                length: self.raw.len() as i64,
            }),
        }
    }
}

/// Column builders of the staged usage table ([`usage_schema`]), appended to row by row.
pub struct UsageBuilder {
    key_hash: FixedSizeBinaryBuilder,
    /// Columns 1 to 15 of the schema: tenant to unit.
    strings: [StringBuilder; 15],
    quantity: Decimal128Builder,
    usage_start: TimestampMicrosecondBuilder,
    usage_end: TimestampMicrosecondBuilder,
    usage_date: Date32Builder,
    source_file: StringBuilder,
    source_row: Int64Builder,
    ingest_run_id: StringBuilder,
    raw: StringBuilder,
    raw_source: StringBuilder,
    raw_offset: Int64Builder,
    raw_length: Int64Builder,
    rows: usize,
}

impl Default for UsageBuilder {
    fn default() -> UsageBuilder {
        UsageBuilder {
            key_hash: FixedSizeBinaryBuilder::new(16),
            strings: std::array::from_fn(|_| StringBuilder::new()),
            quantity: Decimal128Builder::new(),
            usage_start: TimestampMicrosecondBuilder::new(),
            usage_end: TimestampMicrosecondBuilder::new(),
            usage_date: Date32Builder::new(),
            source_file: StringBuilder::new(),
            source_row: Int64Builder::new(),
            ingest_run_id: StringBuilder::new(),
            raw: StringBuilder::new(),
            raw_source: StringBuilder::new(),
            raw_offset: Int64Builder::new(),
            raw_length: Int64Builder::new(),
            rows: 0,
        }
    }
}

impl UsageBuilder {
    /// Rows appended since the last [`UsageBuilder::finish`].
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row is waiting.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Append one row.
    pub fn push(&mut self, r: &UsageRow) -> Result<()> {
        self.key_hash.append_value(r.key_hash.to_be_bytes())?;
        let strings: [Option<&str>; 15] = [
            Some(&r.customer_tenant_id),
            Some(&r.subscription_id),
            Some(&r.meter_id),
            r.meter_name.as_deref(),
            r.meter_category.as_deref(),
            r.meter_subcategory.as_deref(),
            r.meter_region.as_deref(),
            Some(&r.resource_uri),
            r.location.as_deref(),
            r.part_number.as_deref(),
            r.order_number.as_deref(),
            Some(&r.additional_info),
            Some(&r.tags),
            r.info_fields.as_deref(),
            r.unit.as_deref(),
        ];
        for (b, v) in self.strings.iter_mut().zip(strings) {
            b.append_option(v);
        }
        self.quantity.append_value(r.quantity.0);
        self.usage_start.append_value(r.usage_start);
        self.usage_end.append_value(r.usage_end);
        self.usage_date.append_value(r.usage_date);
        self.source_file.append_value(r.source_file);
        self.source_row.append_value(r.source_row);
        self.ingest_run_id.append_value(r.ingest_run_id);
        match r.raw_at {
            Some((source, offset)) => {
                self.raw.append_value("");
                self.raw_source.append_value(source);
                self.raw_offset.append_value(offset);
                self.raw_length.append_value(r.raw.len() as i64);
            }
            None => {
                self.raw.append_value(&r.raw);
                self.raw_source.append_null();
                self.raw_offset.append_null();
                self.raw_length.append_null();
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// The rows appended so far as one batch of [`usage_schema`]; the builder starts empty
    /// again.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        self.rows = 0;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(27);
        columns.push(Arc::new(self.key_hash.finish()));
        for b in &mut self.strings {
            columns.push(Arc::new(b.finish()));
        }
        columns.push(Arc::new(
            self.quantity
                .finish()
                .with_precision_and_scale(PRECISION, SCALE as i8)?,
        ));
        columns.push(Arc::new(self.usage_start.finish().with_timezone("UTC")));
        columns.push(Arc::new(self.usage_end.finish().with_timezone("UTC")));
        columns.push(Arc::new(self.usage_date.finish()));
        columns.push(Arc::new(self.source_file.finish()));
        columns.push(Arc::new(self.source_row.finish()));
        columns.push(Arc::new(self.ingest_run_id.finish()));
        columns.push(Arc::new(self.raw.finish()));
        columns.push(Arc::new(self.raw_source.finish()));
        columns.push(Arc::new(self.raw_offset.finish()));
        columns.push(Arc::new(self.raw_length.finish()));
        Ok(RecordBatch::try_new(usage_schema(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::usage::usage_to_batch;

    fn row(n: i64, unit: Option<&'static str>) -> UsageRow<'static> {
        UsageRow {
            key_hash: 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10 + n as u128,
            customer_tenant_id: "t".into(),
            subscription_id: "s".into(),
            meter_id: "m".into(),
            meter_name: Some("Meter".into()),
            meter_category: None,
            meter_subcategory: Some("Sub".into()),
            meter_region: None,
            resource_uri: "/r".into(),
            location: Some("westeurope".into()),
            part_number: None,
            order_number: Some("".into()),
            additional_info: "".into(),
            tags: "{}".into(),
            info_fields: Some("{}".into()),
            unit: unit.map(Cow::Borrowed),
            quantity: Dec10(15_000_000_000 + n as i128),
            usage_start: 1_000_000 * n,
            usage_end: 1_000_000 * n + 3_600_000_000,
            usage_date: 20_454,
            source_file: "f.json",
            source_row: n,
            ingest_run_id: "run",
            raw: "{}".into(),
            raw_at: (n % 2 == 0).then_some(("staged/sources/run=r/part-00000.zst", 10 * n)),
        }
    }

    /// The builder makes the same batch as the owned records through `usage_to_batch`.
    #[test]
    fn builder_equals_usage_to_batch() {
        // Row 2's text is by reference, the others' carried.
        let rows = [row(1, Some("Hours")), row(2, None), row(3, Some("1 GB"))];
        let mut b = UsageBuilder::default();
        for r in &rows {
            b.push(r).unwrap();
        }
        assert_eq!(b.len(), 3);
        let built = b.finish().unwrap();
        assert!(b.is_empty());
        let owned: Vec<UsageRecord> = rows.iter().map(UsageRow::to_record).collect();
        assert_eq!(built, usage_to_batch(&owned).unwrap());
        assert_eq!(b.finish().unwrap().num_rows(), 0);
    }
}
