//! The assets table (`assets/reservations.parquet`, reservations.md): one row per priced
//! reservation order with its prices, FX rate, expiration, status as of the `reserve` run's
//! `--as-of` date and the installments billed by then. `reserve` writes it; `cspcost assets`
//! reads it back.

use crate::error::{Error, Result};
use crate::model::choice::{Choice, OptionEnum};
use crate::model::decimal::Dec10;
use crate::model::order::{order_field_index, ORDER_TEXT_FIELDS};
use crate::model::reference::{ensure_no_problems, Reference};
use crate::model::schema::*;
use crate::model::time::{date_to_days, days_to_date};
use crate::pricing::reservation::{PricedOrder, PRICING_UNIT};
use crate::store::Lake;
use arrow::array::{
    Array, ArrayRef, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{Field, Schema, SchemaRef};
use chrono::NaiveDate;
use std::sync::Arc;

/// Lake-relative path of the assets table.
pub const ASSETS_FILE: &str = "assets/reservations.parquet";

/// Position of `quantity` in [`ORDER_TEXT_FIELDS`]; the assets table stores it as an integer.
const QUANTITY: usize = 10;

/// Whether a reservation is still in its term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AssetStatus {
    /// Expires after the as-of date.
    Active,
    /// Expired on or before the as-of date.
    Expired,
}

impl AssetStatus {
    /// `active` / `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            AssetStatus::Active => "active",
            AssetStatus::Expired => "expired",
        }
    }

    /// Parse `active` / `expired` (case-insensitive).
    pub fn parse(text: &str) -> Option<AssetStatus> {
        match text.trim().to_ascii_lowercase().as_str() {
            "active" => Some(AssetStatus::Active),
            "expired" => Some(AssetStatus::Expired),
            _ => None,
        }
    }
}

/// `--status` accepts any case and surrounding spaces, as the table's column does.
impl OptionEnum for AssetStatus {
    fn from_text(text: &str) -> Option<AssetStatus> {
        AssetStatus::parse(text)
    }
}

/// One row of the assets table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetRow {
    /// The order's fields ([`ORDER_TEXT_FIELDS`]); `term`, `billing_frequency` and `scope`
    /// in canonical form (`P1Y`, `Monthly`, `Shared`), `quantity` as the whole number.
    pub order_text: [String; 13],
    /// Instances.
    pub quantity: i64,
    /// Organization billed.
    pub organization_id: String,
    /// Partnership of the tenant.
    pub partnership_id: String,
    /// Purchase instant, µs UTC.
    pub purchase_date_utc: i64,
    /// Purchase plus the term, µs UTC.
    pub expiration_utc: i64,
    /// Status as of [`AssetRow::as_of`].
    pub status: AssetStatus,
    /// The `reserve` run's `--as-of` date.
    pub as_of: NaiveDate,
    /// USD price of one instance for the term.
    pub original_unit_price_usd: Dec10,
    /// `order` or `price_sheet`.
    pub price_source: String,
    /// Effective date of the price-sheet row (none for a price captured on the order).
    pub price_effective_start: Option<NaiveDate>,
    /// File of the price-sheet row (none for a captured price).
    pub price_source_file: Option<String>,
    /// Row or item of the price-sheet row in that file.
    pub price_source_row: Option<i64>,
    /// Billing currency (ISO 4217).
    pub currency: String,
    /// USD per unit of the currency in the purchase month.
    pub fx_usd_per_unit: Dec10,
    /// First day of the purchase month.
    pub fx_rate_date: NaiveDate,
    /// Microsoft's unit price in the billing currency.
    pub purchase_unit_price: Dec10,
    /// The organization's reservation markup, percent.
    pub reservation_markup_percent: Dec10,
    /// Unit price billed to the customer.
    pub sell_unit_price: Dec10,
    /// `sell_unit_price * quantity`.
    pub total: Dec10,
    /// Number of charges over the term.
    pub installments_total: i64,
    /// Charges dated on or before the as-of date.
    pub installments_billed_so_far: i64,
    /// Their sum.
    pub billed_so_far: Dec10,
    /// Order file.
    pub source_file: String,
    /// Row or item in it.
    pub source_row: i64,
    /// The reseller that bills the organization, if any (billing.md).
    pub reseller_id: Option<String>,
}

impl AssetRow {
    /// The asset of a priced order as of `as_of` (end of that day, UTC).
    pub fn from_priced(p: &PricedOrder, as_of: NaiveDate) -> AssetRow {
        let mut order_text = p.order.text.clone();
        let canonical = [
            ("term", p.term.as_str()),
            ("billing_frequency", p.frequency.as_str()),
            ("scope", "Shared"),
        ];
        for (field, value) in canonical {
            if let Some(i) = order_field_index(field) {
                order_text[i] = value.to_string();
            }
        }
        order_text[QUANTITY] = p.quantity.to_string();
        let (billed, billed_sum) = p.billed_by(as_of);
        AssetRow {
            order_text,
            quantity: p.quantity,
            organization_id: p.organization.id.clone(),
            partnership_id: p.mapping.partnership_id.clone(),
            purchase_date_utc: p.order.purchase_utc,
            expiration_utc: p.expiration_utc,
            status: if p.is_expired(as_of) {
                AssetStatus::Expired
            } else {
                AssetStatus::Active
            },
            as_of,
            original_unit_price_usd: p.original_unit_price_usd,
            price_source: p.price_source.as_str().to_string(),
            price_effective_start: p.price_source.effective_start().map(days_to_date),
            price_source_file: p.price_source.sheet_row().map(|(f, _)| f.to_string()),
            price_source_row: p.price_source.sheet_row().map(|(_, r)| r),
            currency: p.organization.billing_currency.clone(),
            fx_usd_per_unit: p.fx_usd_per_unit,
            fx_rate_date: p.fx_rate_date,
            purchase_unit_price: p.purchase_unit_price,
            reservation_markup_percent: p.organization.reservation_markup_percent,
            sell_unit_price: p.sell_unit_price,
            total: p.total,
            installments_total: p.installments.len() as i64,
            installments_billed_so_far: billed as i64,
            billed_so_far: billed_sum,
            source_file: p.order.source_file.clone(),
            source_row: p.order.source_row,
            reseller_id: p.reseller.map(|r| r.id.clone()),
        }
    }

    /// An order field by name.
    pub fn get(&self, field: &str) -> &str {
        order_field_index(field)
            .map(|i| self.order_text[i].as_str())
            .unwrap_or("")
    }
}

/// Schema of the assets table: the order fields, then pricing, FX and billing progress.
pub fn asset_schema() -> SchemaRef {
    let mut fields: Vec<Field> = ORDER_TEXT_FIELDS
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if i == QUANTITY {
                f_i64(f, false)
            } else {
                f_str(f, false)
            }
        })
        .collect();
    fields.extend([
        f_str("unit", false),
        f_str("organization_id", false),
        f_str("partnership_id", false),
        f_ts("purchase_date_utc", false),
        f_ts("expiration_utc", false),
        f_str("status", false),
        f_date("as_of_date", false),
        f_dec("original_unit_price_usd", false),
        f_str("price_source", false),
        f_date("price_effective_start", true),
        f_str("price_source_file", true),
        f_i64("price_source_row", true),
        f_str("currency", false),
        f_dec("fx_usd_per_unit", false),
        f_date("fx_rate_date", false),
        f_dec("purchase_unit_price", false),
        f_dec("reservation_markup_percent", false),
        f_dec("sell_unit_price", false),
        f_dec("total", false),
        f_i64("installments_total", false),
        f_i64("installments_billed_so_far", false),
        f_dec("billed_so_far", false),
        f_str("source_file", false),
        f_i64("source_row", false),
        f_str("reseller_id", true),
    ]);
    Arc::new(Schema::new(fields))
}

/// Asset rows to a batch.
pub fn assets_to_batch(rows: &[AssetRow]) -> Result<RecordBatch> {
    let s = |f: fn(&AssetRow) -> &str| a_str(rows.iter().map(|r| Some(f(r))));
    let d = |f: fn(&AssetRow) -> Dec10| a_dec(rows.iter().map(|r| Some(f(r).0)));
    let i = |f: fn(&AssetRow) -> i64| a_i64(rows.iter().map(|r| Some(f(r))));
    let day =
        |f: fn(&AssetRow) -> Option<NaiveDate>| a_date(rows.iter().map(|r| f(r).map(date_to_days)));
    let mut cols: Vec<ArrayRef> = (0..ORDER_TEXT_FIELDS.len())
        .map(|k| {
            if k == QUANTITY {
                i(|r| r.quantity)
            } else {
                a_str(rows.iter().map(|r| Some(r.order_text[k].as_str())))
            }
        })
        .collect();
    cols.extend([
        a_str(rows.iter().map(|_| Some(PRICING_UNIT))),
        s(|r| &r.organization_id),
        s(|r| &r.partnership_id),
        a_ts(rows.iter().map(|r| Some(r.purchase_date_utc))),
        a_ts(rows.iter().map(|r| Some(r.expiration_utc))),
        s(|r| r.status.as_str()),
        day(|r| Some(r.as_of)),
        d(|r| r.original_unit_price_usd),
        s(|r| &r.price_source),
        day(|r| r.price_effective_start),
        a_str(rows.iter().map(|r| r.price_source_file.as_deref())),
        a_i64(rows.iter().map(|r| r.price_source_row)),
        s(|r| &r.currency),
        d(|r| r.fx_usd_per_unit),
        day(|r| Some(r.fx_rate_date)),
        d(|r| r.purchase_unit_price),
        d(|r| r.reservation_markup_percent),
        d(|r| r.sell_unit_price),
        d(|r| r.total),
        i(|r| r.installments_total),
        i(|r| r.installments_billed_so_far),
        d(|r| r.billed_so_far),
        s(|r| &r.source_file),
        i(|r| r.source_row),
        a_str(rows.iter().map(|r| r.reseller_id.as_deref())),
    ]);
    Ok(RecordBatch::try_new(asset_schema(), cols)?)
}

/// A batch back to asset rows.
pub fn assets_from_batch(b: &RecordBatch, out: &mut Vec<AssetRow>) -> Result<()> {
    let cols = AssetColumns::of(b)?;
    for r in 0..b.num_rows() {
        out.push(cols.row(r)?);
    }
    Ok(())
}

/// The columns of an assets batch, looked up by name once.
struct AssetColumns<'a> {
    /// The order's text fields but `quantity`, in [`ORDER_TEXT_FIELDS`] order.
    texts: Vec<&'a StringArray>,
    quantity: &'a Int64Array,
    org: &'a StringArray,
    partnership: &'a StringArray,
    purchased: &'a TimestampMicrosecondArray,
    expires: &'a TimestampMicrosecondArray,
    status: &'a StringArray,
    as_of: &'a Date32Array,
    usd: &'a Decimal128Array,
    source: &'a StringArray,
    effective: &'a Date32Array,
    price_file: &'a StringArray,
    price_row: &'a Int64Array,
    currency: &'a StringArray,
    fx: &'a Decimal128Array,
    fx_date: &'a Date32Array,
    purchase: &'a Decimal128Array,
    markup: &'a Decimal128Array,
    sell: &'a Decimal128Array,
    total: &'a Decimal128Array,
    n_total: &'a Int64Array,
    n_billed: &'a Int64Array,
    billed: &'a Decimal128Array,
    source_file: &'a StringArray,
    source_row: &'a Int64Array,
    /// Absent in assets written before resellers existed.
    reseller: Option<&'a StringArray>,
}

impl<'a> AssetColumns<'a> {
    /// Every column, in schema order (the first one missing is the error).
    fn of(b: &'a RecordBatch) -> Result<AssetColumns<'a>> {
        let c = Cols(b);
        Ok(AssetColumns {
            texts: ORDER_TEXT_FIELDS
                .iter()
                .enumerate()
                .filter(|(k, _)| *k != QUANTITY)
                .map(|(_, f)| c.str(f))
                .collect::<Result<_>>()?,
            quantity: c.i64("quantity")?,
            org: c.str("organization_id")?,
            partnership: c.str("partnership_id")?,
            purchased: c.ts("purchase_date_utc")?,
            expires: c.ts("expiration_utc")?,
            status: c.str("status")?,
            as_of: c.date("as_of_date")?,
            usd: c.dec("original_unit_price_usd")?,
            source: c.str("price_source")?,
            effective: c.date("price_effective_start")?,
            price_file: c.str("price_source_file")?,
            price_row: c.i64("price_source_row")?,
            currency: c.str("currency")?,
            fx: c.dec("fx_usd_per_unit")?,
            fx_date: c.date("fx_rate_date")?,
            purchase: c.dec("purchase_unit_price")?,
            markup: c.dec("reservation_markup_percent")?,
            sell: c.dec("sell_unit_price")?,
            total: c.dec("total")?,
            n_total: c.i64("installments_total")?,
            n_billed: c.i64("installments_billed_so_far")?,
            billed: c.dec("billed_so_far")?,
            source_file: c.str("source_file")?,
            source_row: c.i64("source_row")?,
            reseller: match b.column_by_name("reseller_id") {
                Some(_) => Some(c.str("reseller_id")?),
                None => None,
            },
        })
    }

    /// Row `r`.
    fn row(&self, r: usize) -> Result<AssetRow> {
        let mut text = self.texts.iter().map(|a| a.value(r).to_string());
        let order_text = std::array::from_fn(|k| {
            if k == QUANTITY {
                self.quantity.value(r).to_string()
            } else {
                text.next().unwrap_or_default()
            }
        });
        let dec = |a: &Decimal128Array| Dec10(a.value(r));
        Ok(AssetRow {
            order_text,
            quantity: self.quantity.value(r),
            organization_id: self.org.value(r).to_string(),
            partnership_id: self.partnership.value(r).to_string(),
            purchase_date_utc: self.purchased.value(r),
            expiration_utc: self.expires.value(r),
            status: AssetStatus::parse(self.status.value(r)).ok_or_else(|| Error::Schema {
                column: "status".into(),
                expected: "active or expired".into(),
            })?,
            as_of: days_to_date(self.as_of.value(r)),
            original_unit_price_usd: dec(self.usd),
            price_source: self.source.value(r).to_string(),
            price_effective_start: (!self.effective.is_null(r))
                .then(|| days_to_date(self.effective.value(r))),
            price_source_file: opt_str(self.price_file, r).map(str::to_string),
            price_source_row: (!self.price_row.is_null(r)).then(|| self.price_row.value(r)),
            currency: self.currency.value(r).to_string(),
            fx_usd_per_unit: dec(self.fx),
            fx_rate_date: days_to_date(self.fx_date.value(r)),
            purchase_unit_price: dec(self.purchase),
            reservation_markup_percent: dec(self.markup),
            sell_unit_price: dec(self.sell),
            total: dec(self.total),
            installments_total: self.n_total.value(r),
            installments_billed_so_far: self.n_billed.value(r),
            billed_so_far: dec(self.billed),
            source_file: self.source_file.value(r).to_string(),
            source_row: self.source_row.value(r),
            reseller_id: self
                .reseller
                .and_then(|a| opt_str(a, r))
                .map(str::to_string),
        })
    }
}

/// How many of `rows` have expired.
pub fn expired_count(rows: &[AssetRow]) -> usize {
    rows.iter()
        .filter(|a| a.status == AssetStatus::Expired)
        .count()
}

/// Which assets `cspcost assets` lists.
#[derive(Clone, Debug, Default)]
pub struct AssetQuery {
    /// Only this organization.
    pub organization_id: Option<String>,
    /// Only this status.
    pub status: Option<AssetStatus>,
}

impl AssetQuery {
    /// Validate `--org` (an organization of the lake's reference data) and `--status`
    /// (`active` / `expired`), reporting every problem at once.
    pub fn from_flags(
        lake: &Lake,
        org: Option<&str>,
        status: Option<&Choice<AssetStatus>>,
    ) -> Result<AssetQuery> {
        let mut problems = Vec::new();
        if let Some(org) = org {
            if !Reference::load(lake)?.organizations.contains_key(org) {
                problems.push(format!(
                    "--org '{org}' is not an organization of this lake (organizations.csv)"
                ));
            }
        }
        let status = status.and_then(|s| {
            s.value()
                .map_err(|why| problems.push(format!("--status {why}")))
                .ok()
        });
        ensure_no_problems(problems)?;
        Ok(AssetQuery {
            organization_id: org.map(str::to_string),
            status,
        })
    }
}

/// The assets matching `query`, in order ID order; `None` when `reserve` never ran.
pub fn list_assets(lake: &Lake, query: &AssetQuery) -> Result<Option<Vec<AssetRow>>> {
    let Some(batches) = lake.get_parquet(ASSETS_FILE)? else {
        return Ok(None);
    };
    let mut rows = Vec::new();
    for b in &batches {
        assets_from_batch(b, &mut rows)?;
    }
    rows.retain(|r| {
        query
            .organization_id
            .as_ref()
            .is_none_or(|o| *o == r.organization_id)
            && query.status.is_none_or(|s| s == r.status)
    });
    Ok(Some(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_position_matches_the_order_fields() {
        assert_eq!(order_field_index("quantity"), Some(QUANTITY));
    }

    #[test]
    fn rows_round_trip_through_a_batch() {
        let d = |s: &str| Dec10::parse(s).unwrap();
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let mut order_text: [String; 13] = std::array::from_fn(|i| format!("v{i}"));
        order_text[QUANTITY] = "3".into();
        let row = AssetRow {
            order_text,
            quantity: 3,
            organization_id: "contoso".into(),
            partnership_id: "p-eu".into(),
            purchase_date_utc: 1_769_853_600_000_000,
            expiration_utc: 1_801_389_600_000_000,
            status: AssetStatus::Expired,
            as_of: day("2027-02-05"),
            original_unit_price_usd: d("700.8"),
            price_source: "price_sheet".into(),
            price_effective_start: Some(day("2024-01-01")),
            price_source_file: Some("retail-prices-page-1.json".into()),
            price_source_row: Some(4),
            currency: "EUR".into(),
            fx_usd_per_unit: d("1.0854"),
            fx_rate_date: day("2026-01-01"),
            purchase_unit_price: d("645.66"),
            reservation_markup_percent: d("10"),
            sell_unit_price: d("710.23"),
            total: d("2130.69"),
            installments_total: 12,
            installments_billed_so_far: 12,
            billed_so_far: d("2130.69"),
            source_file: "orders.csv".into(),
            source_row: 2,
            reseller_id: None,
        };
        let captured = AssetRow {
            price_source: "order".into(),
            price_effective_start: None,
            price_source_file: None,
            price_source_row: None,
            status: AssetStatus::Active,
            ..row.clone()
        };
        let batch = assets_to_batch(&[row.clone(), captured.clone()]).unwrap();
        let mut back = Vec::new();
        assets_from_batch(&batch, &mut back).unwrap();
        assert_eq!(back, vec![row, captured]);
        assert_eq!(back[0].get("order_id"), "v0");
        assert_eq!(expired_count(&back), 1);
    }
}
