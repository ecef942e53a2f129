//! A staged reservation order (`staged/reservations/orders.parquet`, reservations.md). Field
//! values are kept as given; `reserve` validates term, frequency, scope and quantity.

use crate::error::Result;
use crate::model::decimal::Dec10;
use crate::model::schema::*;
use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use std::sync::Arc;

/// Text fields of an order, in file order.
pub const ORDER_TEXT_FIELDS: [&str; 13] = [
    "order_id",
    "reservation_id",
    "customer_tenant_id",
    "subscription_id",
    "sku_id",
    "product_id",
    "product_title",
    "product_details",
    "region",
    "term",
    "quantity",
    "billing_frequency",
    "scope",
];

/// One order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservationOrder {
    /// Values of [`ORDER_TEXT_FIELDS`] (tenant and subscription lowercase).
    pub text: [String; 13],
    /// Purchase instant, µs UTC.
    pub purchase_utc: i64,
    /// Price captured on the order.
    pub original_unit_price_usd: Option<Dec10>,
    /// Hash of the order's content (a re-ingested identical order is a no-op).
    pub content_hash: String,
    /// File.
    pub source_file: String,
    /// Row/item.
    pub source_row: i64,
    /// Original text.
    pub raw: String,
}

impl ReservationOrder {
    /// A text field by name.
    pub fn get(&self, field: &str) -> &str {
        order_field_index(field)
            .map(|i| self.text[i].as_str())
            .unwrap_or("")
    }
}

/// Position of a field in [`ORDER_TEXT_FIELDS`].
pub fn order_field_index(field: &str) -> Option<usize> {
    ORDER_TEXT_FIELDS.iter().position(|f| *f == field)
}

/// Schema of the staged orders table.
pub fn order_schema() -> SchemaRef {
    let mut fields: Vec<_> = ORDER_TEXT_FIELDS.iter().map(|f| f_str(f, false)).collect();
    fields.push(f_ts("purchase_date_utc", false));
    fields.push(f_dec("original_unit_price_usd", true));
    fields.push(f_str("content_hash", false));
    fields.push(f_str("source_file", false));
    fields.push(f_i64("source_row", false));
    fields.push(f_str("raw", false));
    Arc::new(Schema::new(fields))
}

/// Orders to a batch.
pub fn orders_to_batch(rows: &[ReservationOrder]) -> Result<RecordBatch> {
    let mut cols: Vec<_> = (0..ORDER_TEXT_FIELDS.len())
        .map(|i| a_str(rows.iter().map(|r| Some(r.text[i].as_str()))))
        .collect();
    cols.push(a_ts(rows.iter().map(|r| Some(r.purchase_utc))));
    cols.push(a_dec(
        rows.iter().map(|r| r.original_unit_price_usd.map(|v| v.0)),
    ));
    cols.push(a_str(rows.iter().map(|r| Some(r.content_hash.as_str()))));
    cols.push(a_str(rows.iter().map(|r| Some(r.source_file.as_str()))));
    cols.push(a_i64(rows.iter().map(|r| Some(r.source_row))));
    cols.push(a_str(rows.iter().map(|r| Some(r.raw.as_str()))));
    Ok(RecordBatch::try_new(order_schema(), cols)?)
}

/// A batch back to orders.
pub fn orders_from_batch(b: &RecordBatch, out: &mut Vec<ReservationOrder>) -> Result<()> {
    let c = Cols(b);
    let texts: Vec<_> = ORDER_TEXT_FIELDS
        .iter()
        .map(|f| c.str(f))
        .collect::<Result<_>>()?;
    let (ts, price, hash, sf, sr, raw) = (
        c.ts("purchase_date_utc")?,
        c.dec("original_unit_price_usd")?,
        c.str("content_hash")?,
        c.str("source_file")?,
        c.i64("source_row")?,
        c.str("raw")?,
    );
    for i in 0..b.num_rows() {
        out.push(ReservationOrder {
            text: std::array::from_fn(|k| texts[k].value(i).to_string()),
            purchase_utc: ts.value(i),
            original_unit_price_usd: opt_dec(price, i).map(Dec10),
            content_hash: hash.value(i).to_string(),
            source_file: sf.value(i).to_string(),
            source_row: sr.value(i),
            raw: raw.value(i).to_string(),
        });
    }
    Ok(())
}
