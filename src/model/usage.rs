//! A staged utilization record: one row of `staged/usage/month=*/bucket=*/data.parquet`.
//! It keeps the original JSON so that rating can quarantine with the record's text: in `raw`,
//! or, where the text is its input file's bytes at an offset, as a reference (`raw_source`,
//! `raw_offset`, `raw_length`) into the lake's compressed copy of that file
//! (`staged/sources/`, written by ingest), with `raw` empty.

use crate::error::Result;
use crate::model::decimal::Dec10;
use crate::model::schema::*;
use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use std::sync::{Arc, OnceLock};

/// A validated utilization record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRecord {
    /// xxh3-128 of the natural key (inputs.md §1).
    pub key_hash: u128,
    /// Customer tenant GUID, lowercase.
    pub customer_tenant_id: String,
    /// Subscription GUID, lowercase.
    pub subscription_id: String,
    /// Meter GUID (`resource.id`), lowercase.
    pub meter_id: String,
    /// `resource.name`.
    pub meter_name: Option<String>,
    /// `resource.category`.
    pub meter_category: Option<String>,
    /// `resource.subcategory`.
    pub meter_subcategory: Option<String>,
    /// `resource.region`.
    pub meter_region: Option<String>,
    /// `instanceData.resourceUri`, empty when absent.
    pub resource_uri: String,
    /// `instanceData.location`.
    pub location: Option<String>,
    /// `instanceData.partNumber` as text.
    pub part_number: Option<String>,
    /// `instanceData.orderNumber` as text.
    pub order_number: Option<String>,
    /// Canonical JSON of `instanceData.additionalInfo` (sorted keys), empty when absent.
    pub additional_info: String,
    /// Canonical JSON of `instanceData.tags`, `{}` when none.
    pub tags: String,
    /// Canonical JSON of `infoFields`, when present.
    pub info_fields: Option<String>,
    /// Unit as reported, when present.
    pub unit: Option<String>,
    /// Quantity as reported (scale 10).
    pub quantity: Dec10,
    /// `usageStartTime`, µs UTC.
    pub usage_start: i64,
    /// `usageEndTime`, µs UTC.
    pub usage_end: i64,
    /// UTC date of the start, days since epoch.
    pub usage_date: i32,
    /// File the record came from.
    pub source_file: String,
    /// Item/line/row within the file (1-based).
    pub source_row: i64,
    /// Ingest run that staged this version.
    pub ingest_run_id: String,
    /// Original record text; empty when [`UsageRecord::raw_ref`] says where it is.
    pub raw: String,
    /// Where the original text is, when `raw` does not hold it.
    pub raw_ref: Option<RawRef>,
}

/// Where a record's original text is: bytes `offset..offset + length` of the decompressed
/// source archive `source` (a lake-relative path under `staged/sources/`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawRef {
    /// Lake-relative path of the archive.
    pub source: String,
    /// Byte offset of the text in the decompressed archive.
    pub offset: i64,
    /// Length of the text in bytes.
    pub length: i64,
}

/// Column names of the staged usage table.
pub mod col {
    /// Natural-key hash.
    pub const KEY_HASH: &str = "key_hash";
    /// Tenant.
    pub const TENANT: &str = "customer_tenant_id";
    /// Subscription.
    pub const SUBSCRIPTION: &str = "subscription_id";
    /// Meter.
    pub const METER: &str = "meter_id";
    /// Quantity.
    pub const QUANTITY: &str = "quantity";
    /// Source archive holding the original text, when `raw` does not.
    pub const RAW_SOURCE: &str = "raw_source";
    /// Offset of the text in the decompressed archive.
    pub const RAW_OFFSET: &str = "raw_offset";
    /// Length of the text.
    pub const RAW_LENGTH: &str = "raw_length";
}

/// Columns of the staged usage table added after its first layout: a partition written
/// before them reads as if every text were carried in `raw` ([`conform_staged`]).
const ADDED_COLUMNS: usize = 3;

/// A batch of a staged partition in the current [`usage_schema`]: a partition written by a
/// version without the text references gains them as nulls (its texts are all in `raw`).
pub fn conform_staged(batch: RecordBatch) -> Result<RecordBatch> {
    let schema = usage_schema();
    let want = schema.fields().len();
    if batch.num_columns() == want {
        return Ok(batch);
    }
    if batch.num_columns() + ADDED_COLUMNS != want {
        return Err(crate::error::Error::Schema {
            column: col::RAW_SOURCE.into(),
            expected: format!(
                "present in a staged usage partition of {want} columns (this one has {})",
                batch.num_columns()
            ),
        });
    }
    let rows = batch.num_rows();
    let mut columns = batch.columns().to_vec();
    for f in &schema.fields()[want - ADDED_COLUMNS..] {
        columns.push(arrow::array::new_null_array(f.data_type(), rows));
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Schema of the staged usage table.
pub fn usage_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            f_hash128(col::KEY_HASH),
            f_str(col::TENANT, false),
            f_str(col::SUBSCRIPTION, false),
            f_str(col::METER, false),
            f_str("meter_name", true),
            f_str("meter_category", true),
            f_str("meter_subcategory", true),
            f_str("meter_region", true),
            f_str("resource_uri", false),
            f_str("location", true),
            f_str("part_number", true),
            f_str("order_number", true),
            f_str("additional_info", false),
            f_str("tags", false),
            f_str("info_fields", true),
            f_str("unit", true),
            f_dec(col::QUANTITY, false),
            f_ts("usage_start", false),
            f_ts("usage_end", false),
            f_date("usage_date", false),
            f_str("source_file", false),
            f_i64("source_row", false),
            f_str("ingest_run_id", false),
            f_str("raw", false),
            f_str(col::RAW_SOURCE, true),
            f_i64(col::RAW_OFFSET, true),
            f_i64(col::RAW_LENGTH, true),
        ]))
    })
    .clone()
}

/// Rows to one batch.
pub fn usage_to_batch(rows: &[UsageRecord]) -> Result<RecordBatch> {
    let s = |f: fn(&UsageRecord) -> &str| a_str(rows.iter().map(|r| Some(f(r))));
    let o = |f: fn(&UsageRecord) -> &Option<String>| a_str(rows.iter().map(|r| f(r).as_deref()));
    Ok(RecordBatch::try_new(
        usage_schema(),
        vec![
            a_hash128(rows.iter().map(|r| r.key_hash)),
            s(|r| &r.customer_tenant_id),
            s(|r| &r.subscription_id),
            s(|r| &r.meter_id),
            o(|r| &r.meter_name),
            o(|r| &r.meter_category),
            o(|r| &r.meter_subcategory),
            o(|r| &r.meter_region),
            s(|r| &r.resource_uri),
            o(|r| &r.location),
            o(|r| &r.part_number),
            o(|r| &r.order_number),
            s(|r| &r.additional_info),
            s(|r| &r.tags),
            o(|r| &r.info_fields),
            o(|r| &r.unit),
            a_dec(rows.iter().map(|r| Some(r.quantity.0))),
            a_ts(rows.iter().map(|r| Some(r.usage_start))),
            a_ts(rows.iter().map(|r| Some(r.usage_end))),
            a_date(rows.iter().map(|r| Some(r.usage_date))),
            s(|r| &r.source_file),
            a_i64(rows.iter().map(|r| Some(r.source_row))),
            s(|r| &r.ingest_run_id),
            s(|r| &r.raw),
            a_str(
                rows.iter()
                    .map(|r| r.raw_ref.as_ref().map(|x| x.source.as_str())),
            ),
            a_i64(rows.iter().map(|r| r.raw_ref.as_ref().map(|x| x.offset))),
            a_i64(rows.iter().map(|r| r.raw_ref.as_ref().map(|x| x.length))),
        ],
    )?)
}

/// A batch back to rows.
pub fn usage_from_batch(b: &RecordBatch, out: &mut Vec<UsageRecord>) -> Result<()> {
    let c = Cols(b);
    let (kh, tenant, sub, meter) = (
        c.hash128(col::KEY_HASH)?,
        c.str(col::TENANT)?,
        c.str(col::SUBSCRIPTION)?,
        c.str(col::METER)?,
    );
    let (mname, mcat, msub, mreg) = (
        c.str("meter_name")?,
        c.str("meter_category").ok(),
        c.str("meter_subcategory").ok(),
        c.str("meter_region").ok(),
    );
    let (uri, loc, part, order) = (
        c.str("resource_uri")?,
        c.str("location").ok(),
        c.str("part_number").ok(),
        c.str("order_number").ok(),
    );
    let (addl, tags, info, unit) = (
        c.str("additional_info")?,
        c.str("tags")?,
        c.str("info_fields").ok(),
        c.str("unit")?,
    );
    let (qty, start, end, date) = (
        c.dec(col::QUANTITY)?,
        c.ts("usage_start")?,
        c.ts("usage_end")?,
        c.date("usage_date")?,
    );
    let (sf, sr, run, raw) = (
        c.str("source_file")?,
        c.i64("source_row")?,
        c.str("ingest_run_id")?,
        c.str("raw").ok(),
    );
    let refs = raw_refs(b);
    let os = |a: &arrow::array::StringArray, i| opt_str(a, i).map(str::to_string);
    // Columns left out of a projection read as absent.
    let oo = |a: Option<&arrow::array::StringArray>, i| {
        a.and_then(|a| opt_str(a, i)).map(str::to_string)
    };
    out.reserve(b.num_rows());
    for i in 0..b.num_rows() {
        out.push(UsageRecord {
            key_hash: hash_at(kh, i),
            customer_tenant_id: tenant.value(i).to_string(),
            subscription_id: sub.value(i).to_string(),
            meter_id: meter.value(i).to_string(),
            meter_name: os(mname, i),
            meter_category: oo(mcat, i),
            meter_subcategory: oo(msub, i),
            meter_region: oo(mreg, i),
            resource_uri: uri.value(i).to_string(),
            location: oo(loc, i),
            part_number: oo(part, i),
            order_number: oo(order, i),
            additional_info: addl.value(i).to_string(),
            tags: tags.value(i).to_string(),
            info_fields: oo(info, i),
            unit: os(unit, i),
            quantity: Dec10(qty.value(i)),
            usage_start: start.value(i),
            usage_end: end.value(i),
            usage_date: date.value(i),
            source_file: sf.value(i).to_string(),
            source_row: sr.value(i),
            ingest_run_id: run.value(i).to_string(),
            raw: raw.map(|r| r.value(i).to_string()).unwrap_or_default(),
            raw_ref: refs.as_ref().and_then(|r| r.at(i)),
        });
    }
    Ok(())
}

/// The text-reference columns of a staged batch, when it has them (a projection or a
/// partition of the first layout may not).
pub fn raw_refs(b: &RecordBatch) -> Option<RawRefs<'_>> {
    let c = Cols(b);
    Some(RawRefs {
        source: c.str(col::RAW_SOURCE).ok()?,
        offset: c.i64(col::RAW_OFFSET).ok()?,
        length: c.i64(col::RAW_LENGTH).ok()?,
    })
}

/// Typed views of a batch's text-reference columns.
pub struct RawRefs<'a> {
    source: &'a arrow::array::StringArray,
    offset: &'a arrow::array::Int64Array,
    length: &'a arrow::array::Int64Array,
}

impl RawRefs<'_> {
    /// Where row `i`'s text is, when `raw` does not hold it.
    pub fn at(&self, i: usize) -> Option<RawRef> {
        use arrow::array::Array;
        if self.source.is_null(i) {
            return None;
        }
        Some(RawRef {
            source: self.source.value(i).to_string(),
            offset: self.offset.value(i),
            length: self.length.value(i),
        })
    }
}

/// Staged columns rating needs: everything but the raw text and the descriptive fields the
/// cost partitions do not carry.
pub const RATING_COLUMNS: [&str; 20] = [
    col::KEY_HASH,
    col::TENANT,
    col::SUBSCRIPTION,
    col::METER,
    "meter_name",
    "meter_category",
    "meter_subcategory",
    "meter_region",
    "resource_uri",
    "location",
    "additional_info",
    "tags",
    "unit",
    col::QUANTITY,
    "usage_start",
    "usage_end",
    "usage_date",
    "source_file",
    "source_row",
    "ingest_run_id",
];
