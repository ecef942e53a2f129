//! One statement (billing.md): its lines from cost rows, each rounded to the currency's minor
//! unit once, the rounding line, adjustment lines for restated issued months, the total, and
//! the exact `statement.json` / `statement.csv` bytes.

use crate::bill::rows::CostRow;
use crate::error::{Error, Result};
use crate::model::decimal::Dec10;
use crate::model::half_away_from_zero::round_scale10_to;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Who receives a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HolderKind {
    /// A customer organization (its rows' `BilledCost`).
    Organization,
    /// A reseller (its organizations' rows' `x_ResellerCost`).
    Reseller,
}

impl HolderKind {
    /// `organization` / `reseller`.
    pub fn as_str(self) -> &'static str {
        match self {
            HolderKind::Organization => "organization",
            HolderKind::Reseller => "reseller",
        }
    }

    /// The partition key of its statement directory (`org`, `reseller`).
    pub fn dir_key(self) -> &'static str {
        match self {
            HolderKind::Organization => "org",
            HolderKind::Reseller => "reseller",
        }
    }
}

/// A statement line's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// Usage of one (`ServiceName`, `ChargeCategory`, `ChargeFrequency`).
    Usage,
    /// One reservation installment.
    Reservation,
    /// The difference a restatement made to a line of an issued month.
    Adjustment,
    /// `round_minor(sum of rows) - sum(rounded lines)`.
    Rounding,
}

impl LineKind {
    /// `usage`, `reservation`, `adjustment`, `rounding`.
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Usage => "usage",
            LineKind::Reservation => "reservation",
            LineKind::Adjustment => "adjustment",
            LineKind::Rounding => "rounding",
        }
    }
}

/// One line. `key` identifies what it bills across months (so that a later statement can
/// adjust it); `adjusts` names the (month, key) an adjustment line corrects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// Kind.
    pub kind: LineKind,
    /// Stable identity of what the line bills.
    pub key: String,
    /// Human description.
    pub description: String,
    /// Organization the line belongs to.
    pub organization_id: Option<String>,
    /// `ServiceName` (usage).
    pub service_name: Option<String>,
    /// `ChargeCategory`.
    pub charge_category: Option<String>,
    /// `ChargeFrequency`.
    pub charge_frequency: Option<String>,
    /// Reservation order ID.
    pub order_id: Option<String>,
    /// `k of n` (1-based) of a reservation installment.
    pub installment: Option<String>,
    /// Amount, rounded to the currency's minor unit.
    #[serde(with = "dec_text")]
    pub amount: Dec10,
    /// The issued month and line key an adjustment corrects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjusts: Option<(String, String)>,
}

/// Decimal amounts as JSON strings, never floats.
mod dec_text {
    use crate::model::decimal::Dec10;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Dec10, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_plain())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Dec10, D::Error> {
        let text = String::deserialize(d)?;
        Dec10::parse(&text)
            .map_err(|_| serde::de::Error::custom(format!("'{text}' is not a decimal")))
    }
}

/// An FX rate a statement's rows used.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FxUsed {
    /// Billing currency.
    pub currency: String,
    /// USD per unit.
    pub usd_per_unit: Dec10,
    /// `YYYY-MM` of the rate.
    pub month: String,
}

/// A statement, ready to render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// `<holder>-<YYYY-MM>`.
    pub invoice_id: String,
    /// Billing month.
    pub month: String,
    /// Who issues it.
    pub issuer: String,
    /// Holder kind.
    pub holder_kind: HolderKind,
    /// Holder ID.
    pub holder_id: String,
    /// Holder name.
    pub holder_name: String,
    /// Billing currency.
    pub currency: String,
    /// Minor-unit digits of the currency.
    pub digits: u32,
    /// FX rates used, sorted.
    pub fx: Vec<FxUsed>,
    /// Markups applied, in percent: consumption and reservation.
    pub markup_percent: (Dec10, Dec10),
    /// Lines: charges, adjustments, then the rounding line.
    pub lines: Vec<Line>,
    /// Exact sum of the statement's own rows (scale 10).
    pub rows_exact: Dec10,
    /// Number of rows.
    pub rows: usize,
    /// Sum of all lines.
    pub total: Dec10,
    /// Whether issued.
    pub issued: bool,
}

fn overflow(what: &str) -> Error {
    Error::Overflow {
        context: format!("summing statement lines ({what})"),
    }
}

/// `a + b`, failing instead of wrapping.
pub fn add(a: Dec10, b: Dec10) -> Result<Dec10> {
    a.checked_add(b).ok_or_else(|| overflow("addition"))
}

/// Round to `digits` decimals, half away from zero (the one rounding module).
pub fn round_minor(v: Dec10, digits: u32) -> Dec10 {
    Dec10(round_scale10_to(v.0, digits))
}

/// The amount a row contributes to a holder's statement.
fn row_amount(row: &CostRow, kind: HolderKind) -> Result<Dec10> {
    match kind {
        HolderKind::Organization => Ok(row.billed),
        HolderKind::Reseller => row.reseller_cost.ok_or_else(|| {
            Error::config(format!(
                "{}: a row of organization '{}' has no x_ResellerCost although the organization is billed by a reseller: run `rate` and `reserve` again after `ingest reference` of resellers.csv",
                row.file, row.org
            ))
        }),
    }
}

/// Sort key of a charge line: organization, usage before reservations, then its fields.
type LineSort = (String, u8, String, String, String, i64);

/// The charge lines of `rows` (usage per service/category/frequency, one per reservation
/// installment), each rounded once, followed by the rounding line; and the rows' exact sum.
pub fn charge_lines(
    rows: &[&CostRow],
    kind: HolderKind,
    digits: u32,
) -> Result<(Vec<Line>, Dec10)> {
    let mut groups: BTreeMap<LineSort, (Line, Dec10)> = BTreeMap::new();
    let mut exact = Dec10::ZERO;
    for r in rows {
        let amount = row_amount(r, kind)?;
        exact = add(exact, amount)?;
        let (sort, line) = charge_line_of(r);
        let entry = groups.entry(sort).or_insert((line, Dec10::ZERO));
        entry.1 = add(entry.1, amount)?;
    }
    let mut lines = Vec::with_capacity(groups.len() + 1);
    let mut rounded_sum = Dec10::ZERO;
    for (_, (mut line, sum)) in groups {
        line.amount = round_minor(sum, digits);
        rounded_sum = add(rounded_sum, line.amount)?;
        lines.push(line);
    }
    let rounding = round_minor(exact, digits)
        .checked_sub(rounded_sum)
        .ok_or_else(|| overflow("rounding"))?;
    lines.push(rounding_line(rounding));
    Ok((lines, exact))
}

/// The (still zero) charge line a row adds to, with its sort key: one per reservation
/// installment, else one per usage service/category/frequency.
fn charge_line_of(r: &CostRow) -> (LineSort, Line) {
    match (&r.installment, r.category.as_str()) {
        (Some((order, k, n)), "Purchase") => (
            (
                r.org.clone(),
                1,
                order.clone(),
                String::new(),
                String::new(),
                *k,
            ),
            reservation_line(r, order, *k, *n),
        ),
        _ => (
            (
                r.org.clone(),
                0,
                r.service.clone(),
                r.category.clone(),
                r.frequency.clone(),
                0,
            ),
            usage_line(r),
        ),
    }
}

/// The line of installment `k` (0-based) of `n` of reservation order `order`.
fn reservation_line(r: &CostRow, order: &str, k: i64, n: i64) -> Line {
    Line {
        kind: LineKind::Reservation,
        key: format!("reservation|{}|{order}|{k}", r.org),
        description: format!(
            "{} (order {order}, installment {} of {n})",
            r.description,
            k + 1
        ),
        organization_id: Some(r.org.clone()),
        service_name: None,
        charge_category: Some(r.category.clone()),
        charge_frequency: Some(r.frequency.clone()),
        order_id: Some(order.to_string()),
        installment: Some(format!("{} of {n}", k + 1)),
        amount: Dec10::ZERO,
        adjusts: None,
    }
}

/// The usage line of a row's service, category and frequency.
fn usage_line(r: &CostRow) -> Line {
    Line {
        kind: LineKind::Usage,
        key: format!(
            "usage|{}|{}|{}|{}",
            r.org, r.service, r.category, r.frequency
        ),
        description: if r.service.is_empty() {
            "(no service name)".to_string()
        } else {
            r.service.clone()
        },
        organization_id: Some(r.org.clone()),
        service_name: Some(r.service.clone()).filter(|s| !s.is_empty()),
        charge_category: Some(r.category.clone()),
        charge_frequency: Some(r.frequency.clone()),
        order_id: None,
        installment: None,
        amount: Dec10::ZERO,
        adjusts: None,
    }
}

/// The rounding line (always present, may be 0).
fn rounding_line(amount: Dec10) -> Line {
    Line {
        kind: LineKind::Rounding,
        key: "rounding".into(),
        description: "Rounding".into(),
        organization_id: None,
        service_name: None,
        charge_category: None,
        charge_frequency: None,
        order_id: None,
        installment: None,
        amount,
        adjusts: None,
    }
}

/// Adjustment lines for issued month `month`: for every line key, what its lines amount to
/// now (`current`, rounding line included) minus what was billed for it so far (`billed`,
/// the issued statement's line plus earlier adjustments). `described` gives descriptions of
/// keys billed before that no longer appear now.
pub fn adjustment_lines(
    month: &str,
    current: &[Line],
    billed: &BTreeMap<String, (Dec10, Line)>,
) -> Result<Vec<Line>> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let describe = |line: &Line, amount: Dec10| {
        let what = match line.kind {
            LineKind::Rounding => "rounding".to_string(),
            _ => line.description.clone(),
        };
        Line {
            kind: LineKind::Adjustment,
            key: format!("adjustment|{month}|{}", line.key),
            description: format!("Adjustment for {month}: {what}"),
            amount,
            adjusts: Some((month.to_string(), line.key.clone())),
            ..line.clone()
        }
    };
    for line in current {
        seen.insert(line.key.clone());
        let before = billed.get(&line.key).map(|b| b.0).unwrap_or(Dec10::ZERO);
        let diff = line
            .amount
            .checked_sub(before)
            .ok_or_else(|| overflow("adjustment"))?;
        if diff != Dec10::ZERO {
            out.push(describe(line, diff));
        }
    }
    for (key, (amount, line)) in billed {
        if !seen.contains(key) && *amount != Dec10::ZERO {
            out.push(describe(line, Dec10(-amount.0)));
        }
    }
    Ok(out)
}

/// Sum of line amounts.
pub fn sum_lines<'a>(lines: impl IntoIterator<Item = &'a Line>) -> Result<Dec10> {
    lines
        .into_iter()
        .try_fold(Dec10::ZERO, |s, l| add(s, l.amount))
}

#[derive(Serialize)]
struct JsonHolder<'a> {
    kind: &'a str,
    id: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct JsonFx {
    currency: String,
    usd_per_unit: String,
    month: String,
}

#[derive(Serialize)]
struct JsonMarkup {
    consumption: String,
    reservation: String,
}

#[derive(Serialize)]
struct JsonLine<'a> {
    kind: &'a str,
    description: &'a str,
    organization_id: Option<&'a str>,
    service_name: Option<&'a str>,
    charge_category: Option<&'a str>,
    charge_frequency: Option<&'a str>,
    order_id: Option<&'a str>,
    installment: Option<&'a str>,
    amount: String,
}

#[derive(Serialize)]
struct JsonStatement<'a> {
    invoice_id: &'a str,
    month: &'a str,
    issuer: &'a str,
    holder: JsonHolder<'a>,
    currency: &'a str,
    fx: Vec<JsonFx>,
    markup_percent: JsonMarkup,
    lines: Vec<JsonLine<'a>>,
    total: String,
    issued: bool,
}

impl Statement {
    /// Amount text with exactly the currency's minor-unit digits.
    pub fn money(&self, v: Dec10) -> String {
        v.to_fixed(self.digits)
    }

    /// Adjustment lines and their sum.
    pub fn adjustments(&self) -> (usize, Dec10) {
        let adj: Vec<&Line> = self
            .lines
            .iter()
            .filter(|l| l.kind == LineKind::Adjustment)
            .collect();
        let sum = adj.iter().fold(Dec10::ZERO, |s, l| Dec10(s.0 + l.amount.0));
        (adj.len(), sum)
    }

    /// `statement.json`: amounts as decimal strings.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        let doc = JsonStatement {
            invoice_id: &self.invoice_id,
            month: &self.month,
            issuer: &self.issuer,
            holder: JsonHolder {
                kind: self.holder_kind.as_str(),
                id: &self.holder_id,
                name: &self.holder_name,
            },
            currency: &self.currency,
            fx: self
                .fx
                .iter()
                .map(|f| JsonFx {
                    currency: f.currency.clone(),
                    usd_per_unit: f.usd_per_unit.to_plain(),
                    month: f.month.clone(),
                })
                .collect(),
            markup_percent: JsonMarkup {
                consumption: self.markup_percent.0.to_plain(),
                reservation: self.markup_percent.1.to_plain(),
            },
            lines: self
                .lines
                .iter()
                .map(|l| JsonLine {
                    kind: l.kind.as_str(),
                    description: &l.description,
                    organization_id: l.organization_id.as_deref(),
                    service_name: l.service_name.as_deref(),
                    charge_category: l.charge_category.as_deref(),
                    charge_frequency: l.charge_frequency.as_deref(),
                    order_id: l.order_id.as_deref(),
                    installment: l.installment.as_deref(),
                    amount: self.money(l.amount),
                })
                .collect(),
            total: self.money(self.total),
            issued: self.issued,
        };
        let mut bytes = serde_json::to_vec_pretty(&doc).map_err(|e| Error::Json {
            path: format!("statement {}", self.invoice_id),
            source: e,
        })?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// `statement.csv`: billing.md's header, the lines, then one `total` line.
    pub fn to_csv(&self) -> Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let csv_err = |e: csv::Error| Error::InputFormat {
            path: format!("statement {}", self.invoice_id),
            expected: format!("a writable CSV: {e}"),
        };
        w.write_record([
            "invoice_id",
            "kind",
            "organization_id",
            "description",
            "service_name",
            "charge_category",
            "charge_frequency",
            "order_id",
            "installment",
            "amount",
            "currency",
        ])
        .map_err(csv_err)?;
        for l in &self.lines {
            let o = |v: &Option<String>| v.clone().unwrap_or_default();
            w.write_record([
                self.invoice_id.clone(),
                l.kind.as_str().to_string(),
                o(&l.organization_id),
                l.description.clone(),
                o(&l.service_name),
                o(&l.charge_category),
                o(&l.charge_frequency),
                o(&l.order_id),
                o(&l.installment),
                self.money(l.amount),
                self.currency.clone(),
            ])
            .map_err(csv_err)?;
        }
        let empty = String::new();
        w.write_record([
            &self.invoice_id,
            "total",
            &empty,
            "Total",
            &empty,
            &empty,
            &empty,
            &empty,
            &empty,
            &self.money(self.total),
            &self.currency,
        ])
        .map_err(csv_err)?;
        w.into_inner().map_err(|e| Error::InputFormat {
            path: format!("statement {}", self.invoice_id),
            expected: format!("a writable CSV: {e}"),
        })
    }
}

/// The FX rates `rows` used, distinct and sorted.
pub fn fx_used(rows: &[&CostRow]) -> Vec<FxUsed> {
    let set: BTreeSet<FxUsed> = rows
        .iter()
        .filter_map(|r| {
            r.fx.as_ref().map(|(v, m)| FxUsed {
                currency: r.currency.clone(),
                usd_per_unit: *v,
                month: m.clone(),
            })
        })
        .collect();
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(org: &str, service: &str, billed: &str) -> CostRow {
        CostRow {
            org: org.into(),
            currency: "EUR".into(),
            category: "Usage".into(),
            frequency: "Usage-Based".into(),
            description: "meter".into(),
            service: service.into(),
            billed: Dec10::parse(billed).unwrap(),
            reseller_cost: None,
            fx: None,
            installment: None,
            file: "f".into(),
        }
    }

    #[test]
    fn lines_round_once_and_the_rounding_line_closes_the_gap() {
        // Three services of 0.005 each: each line rounds up to 0.01 (half away from zero),
        // the exact sum 0.015 rounds to 0.02, so the rounding line is -0.01.
        let rows = [
            row("o", "A", "0.005"),
            row("o", "B", "0.004"),
            row("o", "B", "0.001"),
            row("o", "C", "0.005"),
        ];
        let refs: Vec<&CostRow> = rows.iter().collect();
        let (lines, exact) = charge_lines(&refs, HolderKind::Organization, 2).unwrap();
        let got: Vec<String> = lines
            .iter()
            .map(|l| {
                format!(
                    "{} {} {}",
                    l.kind.as_str(),
                    l.description,
                    l.amount.to_plain()
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                "usage A 0.01",
                "usage B 0.01",
                "usage C 0.01",
                "rounding Rounding -0.01"
            ]
        );
        assert_eq!(exact.to_plain(), "0.015");
        assert_eq!(sum_lines(&lines).unwrap().to_plain(), "0.02");
    }

    #[test]
    fn adjustments_are_the_differences_per_line() {
        let rows = [row("o", "A", "10.004"), row("o", "B", "2")];
        let refs: Vec<&CostRow> = rows.iter().collect();
        let (now, _) = charge_lines(&refs, HolderKind::Organization, 2).unwrap();
        let old_rows = [row("o", "A", "7.5"), row("o", "Z", "1")];
        let old_refs: Vec<&CostRow> = old_rows.iter().collect();
        let (old, _) = charge_lines(&old_refs, HolderKind::Organization, 2).unwrap();
        let billed: BTreeMap<String, (Dec10, Line)> = old
            .into_iter()
            .map(|l| (l.key.clone(), (l.amount, l)))
            .collect();
        let adj = adjustment_lines("2026-01", &now, &billed).unwrap();
        let got: Vec<String> = adj
            .iter()
            .map(|l| format!("{} {}", l.description, l.amount.to_plain()))
            .collect();
        assert_eq!(
            got,
            [
                "Adjustment for 2026-01: A 2.5",
                "Adjustment for 2026-01: B 2",
                "Adjustment for 2026-01: Z -1"
            ]
        );
    }
}
