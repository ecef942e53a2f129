//! What finance reads, in `--out`: `lines.parquet`/`lines.csv` and `summary.csv` (the
//! extract), `variance.parquet`/`variance.csv` and `variance_summary.csv` (with `--invoice`).
//!
//! Each table is declared once as typed columns and rendered both ways, so the Parquet file
//! and the CSV can never disagree: decimals are `DECIMAL(38,10)` in Parquet and their exact
//! 10-decimal text in CSV; dates are `DATE` and ISO text. Summaries are for people and only
//! exist as CSV, with amounts rounded to the currency's minor unit (rating.md §1). Every file
//! is written under a temporary name and renamed, like the lake's own files.

use crate::error::{Error, Result};
use crate::model::decimal::Dec10;
use crate::model::schema::{a_date, a_dec, a_i64, a_str, f_date, f_dec, f_i64, f_str};
use crate::model::time::{date_to_days, days_to_date};
use crate::reconcile::extract::{Extract, ExtractKey, ExtractTotals, OrgSummary};
use crate::reconcile::variance::{VarianceLine, VarianceReason, VarianceSummary};
use crate::report::minor_unit_amount;
use crate::store::Lake;
use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema};
use std::io::Write;
use std::sync::Arc;

/// One column's values.
pub enum Cells {
    /// Text.
    Str(Vec<Option<String>>),
    /// Exact decimals.
    Dec(Vec<Option<Dec10>>),
    /// Dates, days since the epoch.
    Date(Vec<Option<i32>>),
    /// Counts.
    Int(Vec<i64>),
}

impl Cells {
    fn field(&self, name: &str, nullable: bool) -> Field {
        match self {
            Cells::Str(_) => f_str(name, nullable),
            Cells::Dec(_) => f_dec(name, nullable),
            Cells::Date(_) => f_date(name, nullable),
            Cells::Int(_) => f_i64(name, nullable),
        }
    }

    fn array(&self) -> ArrayRef {
        match self {
            Cells::Str(v) => a_str(v.iter().map(|s| s.as_deref())),
            Cells::Dec(v) => a_dec(v.iter().map(|d| d.map(|d| d.0))),
            Cells::Date(v) => a_date(v.iter().copied()),
            Cells::Int(v) => a_i64(v.iter().map(|i| Some(*i))),
        }
    }

    fn text(&self, row: usize) -> String {
        match self {
            Cells::Str(v) => v[row].clone().unwrap_or_default(),
            Cells::Dec(v) => v[row].map(|d| d.to_string()).unwrap_or_default(),
            Cells::Date(v) => v[row]
                .map(|d| days_to_date(d).to_string())
                .unwrap_or_default(),
            Cells::Int(v) => v[row].to_string(),
        }
    }
}

/// One named column. Nullability is declared, not inferred from the values, so that every
/// run writes the same schema.
pub struct Column {
    /// Header / field name.
    pub name: &'static str,
    /// Whether the value may be absent.
    pub nullable: bool,
    /// The values.
    pub cells: Cells,
}

/// A column that always has a value.
fn col(name: &'static str, cells: Cells) -> Column {
    Column {
        name,
        nullable: false,
        cells,
    }
}

/// A column whose value may be absent.
fn opt(name: &'static str, cells: Cells) -> Column {
    Column {
        name,
        nullable: true,
        cells,
    }
}

/// A table declared as named columns of equal length.
pub struct Table {
    /// Rows.
    pub rows: usize,
    /// Columns in output order.
    pub columns: Vec<Column>,
}

impl Table {
    fn batch(&self) -> Result<RecordBatch> {
        let schema = Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| c.cells.field(c.name, c.nullable))
                .collect::<Vec<_>>(),
        ));
        let arrays = self.columns.iter().map(|c| c.cells.array()).collect();
        Ok(RecordBatch::try_new(schema, arrays)?)
    }

    /// The CSV text; `path` only names the file in an error (writing to memory cannot
    /// fail for I/O reasons, but the encoder's errors are still reported, not unwrapped).
    fn csv_bytes(&self, path: &std::path::Path) -> Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let cerr = |e: csv::Error| Error::io(path, e.into());
        w.write_record(self.columns.iter().map(|c| c.name))
            .map_err(cerr)?;
        for row in 0..self.rows {
            w.write_record(self.columns.iter().map(|c| c.cells.text(row)))
                .map_err(cerr)?;
        }
        w.into_inner().map_err(|e| Error::io(path, e.into_error()))
    }

    /// Write `<stem>.csv` (and `<stem>.parquet` when `parquet`) into `out`; returns the
    /// names written.
    pub fn write(&self, out: &Lake, stem: &str, parquet: bool) -> Result<Vec<String>> {
        let mut written = Vec::new();
        if parquet {
            let name = format!("{stem}.parquet");
            let batch = self.batch()?;
            out.put_parquet(&name, batch.schema(), &[batch], vec![])?;
            written.push(name);
        }
        let name = format!("{stem}.csv");
        let bytes = self.csv_bytes(&out.path(&name))?;
        out.put_atomic(&name, |f| {
            f.write_all(&bytes)
                .map_err(|e| Error::io(out.path(&name), e))
        })?;
        written.push(name);
        Ok(written)
    }
}

fn strs<T>(items: &[T], f: impl Fn(&T) -> Option<String>) -> Cells {
    Cells::Str(items.iter().map(f).collect())
}

fn decs<T>(items: &[T], f: impl Fn(&T) -> Option<Dec10>) -> Cells {
    Cells::Dec(items.iter().map(f).collect())
}

/// `lines`: one row per extract line (the usage date only at the daily grain).
pub fn lines_table(extract: &Extract, daily: bool) -> Table {
    let lines: Vec<_> = extract.lines.iter().collect();
    let key = |f: fn(&ExtractKey) -> &String| strs(&lines, |(k, _)| Some(f(k).clone()));
    let total = |f: fn(&ExtractTotals) -> Dec10| decs(&lines, |(_, t)| Some(f(t)));
    let mut columns = vec![
        col("organization_id", key(|k| &k.organization_id)),
        col("customer_tenant_id", key(|k| &k.customer_tenant_id)),
        col("subscription_id", key(|k| &k.subscription_id)),
        col("meter_id", key(|k| &k.meter_id)),
    ];
    if daily {
        let days = lines.iter().map(|(k, _)| k.usage_date).collect();
        columns.push(col("usage_date", Cells::Date(days)));
    }
    let units = |t: &ExtractTotals| {
        t.pricing_units
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    };
    columns.extend([
        col(
            "rows",
            Cells::Int(lines.iter().map(|(_, t)| t.rows as i64).collect()),
        ),
        col("PricingQuantity", total(|t| t.pricing_quantity)),
        col("PricingUnit", strs(&lines, |(_, t)| Some(units(t)))),
        col("x_ListCostUsd", total(|t| t.list_cost_usd)),
        col("ListCost", total(|t| t.list_cost)),
        col("BilledCost", total(|t| t.billed_cost)),
        col("BillingCurrency", key(|k| &k.billing_currency)),
    ]);
    Table {
        rows: lines.len(),
        columns,
    }
}

/// `summary`: per organization, totals rounded to the minor unit (`x_ListCostUsd` in USD).
pub fn summary_table(orgs: &[OrgSummary]) -> Table {
    let count = |f: fn(&OrgSummary) -> u64| Cells::Int(orgs.iter().map(|o| f(o) as i64).collect());
    let amount = |f: fn(&OrgSummary) -> (Dec10, &str)| {
        strs(orgs, |o| {
            let (v, currency) = f(o);
            Some(minor_unit_amount(v, currency))
        })
    };
    Table {
        rows: orgs.len(),
        columns: vec![
            col(
                "organization_id",
                strs(orgs, |o| Some(o.organization_id.clone())),
            ),
            col(
                "BillingCurrency",
                strs(orgs, |o| Some(o.billing_currency.clone())),
            ),
            col("lines", count(|o| o.lines)),
            col("rows", count(|o| o.rows)),
            col("x_ListCostUsd", amount(|o| (o.list_cost_usd, "USD"))),
            col("ListCost", amount(|o| (o.list_cost, &o.billing_currency))),
            col(
                "BilledCost",
                amount(|o| (o.billed_cost, &o.billing_currency)),
            ),
        ],
    }
}

/// `variance`: one row per compared line.
pub fn variance_table(lines: &[VarianceLine]) -> Table {
    let text = |f: fn(&VarianceLine) -> Option<String>| strs(lines, f);
    let amount = |f: fn(&VarianceLine) -> Option<Dec10>| decs(lines, f);
    let day = |f: fn(&VarianceLine) -> chrono::NaiveDate| {
        Cells::Date(lines.iter().map(|l| Some(date_to_days(f(l)))).collect())
    };
    let source_lines = |l: &VarianceLine| {
        let n: Vec<String> = l.invoice_lines.iter().map(u64::to_string).collect();
        Some(n.join(";"))
    };
    Table {
        rows: lines.len(),
        columns: vec![
            col(
                "customer_tenant_id",
                text(|l| Some(l.customer_tenant_id.clone())),
            ),
            opt("organization_id", text(|l| l.organization_id.clone())),
            opt("customer_name", text(|l| l.customer_name.clone())),
            opt("subscription_id", text(|l| l.subscription_id.clone())),
            col("meter_id", text(|l| Some(l.meter_id.clone()))),
            opt("meter_name", text(|l| l.meter_name.clone())),
            col("charge_period_start", day(|l| l.charge_period.start)),
            col("charge_period_end", day(|l| l.charge_period.end)),
            col("currency", text(|l| Some(l.currency.clone()))),
            opt("unit", text(|l| l.unit.clone())),
            opt("invoice_quantity", amount(|l| l.invoice_quantity)),
            opt("computed_quantity", amount(|l| l.computed_quantity)),
            col(
                "quantity_difference",
                amount(|l| Some(l.quantity_difference)),
            ),
            opt("invoice_cost", amount(|l| l.invoice_cost)),
            opt(
                "computed_cost_calendar",
                amount(|l| l.computed_cost_calendar),
            ),
            opt("computed_cost_cycle", amount(|l| l.computed_cost_cycle)),
            col(
                "cost_difference_calendar",
                amount(|l| Some(l.cost_difference_calendar)),
            ),
            col(
                "cost_difference_cycle",
                amount(|l| Some(l.cost_difference_cycle)),
            ),
            opt(
                "effective_discount_percent",
                amount(|l| l.effective_discount_percent),
            ),
            col("reason_code", text(|l| Some(l.reason.to_string()))),
            col("invoice_lines", strs(lines, source_lines)),
            col(
                "computed_rows",
                Cells::Int(lines.iter().map(|l| l.computed_rows as i64).collect()),
            ),
        ],
    }
}

/// `variance_summary`: per customer tenant, then `total`; amounts in the invoice currency,
/// rounded to its minor unit, one column per reason code with the amount it explains.
pub fn variance_summary_table(summaries: &[VarianceSummary], currency: &str) -> Table {
    let money = |v: Dec10| Some(minor_unit_amount(v, currency));
    let tenant = |s: &VarianceSummary| {
        Some(
            s.customer_tenant_id
                .clone()
                .unwrap_or_else(|| "total".into()),
        )
    };
    let mut columns = vec![
        col("customer_tenant_id", strs(summaries, tenant)),
        opt(
            "organization_id",
            strs(summaries, |s| s.organization_id.clone()),
        ),
        opt(
            "customer_name",
            strs(summaries, |s| s.customer_name.clone()),
        ),
        col("currency", strs(summaries, |_| Some(currency.to_string()))),
        col(
            "lines",
            Cells::Int(summaries.iter().map(|s| s.lines as i64).collect()),
        ),
        col("invoice_total", strs(summaries, |s| money(s.invoice_total))),
        col(
            "computed_total",
            strs(summaries, |s| money(s.computed_total)),
        ),
        col(
            "computed_total_cycle",
            strs(summaries, |s| money(s.computed_total_cycle)),
        ),
        col("difference", strs(summaries, |s| money(s.difference()))),
    ];
    for reason in VarianceReason::ALL {
        let explained =
            |s: &VarianceSummary| money(s.explained.get(&reason).map(|e| e.1).unwrap_or_default());
        columns.push(col(reason.as_str(), strs(summaries, explained)));
    }
    Table {
        rows: summaries.len(),
        columns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_declaration_two_renderings() {
        let t = Table {
            rows: 2,
            columns: vec![
                opt("id", Cells::Str(vec![Some("a".into()), None])),
                opt(
                    "amount",
                    Cells::Dec(vec![Some(Dec10::parse("1.5").unwrap()), None]),
                ),
                opt("day", Cells::Date(vec![Some(20468), None])),
                col("n", Cells::Int(vec![3, 4])),
            ],
        };
        let csv = String::from_utf8(t.csv_bytes(std::path::Path::new("t.csv")).unwrap()).unwrap();
        assert_eq!(csv, "id,amount,day,n\na,1.5000000000,2026-01-15,3\n,,,4\n");
        let b = t.batch().unwrap();
        assert_eq!(b.num_rows(), 2);
        assert_eq!(
            b.schema().field(1).data_type(),
            &crate::model::schema::decimal_type()
        );
        assert!(b.schema().field(1).is_nullable());
        assert!(!b.schema().field(3).is_nullable());
    }
}
