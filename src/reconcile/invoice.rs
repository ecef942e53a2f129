//! Microsoft's invoice reconciliation file for legacy Azure usage (inputs.md §5), read as
//! Microsoft writes it: the partner's CSV (UTF-8 BOM, columns by name in any order, extra
//! columns ignored, `M/D/YYYY H:MM` dates, money cells like `$1,234.50`) or the API's JSON
//! pages of `UsageBasedLineItem` (camelCase, names matched case-insensitively, ISO dates
//! without offset). Both forms go through one validation, so a field means the same thing
//! whichever way it came. A line that fails it stops the command (exit 2) with the file, the
//! line and the field: an invoice is compared whole or not at all.

use crate::error::Result;
use crate::model::decimal::Dec10;
use crate::model::ids::normalize_guid;
use crate::model::time::parse_lenient_utc;
use crate::reconcile::period::Period;
use crate::reconcile::ReconcileError;
use crate::store::input::{logical_name, read_all};
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Field names as Microsoft spells them in the CSV (the API uses the same names in
/// camelCase; both are matched case-insensitively).
pub mod field {
    /// Customer tenant GUID.
    pub const CUSTOMER_ID: &str = "CustomerId";
    /// Customer name (CSV).
    pub const CUSTOMER_COMPANY_NAME: &str = "CustomerCompanyName";
    /// Customer name (older CSV layouts).
    pub const CUSTOMER_NAME: &str = "CustomerName";
    /// Invoice number.
    pub const INVOICE_NUMBER: &str = "InvoiceNumber";
    /// First day of the charge period.
    pub const CHARGE_START_DATE: &str = "ChargeStartDate";
    /// Last day of the charge period.
    pub const CHARGE_END_DATE: &str = "ChargeEndDate";
    /// Billing-platform subscription ID (CSV) or subscription GUID (API).
    pub const SUBSCRIPTION_ID: &str = "SubscriptionId";
    /// Meter GUID.
    pub const RESOURCE_GUID: &str = "ResourceGuid";
    /// Meter name.
    pub const RESOURCE_NAME: &str = "ResourceName";
    /// Tier band of a meter's charge.
    pub const DETAIL_LINE_ITEM_ID: &str = "DetailLineItemId";
    /// Quantity consumed, including latent usage of earlier cycles.
    pub const CONSUMED_QUANTITY: &str = "ConsumedQuantity";
    /// Charge before tax, in `Currency`.
    pub const PRETAX_CHARGES: &str = "PretaxCharges";
    /// ISO 4217 currency of the charges.
    pub const CURRENCY: &str = "Currency";
    /// Unit of `ConsumedQuantity`.
    pub const UNIT: &str = "Unit";
    /// `attributes.objectType` of an API item.
    pub const OBJECT_TYPE: &str = "attributes.objectType";
}

/// Columns without which no line can be compared.
const REQUIRED: [&str; 7] = [
    field::CUSTOMER_ID,
    field::CHARGE_START_DATE,
    field::CHARGE_END_DATE,
    field::RESOURCE_GUID,
    field::CONSUMED_QUANTITY,
    field::PRETAX_CHARGES,
    field::CURRENCY,
];

/// One usage-based line item, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceLine {
    /// 1-based line of the file where the line (CSV row or JSON item) starts.
    pub source_line: u64,
    /// Customer tenant GUID, lowercase.
    pub customer_tenant_id: String,
    /// `CustomerCompanyName` (or `CustomerName`).
    pub customer_name: Option<String>,
    /// `InvoiceNumber`.
    pub invoice_number: Option<String>,
    /// The charge period (the partner's billing cycle), inclusive dates.
    pub charge_period: Period,
    /// `SubscriptionId` as written; lowercase when it is a GUID.
    pub subscription_id: Option<String>,
    /// Meter GUID, lowercase.
    pub meter_id: String,
    /// `ResourceName`.
    pub meter_name: Option<String>,
    /// `DetailLineItemId` (the tier band), as written.
    pub detail_line_item_id: Option<String>,
    /// `ConsumedQuantity`.
    pub consumed_quantity: Dec10,
    /// `PretaxCharges`.
    pub pretax_charges: Dec10,
    /// `Currency`, upper case.
    pub currency: String,
    /// `Unit` of the consumed quantity.
    pub unit: Option<String>,
}

/// A parsed invoice file.
#[derive(Clone, Debug)]
pub struct Invoice {
    /// The file as given.
    pub path: String,
    /// Its lines in file order.
    pub lines: Vec<InvoiceLine>,
    /// The one currency of its lines (`None` for an invoice without lines).
    pub currency: Option<String>,
}

/// Read an invoice file: `.json` (optionally `.gz`) as API pages, anything else as CSV.
pub fn read_invoice(path: &Path) -> Result<Invoice> {
    let label = path.display().to_string();
    let bytes = read_all(path)?;
    let lines = if logical_name(path).ends_with(".json") {
        let text = std::str::from_utf8(&bytes).map_err(|e| ReconcileError::InvoiceSyntax {
            path: label.clone(),
            line: line_at(&bytes, e.valid_up_to()),
            problem: "not UTF-8 text".into(),
        })?;
        parse_json(&label, text)?
    } else {
        parse_csv(&label, &bytes)?
    };
    let currency = one_currency(&label, &lines)?;
    Ok(Invoice {
        path: label,
        lines,
        currency,
    })
}

/// The currency shared by every line; a second currency is an error naming its line.
fn one_currency(path: &str, lines: &[InvoiceLine]) -> Result<Option<String>, ReconcileError> {
    let Some(first) = lines.first() else {
        return Ok(None);
    };
    if let Some(other) = lines.iter().find(|l| l.currency != first.currency) {
        return Err(ReconcileError::MixedCurrency {
            path: path.to_string(),
            line: other.source_line,
            first: first.currency.clone(),
            other: other.currency.clone(),
        });
    }
    Ok(Some(first.currency.clone()))
}

/// Parse the partner's reconciliation CSV.
pub fn parse_csv(path: &str, bytes: &[u8]) -> Result<Vec<InvoiceLine>, ReconcileError> {
    // Microsoft's export starts with a UTF-8 BOM that would otherwise stick to the first name.
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(body);
    let names: Vec<String> = rdr
        .headers()
        .map_err(|e| ReconcileError::InvoiceSyntax {
            path: path.to_string(),
            line: 1,
            problem: format!("the header row is not readable as CSV: {e}"),
        })?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let missing: Vec<String> = REQUIRED
        .iter()
        .filter(|r| !names.contains(&r.to_ascii_lowercase()))
        .map(|r| r.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(ReconcileError::InvoiceColumns {
            path: path.to_string(),
            missing,
        });
    }
    let mut out = Vec::new();
    let mut lines = LineCounter::new(body);
    for rec in rdr.records() {
        let rec = rec.map_err(|e| ReconcileError::InvoiceSyntax {
            path: path.to_string(),
            line: lines.at(e.position()),
            problem: format!("not readable as CSV: {e}"),
        })?;
        let line = lines.at(rec.position());
        if rec.len() != names.len() {
            return Err(ReconcileError::InvoiceSyntax {
                path: path.to_string(),
                line,
                problem: format!("{} fields where the header has {}", rec.len(), names.len()),
            });
        }
        let cells = names
            .iter()
            .zip(rec.iter())
            .map(|(n, v)| (n.clone(), v.to_string()))
            .collect();
        out.push(RawLine { line, cells }.validate(path)?);
    }
    Ok(out)
}

/// Line numbers of CSV records from their byte offsets. The csv crate's own line count lags
/// by one after a CRLF terminator (Microsoft's exports end lines with CRLF), so the line is
/// counted here: the record starts after any line breaks at its offset.
struct LineCounter<'a> {
    body: &'a [u8],
    offset: usize,
    newlines: u64,
}

impl<'a> LineCounter<'a> {
    fn new(body: &'a [u8]) -> LineCounter<'a> {
        LineCounter {
            body,
            offset: 0,
            newlines: 0,
        }
    }

    /// 1-based line of the record at `pos` (records come in file order, so counting resumes
    /// where the previous record left off).
    fn at(&mut self, pos: Option<&csv::Position>) -> u64 {
        let Some(pos) = pos else {
            return 0;
        };
        let mut start = (pos.byte() as usize).min(self.body.len());
        while start < self.body.len() && matches!(self.body[start], b'\r' | b'\n') {
            start += 1;
        }
        if start < self.offset {
            self.offset = 0;
            self.newlines = 0;
        }
        self.newlines += self.body[self.offset..start]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64;
        self.offset = start;
        self.newlines + 1
    }
}

/// Parse API output: one page (`{"items": [...]}`), several pages one after the other, an
/// array of items, or one item per line.
pub fn parse_json(path: &str, text: &str) -> Result<Vec<InvoiceLine>, ReconcileError> {
    let syntax = |line: u64, problem: String| ReconcileError::InvoiceSyntax {
        path: path.to_string(),
        line,
        problem,
    };
    let json_error = |e: serde_json::Error| syntax(e.line() as u64, format!("not valid JSON: {e}"));
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for value in serde_json::Deserializer::from_str(text).into_iter::<&RawValue>() {
        let value = value.map_err(json_error)?;
        let body = value.get().trim_start();
        let items: Vec<&RawValue> = if body.starts_with('[') {
            serde_json::from_str(value.get()).map_err(json_error)?
        } else if body.starts_with('{') {
            let obj: BTreeMap<String, &RawValue> =
                serde_json::from_str(value.get()).map_err(json_error)?;
            match obj.iter().find(|(k, _)| k.eq_ignore_ascii_case("items")) {
                Some((_, items)) => serde_json::from_str(items.get()).map_err(json_error)?,
                None => vec![value],
            }
        } else {
            return Err(syntax(
                line_at(text.as_bytes(), offset_in(text, value)),
                "expected a page of line items, an array of them or one line item".into(),
            ));
        };
        for item in items {
            out.push(raw_line_of_item(path, text, item)?.validate(path)?);
        }
    }
    Ok(out)
}

/// Byte offset of a borrowed raw value inside the text it was parsed from.
fn offset_in(text: &str, raw: &RawValue) -> usize {
    (raw.get().as_ptr() as usize)
        .saturating_sub(text.as_ptr() as usize)
        .min(text.len())
}

/// 1-based line of a byte offset.
fn line_at(bytes: &[u8], offset: usize) -> u64 {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u64
        + 1
}

/// The scalar properties of one API item, keyed lowercase; numbers keep their text.
fn raw_line_of_item(path: &str, text: &str, item: &RawValue) -> Result<RawLine, ReconcileError> {
    let line = line_at(text.as_bytes(), offset_in(text, item));
    let obj: BTreeMap<String, &RawValue> =
        serde_json::from_str(item.get()).map_err(|e| ReconcileError::InvoiceSyntax {
            path: path.to_string(),
            line,
            problem: format!("a line item must be a JSON object: {e}"),
        })?;
    let mut cells = HashMap::new();
    for (key, value) in obj {
        let key = key.to_ascii_lowercase();
        let t = value.get().trim();
        if key == "attributes" {
            check_object_type(path, line, t)?;
        } else if t.starts_with('"') {
            let s: String = serde_json::from_str(t).unwrap_or_default();
            cells.insert(key, s);
        } else if !(t == "null" || t.starts_with('{') || t.starts_with('[')) {
            // A number token keeps its exact text (rating.md §1).
            cells.insert(key, t.to_string());
        }
    }
    Ok(RawLine { line, cells })
}

/// Only usage-based line items are reconciled; other kinds would be compared to nothing.
fn check_object_type(path: &str, line: u64, attributes: &str) -> Result<(), ReconcileError> {
    let attrs: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(attributes).unwrap_or_default();
    let kind = attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("objectType"))
        .and_then(|(_, v)| v.as_str());
    match kind {
        Some(k) if !k.eq_ignore_ascii_case("UsageBasedLineItem") => {
            Err(ReconcileError::InvoiceField {
                path: path.to_string(),
                line,
                field: field::OBJECT_TYPE,
                problem: format!(
                    "'{k}' is not a UsageBasedLineItem (only usage-based line items are reconciled)"
                ),
            })
        }
        _ => Ok(()),
    }
}

/// One line's cells by lowercase name, before validation.
struct RawLine {
    line: u64,
    cells: HashMap<String, String>,
}

impl RawLine {
    /// The trimmed, non-empty text of a field.
    fn get(&self, name: &str) -> Option<&str> {
        self.cells
            .get(&name.to_ascii_lowercase())
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    fn bad(&self, path: &str, field: &'static str, problem: String) -> ReconcileError {
        ReconcileError::InvoiceField {
            path: path.to_string(),
            line: self.line,
            field,
            problem,
        }
    }

    fn required(&self, path: &str, field: &'static str) -> Result<&str, ReconcileError> {
        self.get(field)
            .ok_or_else(|| self.bad(path, field, "is empty or missing".into()))
    }

    fn guid(&self, path: &str, field: &'static str) -> Result<String, ReconcileError> {
        let v = self.required(path, field)?;
        normalize_guid(v).ok_or_else(|| self.bad(path, field, format!("'{v}' is not a GUID")))
    }

    fn date(&self, path: &str, field: &'static str) -> Result<chrono::NaiveDate, ReconcileError> {
        let v = self.required(path, field)?;
        parse_lenient_utc(v).map(|t| t.date_naive()).ok_or_else(|| {
            self.bad(
                path,
                field,
                format!("'{v}' is not a date (M/D/YYYY H:MM or ISO 8601)"),
            )
        })
    }

    fn amount(&self, path: &str, field: &'static str) -> Result<Dec10, ReconcileError> {
        let v = self.required(path, field)?;
        parse_amount(v).map_err(|problem| self.bad(path, field, problem))
    }

    fn text(&self, field: &str) -> Option<String> {
        self.get(field).map(str::to_string)
    }

    fn validate(self, path: &str) -> Result<InvoiceLine, ReconcileError> {
        let customer_tenant_id = self.guid(path, field::CUSTOMER_ID)?;
        let start = self.date(path, field::CHARGE_START_DATE)?;
        let end = self.date(path, field::CHARGE_END_DATE)?;
        let charge_period = Period::new(start, end).ok_or_else(|| {
            self.bad(
                path,
                field::CHARGE_END_DATE,
                format!("{end} is before ChargeStartDate {start}"),
            )
        })?;
        let meter_id = self.guid(path, field::RESOURCE_GUID)?;
        let consumed_quantity = self.amount(path, field::CONSUMED_QUANTITY)?;
        let pretax_charges = self.amount(path, field::PRETAX_CHARGES)?;
        let currency = self.required(path, field::CURRENCY)?.to_ascii_uppercase();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(self.bad(
                path,
                field::CURRENCY,
                format!("'{currency}' is not an ISO 4217 currency code"),
            ));
        }
        let subscription_id = self
            .get(field::SUBSCRIPTION_ID)
            .map(|s| normalize_guid(s).unwrap_or_else(|| s.to_string()));
        Ok(InvoiceLine {
            source_line: self.line,
            customer_tenant_id,
            customer_name: self
                .text(field::CUSTOMER_COMPANY_NAME)
                .or_else(|| self.text(field::CUSTOMER_NAME)),
            invoice_number: self.text(field::INVOICE_NUMBER),
            charge_period,
            subscription_id,
            meter_id,
            meter_name: self.text(field::RESOURCE_NAME),
            detail_line_item_id: self.text(field::DETAIL_LINE_ITEM_ID),
            consumed_quantity,
            pretax_charges,
            currency,
            unit: self.text(field::UNIT),
        })
    }
}

/// A number from an invoice cell: currency symbols (`$`, `€`, any non-ASCII sign) and spaces
/// are dropped, thousands separators are removed when they group the integer digits by
/// three, and accounting parentheses mean a negative amount. Then the text is parsed exactly.
/// A decimal comma (`1,5`) is refused rather than guessed.
pub fn parse_amount(text: &str) -> Result<Dec10, String> {
    let refuse = || {
        format!(
            "'{text}' is not an amount (a decimal number, optionally with a currency symbol and thousands separators)"
        )
    };
    let t = text.trim();
    let (negate, inner) = match t.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
        Some(inner) => (true, inner),
        None => (false, t),
    };
    let cleaned: String = inner
        .chars()
        .filter(|c| c.is_ascii() && *c != '$' && !c.is_ascii_whitespace())
        .collect();
    let plain = without_thousands_separators(&cleaned).ok_or_else(refuse)?;
    if negate && plain.starts_with('-') {
        return Err(refuse());
    }
    let v = Dec10::parse(&plain).map_err(|_| refuse())?;
    Ok(if negate { Dec10(-v.0) } else { v })
}

/// `-1,234,567.5` -> `-1234567.5`; `None` when commas are not thousands separators.
fn without_thousands_separators(s: &str) -> Option<String> {
    if !s.contains(',') {
        return Some(s.to_string());
    }
    let (sign, rest) = match s.strip_prefix(['-', '+']) {
        Some(r) => (&s[..1], r),
        None => ("", s),
    };
    let int_end = rest.find(['.', 'e', 'E']).unwrap_or(rest.len());
    let (int_part, tail) = rest.split_at(int_end);
    if tail.contains(',') {
        return None;
    }
    let groups: Vec<&str> = int_part.split(',').collect();
    let digits = |g: &str| g.bytes().all(|b| b.is_ascii_digit());
    let first_ok = (1..=3).contains(&groups[0].len()) && digits(groups[0]);
    let rest_ok = groups[1..].iter().all(|g| g.len() == 3 && digits(g));
    (first_ok && rest_ok).then(|| format!("{sign}{}{tail}", groups.concat()))
}

/// `--subscription-map`: billing-platform `SubscriptionId` -> subscription GUID.
pub type SubscriptionMap = BTreeMap<String, String>;

/// Read a `SubscriptionId,subscription_id` CSV (header names case-insensitive, BOM allowed).
/// Every line must map a non-empty ID to a GUID, and an ID maps to one GUID only.
pub fn read_subscription_map(path: &Path) -> Result<SubscriptionMap> {
    let label = path.display().to_string();
    let bytes = read_all(path)?;
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let bad = |line: u64, problem: String| ReconcileError::SubscriptionMap {
        path: label.clone(),
        line,
        problem,
    };
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(body);
    let names: Vec<String> = rdr
        .headers()
        .map_err(|e| bad(1, format!("the header row is not readable as CSV: {e}")))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let (Some(from), Some(to)) = (
        names.iter().position(|n| n == "subscriptionid"),
        names.iter().position(|n| n == "subscription_id"),
    ) else {
        return Err(bad(
            1,
            "expected the header SubscriptionId,subscription_id".into(),
        )
        .into());
    };
    let mut map = SubscriptionMap::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            bad(
                e.position().map(|p| p.line()).unwrap_or(0),
                format!("not readable as CSV: {e}"),
            )
        })?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let billing_id = rec.get(from).unwrap_or("").trim();
        let guid_text = rec.get(to).unwrap_or("").trim();
        if billing_id.is_empty() {
            return Err(bad(line, "SubscriptionId is empty".into()).into());
        }
        let guid = normalize_guid(guid_text)
            .ok_or_else(|| bad(line, format!("subscription_id '{guid_text}' is not a GUID")))?;
        if let Some(prev) = map.insert(billing_id.to_string(), guid.clone()) {
            if prev != guid {
                return Err(bad(
                    line,
                    format!("SubscriptionId {billing_id} is mapped to {prev} and to {guid}"),
                )
                .into());
            }
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(s: &str) -> String {
        parse_amount(s).unwrap().to_plain()
    }

    #[test]
    fn money_cells_lose_symbols_and_thousands_separators() {
        assert_eq!(amount("$1,234.50"), "1234.5");
        assert_eq!(amount("$0.0808"), "0.0808");
        assert_eq!(amount("1,234,567"), "1234567");
        assert_eq!(amount("-$12.00"), "-12");
        assert_eq!(amount("$-12.00"), "-12");
        assert_eq!(amount("($3.10)"), "-3.1");
        assert_eq!(amount("€12.50"), "12.5");
        assert_eq!(amount("¥1,500"), "1500");
        assert_eq!(amount("1.5E-7"), "0.00000015");
        assert_eq!(amount(" 63.33 "), "63.33");
        for bad in [
            "1,5", "12,34.5", "1,2345", "$", "", "abc", "1.2.3", "(-1)", "1.5,0",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad} should be refused");
        }
        assert!(parse_amount("1,23.4")
            .unwrap_err()
            .contains("'1,23.4' is not an amount"));
    }

    const HEADER: &str = "PartnerId,CustomerId,CustomerCompanyName,InvoiceNumber,ChargeStartDate,ChargeEndDate,SubscriptionId,ResourceGuid,ResourceName,DetailLineItemId,ConsumedQuantity,PretaxCharges,Currency,Unit";

    fn csv_with(rows: &[&str]) -> Vec<u8> {
        let mut s = String::from("\u{feff}");
        s.push_str(HEADER);
        for r in rows {
            s.push_str("\r\n");
            s.push_str(r);
        }
        s.push_str("\r\n");
        s.into_bytes()
    }

    const ROW: &str = r#"p1,686ADBC4-FD3F-4688-B527-617394BF68AF,Contoso Ltd,G001,1/15/2026 0:00,2/14/2026 23:59,usCBMgAAAAAAAAIA,8A09FF56-1B50-410F-A959-30227B19001E,Data Transfer Out,2,95,"$1,234.50",usd,1 GB"#;

    #[test]
    fn csv_with_bom_reads_microsofts_forms() {
        let lines = parse_csv("inv.csv", &csv_with(&[ROW])).unwrap();
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert_eq!(l.source_line, 2);
        assert_eq!(l.customer_tenant_id, "686adbc4-fd3f-4688-b527-617394bf68af");
        assert_eq!(l.customer_name.as_deref(), Some("Contoso Ltd"));
        assert_eq!(l.meter_id, "8a09ff56-1b50-410f-a959-30227b19001e");
        assert_eq!(l.charge_period.to_string(), "2026-01-15..2026-02-14");
        assert_eq!(l.subscription_id.as_deref(), Some("usCBMgAAAAAAAAIA"));
        assert_eq!(l.detail_line_item_id.as_deref(), Some("2"));
        assert_eq!(l.consumed_quantity.to_plain(), "95");
        assert_eq!(l.pretax_charges.to_plain(), "1234.5");
        assert_eq!(l.currency, "USD");
        assert_eq!(l.unit.as_deref(), Some("1 GB"));
    }

    #[test]
    fn csv_columns_in_any_order_extra_ones_ignored_customer_name_alias() {
        let text = "Extra,Currency,PretaxCharges,ConsumedQuantity,ResourceGuid,ChargeEndDate,ChargeStartDate,CustomerName,CustomerId,Tax Amount\n\
                    x,EUR,$0.0808,1.25,8a09ff56-1b50-410f-a959-30227b19001e,2026-02-14T00:00:00,2026-01-15T00:00:00,Fabrikam,77683a7d-7f5f-40ee-b171-212656ea1f96,\"1,000.00\"\n";
        let lines = parse_csv("inv.csv", text.as_bytes()).unwrap();
        assert_eq!(lines[0].customer_name.as_deref(), Some("Fabrikam"));
        assert_eq!(lines[0].pretax_charges.to_plain(), "0.0808");
        assert_eq!(lines[0].charge_period.to_string(), "2026-01-15..2026-02-14");
        assert_eq!(lines[0].subscription_id, None);
    }

    #[test]
    fn csv_errors_name_file_line_and_field() {
        let bad_money = ROW.replace("\"$1,234.50\"", "\"$1,23.4\"");
        let e = parse_csv("inv.csv", &csv_with(&[ROW, &bad_money])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "inv.csv: line 3: field PretaxCharges: '$1,23.4' is not an amount (a decimal number, optionally with a currency symbol and thousands separators)"
        );
        let bad_date = ROW.replace("1/15/2026 0:00", "15.01.2026");
        let e = parse_csv("inv.csv", &csv_with(&[&bad_date])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("inv.csv: line 2: field ChargeStartDate: '15.01.2026' is not a date"),
            "{e}"
        );
        let bad_guid = ROW.replace("686ADBC4-FD3F-4688-B527-617394BF68AF", "contoso");
        let e = parse_csv("inv.csv", &csv_with(&[ROW, ROW, &bad_guid])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "inv.csv: line 4: field CustomerId: 'contoso' is not a GUID"
        );
        let backwards = ROW.replace("2/14/2026 23:59", "1/14/2026 23:59");
        let e = parse_csv("inv.csv", &csv_with(&[&backwards])).unwrap_err();
        assert!(e
            .to_string()
            .contains("field ChargeEndDate: 2026-01-14 is before ChargeStartDate 2026-01-15"));
        let short = "p1,686adbc4-fd3f-4688-b527-617394bf68af,Contoso";
        let e = parse_csv("inv.csv", &csv_with(&[short])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "inv.csv: line 2: 3 fields where the header has 14"
        );
        let e = parse_csv("inv.csv", b"CustomerId,ResourceGuid\n").unwrap_err();
        assert_eq!(e.to_string(), "inv.csv: not an invoice reconciliation file: missing column(s) ChargeStartDate, ChargeEndDate, ConsumedQuantity, PretaxCharges, Currency");
    }

    #[test]
    fn microsofts_api_sample_reads_unchanged() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/samples/invoice-lineitems-azure.json"
        );
        let inv = read_invoice(Path::new(path)).unwrap();
        assert_eq!(inv.currency.as_deref(), Some("USD"));
        assert_eq!(inv.lines.len(), 2);
        let (a, b) = (&inv.lines[0], &inv.lines[1]);
        assert_eq!(a.customer_tenant_id, "65726577-c208-40fd-9735-8c85ac000000");
        assert_eq!(a.customer_name.as_deref(), Some("601 tests"));
        assert_eq!(a.invoice_number.as_deref(), Some("1234000000"));
        assert_eq!(
            a.subscription_id.as_deref(),
            Some("87f4b92f-a490-485e-ad34-5b70cb000000")
        );
        assert_eq!(a.meter_id, "505db374-df8a-44df-9d8c-13c14b61dee1");
        assert_eq!(a.meter_name.as_deref(), Some("S1"));
        assert_eq!(a.charge_period.to_string(), "2019-08-02..2019-09-01");
        assert_eq!(
            (a.consumed_quantity.to_plain(), a.pretax_charges.to_plain()),
            ("745".into(), "63.33".into())
        );
        assert_eq!(a.unit.as_deref(), Some("1 Hour"));
        assert_eq!(a.source_line, 4);
        assert_eq!(b.meter_id, "d23a5753-ff85-4ddf-af28-8cc5cf2d3882");
        assert_eq!(b.consumed_quantity.to_plain(), "0.000882");
        assert_eq!(b.pretax_charges, Dec10::ZERO);
        assert_eq!(b.source_line, 17);
    }

    #[test]
    fn json_names_match_case_insensitively_and_errors_name_the_item_line() {
        let text = "{\"items\": [\n  {\"CUSTOMERID\": \"65726577-c208-40fd-9735-8c85ac000000\", \"resourceguid\": \"505DB374-DF8A-44DF-9D8C-13C14B61DEE1\",\n   \"chargeStartDate\": \"2019-08-02T00:00:00\", \"chargeEndDate\": \"2019-09-01T00:00:00\", \"consumedQuantity\": 1.5E-7, \"pretaxCharges\": \"1,000.25\", \"currency\": \"EUR\"},\n  {\"customerId\": \"65726577-c208-40fd-9735-8c85ac000000\", \"resourceGuid\": \"505db374-df8a-44df-9d8c-13c14b61dee1\",\n   \"chargeStartDate\": \"2019-08-02T00:00:00\", \"chargeEndDate\": \"2019-09-01T00:00:00\", \"consumedQuantity\": \"lots\", \"pretaxCharges\": 1, \"currency\": \"EUR\"}\n]}";
        let e = parse_json("p.json", text).unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.json: line 4: field ConsumedQuantity: 'lots' is not an amount (a decimal number, optionally with a currency symbol and thousands separators)"
        );
        let first_only = text.replacen("\"lots\"", "2", 1);
        let lines = parse_json("p.json", &first_only).unwrap();
        assert_eq!(lines[0].consumed_quantity.to_string(), "0.0000001500");
        assert_eq!(lines[0].pretax_charges.to_plain(), "1000.25");
        assert_eq!(lines[0].meter_id, "505db374-df8a-44df-9d8c-13c14b61dee1");
        assert_eq!(lines[1].source_line, 4);
        let other_kind =
            r#"{"customerId": "x", "attributes": {"objectType": "OneTimeInvoiceLineItem"}}"#;
        let e = parse_json("p.json", other_kind).unwrap_err();
        assert!(
            e.to_string().contains(
                "field attributes.objectType: 'OneTimeInvoiceLineItem' is not a UsageBasedLineItem"
            ),
            "{e}"
        );
        assert!(parse_json("p.json", "{\"items\": [").is_err());
    }

    #[test]
    fn one_currency_per_invoice() {
        let eur = ROW.replace(",usd,", ",EUR,");
        let lines = parse_csv("inv.csv", &csv_with(&[ROW, &eur])).unwrap();
        let e = one_currency("inv.csv", &lines).unwrap_err();
        assert_eq!(e.to_string(), "inv.csv: line 3: currency EUR differs from USD on the earlier lines (one invoice file is in one currency)");
    }
}
