//! A staged price row (`staged/prices/prices.parquet`): one tier of one price version, from a
//! Retail Prices page, a Partner Center rate card or a CSV price sheet (inputs.md §2).

use crate::error::Result;
use crate::model::decimal::Dec10;
use crate::model::schema::*;
use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use std::sync::{Arc, OnceLock};

/// One price row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceRow {
    /// Meter GUID, lowercase.
    pub meter_id: String,
    /// `meterName`.
    pub meter_name: Option<String>,
    /// `productId`.
    pub product_id: Option<String>,
    /// `productName`.
    pub product_name: Option<String>,
    /// `skuId` (empty for rate-card rows).
    pub sku_id: String,
    /// `skuName`.
    pub sku_name: Option<String>,
    /// `serviceName` (rate card: `category`).
    pub service_name: Option<String>,
    /// `serviceFamily`.
    pub service_family: Option<String>,
    /// Meter category (rate card `category`; Retail Prices `serviceName`).
    pub meter_category: Option<String>,
    /// Meter subcategory (rate card `subcategory`; Retail Prices `productName`).
    pub meter_subcategory: Option<String>,
    /// `armRegionName` (rate card: `region`).
    pub arm_region_name: String,
    /// `location`.
    pub location: Option<String>,
    /// `unitOfMeasure`.
    pub unit_of_measure: String,
    /// `type`: Consumption, Reservation, DevTestConsumption, ...
    pub price_type: String,
    /// `currencyCode`.
    pub currency_code: String,
    /// `reservationTerm` (`1 Year` / `3 Years`), reservations only.
    pub reservation_term: String,
    /// Tier minimum in price units.
    pub tier_minimum: Dec10,
    /// `unitPrice`, the rating price.
    pub unit_price: Dec10,
    /// `retailPrice`.
    pub retail_price: Option<Dec10>,
    /// Date of `effectiveStartDate`, days since epoch.
    pub effective_start: i32,
    /// `isPrimaryMeterRegion`.
    pub is_primary_meter_region: Option<bool>,
    /// File the row came from.
    pub source_file: String,
    /// Row/item within the file.
    pub source_row: i64,
}

impl PriceRow {
    /// A bare USD `Consumption` tier, every descriptive field empty: the row rating uses,
    /// for tests and for callers that build price books without a price sheet.
    pub fn usd_consumption(
        meter_id: &str,
        unit_of_measure: &str,
        effective_start: i32,
        tier_minimum: Dec10,
        unit_price: Dec10,
    ) -> PriceRow {
        PriceRow {
            meter_id: meter_id.to_string(),
            meter_name: None,
            product_id: None,
            product_name: None,
            sku_id: String::new(),
            sku_name: None,
            service_name: None,
            service_family: None,
            meter_category: None,
            meter_subcategory: None,
            arm_region_name: String::new(),
            location: None,
            unit_of_measure: unit_of_measure.to_string(),
            price_type: "Consumption".to_string(),
            currency_code: "USD".to_string(),
            reservation_term: String::new(),
            tier_minimum,
            unit_price,
            retail_price: None,
            effective_start,
            is_primary_meter_region: None,
            source_file: String::new(),
            source_row: 0,
        }
    }

    /// Identity of the row across price sheets: a later sheet with the same key and another
    /// price restates it.
    pub fn key(&self) -> (String, String, String, String, String, i32, i128, String) {
        (
            self.meter_id.clone(),
            self.sku_id.clone(),
            self.price_type.clone(),
            self.currency_code.clone(),
            self.reservation_term.clone(),
            self.effective_start,
            self.tier_minimum.0,
            self.arm_region_name.clone(),
        )
    }
}

/// Schema of the staged price table.
pub fn price_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            f_str("meter_id", false),
            f_str("meter_name", true),
            f_str("product_id", true),
            f_str("product_name", true),
            f_str("sku_id", false),
            f_str("sku_name", true),
            f_str("service_name", true),
            f_str("service_family", true),
            f_str("meter_category", true),
            f_str("meter_subcategory", true),
            f_str("arm_region_name", false),
            f_str("location", true),
            f_str("unit_of_measure", false),
            f_str("type", false),
            f_str("currency_code", false),
            f_str("reservation_term", false),
            f_dec("tier_minimum_units", false),
            f_dec("unit_price", false),
            f_dec("retail_price", true),
            f_date("effective_start_date", false),
            f_bool("is_primary_meter_region", true),
            f_str("source_file", false),
            f_i64("source_row", false),
        ]))
    })
    .clone()
}

/// Rows to a batch.
pub fn prices_to_batch(rows: &[PriceRow]) -> Result<RecordBatch> {
    let s = |f: fn(&PriceRow) -> &str| a_str(rows.iter().map(|r| Some(f(r))));
    let o = |f: fn(&PriceRow) -> &Option<String>| a_str(rows.iter().map(|r| f(r).as_deref()));
    Ok(RecordBatch::try_new(
        price_schema(),
        vec![
            s(|r| &r.meter_id),
            o(|r| &r.meter_name),
            o(|r| &r.product_id),
            o(|r| &r.product_name),
            s(|r| &r.sku_id),
            o(|r| &r.sku_name),
            o(|r| &r.service_name),
            o(|r| &r.service_family),
            o(|r| &r.meter_category),
            o(|r| &r.meter_subcategory),
            s(|r| &r.arm_region_name),
            o(|r| &r.location),
            s(|r| &r.unit_of_measure),
            s(|r| &r.price_type),
            s(|r| &r.currency_code),
            s(|r| &r.reservation_term),
            a_dec(rows.iter().map(|r| Some(r.tier_minimum.0))),
            a_dec(rows.iter().map(|r| Some(r.unit_price.0))),
            a_dec(rows.iter().map(|r| r.retail_price.map(|v| v.0))),
            a_date(rows.iter().map(|r| Some(r.effective_start))),
            a_bool(rows.iter().map(|r| r.is_primary_meter_region)),
            s(|r| &r.source_file),
            a_i64(rows.iter().map(|r| Some(r.source_row))),
        ],
    )?)
}

/// A batch back to rows.
pub fn prices_from_batch(b: &RecordBatch, out: &mut Vec<PriceRow>) -> Result<()> {
    let c = Cols(b);
    let os = |a: &arrow::array::StringArray, i| opt_str(a, i).map(str::to_string);
    let (meter, mname, pid, pname, sku, skun) = (
        c.str("meter_id")?,
        c.str("meter_name")?,
        c.str("product_id")?,
        c.str("product_name")?,
        c.str("sku_id")?,
        c.str("sku_name")?,
    );
    let (svc, fam, mcat, msub, reg, loc) = (
        c.str("service_name")?,
        c.str("service_family")?,
        c.str("meter_category")?,
        c.str("meter_subcategory")?,
        c.str("arm_region_name")?,
        c.str("location")?,
    );
    let (uom, ty, cur, term) = (
        c.str("unit_of_measure")?,
        c.str("type")?,
        c.str("currency_code")?,
        c.str("reservation_term")?,
    );
    let (tmin, up, rp, eff, prim) = (
        c.dec("tier_minimum_units")?,
        c.dec("unit_price")?,
        c.dec("retail_price")?,
        c.date("effective_start_date")?,
        c.bool("is_primary_meter_region")?,
    );
    let (sf, sr) = (c.str("source_file")?, c.i64("source_row")?);
    for i in 0..b.num_rows() {
        out.push(PriceRow {
            meter_id: meter.value(i).to_string(),
            meter_name: os(mname, i),
            product_id: os(pid, i),
            product_name: os(pname, i),
            sku_id: sku.value(i).to_string(),
            sku_name: os(skun, i),
            service_name: os(svc, i),
            service_family: os(fam, i),
            meter_category: os(mcat, i),
            meter_subcategory: os(msub, i),
            arm_region_name: reg.value(i).to_string(),
            location: os(loc, i),
            unit_of_measure: uom.value(i).to_string(),
            price_type: ty.value(i).to_string(),
            currency_code: cur.value(i).to_string(),
            reservation_term: term.value(i).to_string(),
            tier_minimum: Dec10(tmin.value(i)),
            unit_price: Dec10(up.value(i)),
            retail_price: opt_dec(rp, i).map(Dec10),
            effective_start: eff.value(i),
            is_primary_meter_region: (!arrow::array::Array::is_null(prim, i))
                .then(|| prim.value(i)),
            source_file: sf.value(i).to_string(),
            source_row: sr.value(i),
        });
    }
    Ok(())
}

/// A price row rejected at ingest whose meter and effective date could still be read: its
/// price version is incomplete, so rating quarantines the records it would rate
/// (`PRICE_CONFLICT`, inputs.md §2) instead of rating them on the remaining tiers. Staged in
/// `staged/prices/rejected.parquet`, one row per rejected price row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RejectedPrice {
    /// Meter GUID, lowercase.
    pub meter_id: String,
    /// Date of `effectiveStartDate`, days since epoch.
    pub effective_start: i32,
    /// File the rejected row came from.
    pub source_file: String,
    /// Row/item within the file.
    pub source_row: i64,
    /// Reason code it was quarantined with at ingest.
    pub reason: String,
    /// The ingest quarantine's detail sentence.
    pub detail: String,
}

/// Schema of the staged rejected-price table.
pub fn rejected_price_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            f_str("meter_id", false),
            f_date("effective_start_date", false),
            f_str("source_file", false),
            f_i64("source_row", false),
            f_str("reason", false),
            f_str("detail", false),
        ]))
    })
    .clone()
}

/// Rejected rows to a batch.
pub fn rejected_to_batch(rows: &[RejectedPrice]) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        rejected_price_schema(),
        vec![
            a_str(rows.iter().map(|r| Some(r.meter_id.as_str()))),
            a_date(rows.iter().map(|r| Some(r.effective_start))),
            a_str(rows.iter().map(|r| Some(r.source_file.as_str()))),
            a_i64(rows.iter().map(|r| Some(r.source_row))),
            a_str(rows.iter().map(|r| Some(r.reason.as_str()))),
            a_str(rows.iter().map(|r| Some(r.detail.as_str()))),
        ],
    )?)
}

/// A batch of rejected rows back to rows.
pub fn rejected_from_batch(b: &RecordBatch, out: &mut Vec<RejectedPrice>) -> Result<()> {
    let c = Cols(b);
    let (meter, eff, sf, sr, reason, detail) = (
        c.str("meter_id")?,
        c.date("effective_start_date")?,
        c.str("source_file")?,
        c.i64("source_row")?,
        c.str("reason")?,
        c.str("detail")?,
    );
    for i in 0..b.num_rows() {
        out.push(RejectedPrice {
            meter_id: meter.value(i).to_string(),
            effective_start: eff.value(i),
            source_file: sf.value(i).to_string(),
            source_row: sr.value(i),
            reason: reason.value(i).to_string(),
            detail: detail.value(i).to_string(),
        });
    }
    Ok(())
}
