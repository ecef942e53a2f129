//! The `costs/` rows a statement is built from: only the columns billing needs, read through
//! the lake one organization partition at a time, so memory holds one organization's month.

use crate::emit::costs::{col, for_each_cost_batch};
use crate::error::Result;
use crate::model::decimal::Dec10;
use crate::model::schema::{opt_dec, opt_str, Cols};
use crate::store::Lake;
use arrow::array::Array;

/// The columns read; the rest of each partition is never decoded.
const COLUMNS: [&str; 13] = [
    col::BILLING_ACCOUNT_ID,
    col::BILLING_CURRENCY,
    col::CHARGE_CATEGORY,
    col::CHARGE_FREQUENCY,
    col::CHARGE_DESCRIPTION,
    col::SERVICE_NAME,
    col::BILLED_COST,
    col::RESELLER_COST,
    col::FX_USD_PER_UNIT,
    col::FX_RATE_MONTH,
    col::ORDER_ID,
    col::INSTALLMENT_INDEX,
    col::INSTALLMENT_COUNT,
];

/// One cost row, as much of it as a statement needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CostRow {
    /// `BillingAccountId` (organization).
    pub org: String,
    /// `BillingCurrency`.
    pub currency: String,
    /// `ChargeCategory` (`Usage`, `Purchase`).
    pub category: String,
    /// `ChargeFrequency`.
    pub frequency: String,
    /// `ChargeDescription` (meter name; product title of a reservation).
    pub description: String,
    /// `ServiceName` (empty when null).
    pub service: String,
    /// `BilledCost`.
    pub billed: Dec10,
    /// `x_ResellerCost` (null for direct customers and in partitions written before it).
    pub reseller_cost: Option<Dec10>,
    /// `x_FxUsdPerUnit` and `x_FxRateMonth`, when both are set.
    pub fx: Option<(Dec10, String)>,
    /// `x_OrderId`, `x_InstallmentIndex` and `x_InstallmentCount` of a reservation charge.
    pub installment: Option<(String, i64, i64)>,
    /// Lake-relative file the row came from (for error messages).
    pub file: String,
}

/// Every cost row of one organization's partition of `month` (`costs/org=<id>/month=<M>/`),
/// files in path order and rows in file order; empty when the partition does not exist.
pub fn org_month_rows(lake: &Lake, org: &str, month: &str) -> Result<Vec<CostRow>> {
    let mut out = Vec::new();
    let dir = crate::emit::costs::partition_dir(org, month);
    for_each_cost_batch(lake, &dir, &COLUMNS, |rel, batch| {
        read_batch(batch, rel, &mut out)
    })?;
    Ok(out)
}

fn read_batch(batch: &arrow::array::RecordBatch, rel: &str, out: &mut Vec<CostRow>) -> Result<()> {
    let c = Cols(batch);
    let (org, currency, category, frequency) = (
        c.str(col::BILLING_ACCOUNT_ID)?,
        c.str(col::BILLING_CURRENCY)?,
        c.str(col::CHARGE_CATEGORY)?,
        c.str(col::CHARGE_FREQUENCY)?,
    );
    let (description, service, billed) = (
        c.str(col::CHARGE_DESCRIPTION)?,
        c.str(col::SERVICE_NAME)?,
        c.dec(col::BILLED_COST)?,
    );
    // Partitions written before resellers existed have no x_ResellerCost column.
    let reseller = match batch.column_by_name(col::RESELLER_COST) {
        Some(_) => Some(c.dec(col::RESELLER_COST)?),
        None => None,
    };
    let (fx, fx_month) = (c.dec(col::FX_USD_PER_UNIT)?, c.str(col::FX_RATE_MONTH)?);
    let (order, index, count) = (
        c.str(col::ORDER_ID)?,
        c.i64(col::INSTALLMENT_INDEX)?,
        c.i64(col::INSTALLMENT_COUNT)?,
    );
    for i in 0..batch.num_rows() {
        let installment = match (opt_str(order, i), index.is_valid(i), count.is_valid(i)) {
            (Some(o), true, true) => Some((o.to_string(), index.value(i), count.value(i))),
            _ => None,
        };
        out.push(CostRow {
            org: org.value(i).to_string(),
            currency: currency.value(i).to_string(),
            category: category.value(i).to_string(),
            frequency: frequency.value(i).to_string(),
            description: opt_str(description, i).unwrap_or_default().to_string(),
            service: opt_str(service, i).unwrap_or_default().to_string(),
            billed: Dec10(billed.value(i)),
            reseller_cost: reseller.and_then(|a| opt_dec(a, i)).map(Dec10),
            fx: opt_dec(fx, i)
                .zip(opt_str(fx_month, i))
                .map(|(v, m)| (Dec10(v), m.to_string())),
            installment,
            file: rel.to_string(),
        });
    }
    Ok(())
}
