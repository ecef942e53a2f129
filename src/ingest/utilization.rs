//! Partner Center utilization records (inputs.md §1): API pages saved under their route
//! (`customers/<tenant>/subscriptions/<sub>/utilizations/azure/*.json`), NDJSON, or CSV.
//! Each record is validated in the spec's reason order and becomes a [`UsageRecord`] or a
//! [`QuarantineRecord`]; nothing is dropped.

use crate::error::{Error, Result};
use crate::ingest::json_text::{canonical_json, decimal_from_raw, scalar_text};
use crate::ingest::source::{logical_name, open_reader};
use crate::model::ids::normalize_guid;
use crate::model::reason::{QuarantineRecord, ReasonCode};
use crate::model::time::{date_to_days, parse_rfc3339_utc, to_micros};
use crate::model::usage::UsageRecord;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// What one input record became.
#[derive(Debug)]
pub enum Parsed {
    /// A valid record.
    Record(Box<UsageRecord>),
    /// A quarantined one.
    Quarantined(Box<QuarantineRecord>),
}

/// Largest raw text kept for a record that could not be split from its file.
const MAX_RAW: usize = 1 << 20;

/// Tenant and subscription from a `.../customers/<t>/subscriptions/<s>/...` path.
pub fn route_ids(path: &Path) -> (Option<String>, Option<String>) {
    let parts: Vec<String> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let after = |name: &str| {
        parts
            .iter()
            .position(|p| p.eq_ignore_ascii_case(name))
            .and_then(|i| parts.get(i + 1))
            .cloned()
    };
    (after("customers"), after("subscriptions"))
}

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    items: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct RawResource {
    id: Option<String>,
    name: Option<String>,
    category: Option<String>,
    subcategory: Option<String>,
    region: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawInstance {
    resource_uri: Option<String>,
    location: Option<String>,
    part_number: Option<Value>,
    order_number: Option<Value>,
    additional_info: Option<Value>,
    tags: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRecord<'a> {
    usage_start_time: Option<String>,
    usage_end_time: Option<String>,
    resource: Option<RawResource>,
    #[serde(borrow)]
    quantity: Option<&'a RawValue>,
    unit: Option<String>,
    info_fields: Option<Value>,
    instance_data: Option<RawInstance>,
    customer_tenant_id: Option<String>,
    subscription_id: Option<String>,
}

/// Reads one file and hands every record to `sink`. Returns the number of records read.
pub fn parse_file(
    path: &Path,
    run_id: &str,
    sink: &mut dyn FnMut(Parsed) -> Result<()>,
) -> Result<u64> {
    let source = path.display().to_string();
    let ctx = FileCtx {
        source: &source,
        route: route_ids(path),
        run_id,
    };
    if logical_name(path).ends_with(".csv") {
        return parse_csv(path, &ctx, sink);
    }
    let mut reader = BufReader::with_capacity(1 << 20, open_reader(path)?);
    let mut first = String::new();
    reader
        .read_line(&mut first)
        .map_err(|e| Error::io(path, e))?;
    let first_is_record = serde_json::from_str::<serde_json::Map<String, Value>>(first.trim())
        .map(|m| !m.contains_key("items"))
        .unwrap_or(false);
    if first_is_record {
        // NDJSON: stream line by line, memory bounded by one line.
        let mut n = 0u64;
        let mut line_no = 1i64;
        let mut line = first;
        loop {
            if !line.trim().is_empty() {
                n += 1;
                sink(ctx.record(line.trim(), line_no))?;
            }
            line.clear();
            if reader
                .read_line(&mut line)
                .map_err(|e| Error::io(path, e))?
                == 0
            {
                break;
            }
            line_no += 1;
        }
        return Ok(n);
    }
    let mut text = first;
    reader
        .read_to_string(&mut text)
        .map_err(|e| Error::io(path, e))?;
    if text.trim().is_empty() {
        return Ok(0);
    }
    match serde_json::from_str::<Page>(&text) {
        Ok(Page { items: Some(items) }) => {
            for (i, item) in items.iter().enumerate() {
                sink(ctx.record(item.get(), i as i64 + 1))?;
            }
            Ok(items.len() as u64)
        }
        Ok(Page { items: None }) => {
            sink(ctx.quarantine(
                ReasonCode::Malformed,
                "the file is a JSON object without an `items` array: not a utilization page".into(),
                0,
                &text,
            ))?;
            Ok(1)
        }
        Err(e) => {
            sink(ctx.quarantine(
                ReasonCode::Malformed,
                format!("the file is neither a utilization page nor NDJSON: {e}"),
                0,
                &text,
            ))?;
            Ok(1)
        }
    }
}

struct FileCtx<'a> {
    source: &'a str,
    route: (Option<String>, Option<String>),
    run_id: &'a str,
}

struct Partial {
    tenant: Option<String>,
    subscription: Option<String>,
    meter: Option<String>,
    date: Option<chrono::NaiveDate>,
}

impl FileCtx<'_> {
    fn quarantine(&self, reason: ReasonCode, detail: String, row: i64, raw: &str) -> Parsed {
        self.quarantine_with(
            reason,
            detail,
            row,
            raw,
            Partial {
                tenant: None,
                subscription: None,
                meter: None,
                date: None,
            },
        )
    }

    fn quarantine_with(
        &self,
        reason: ReasonCode,
        detail: String,
        row: i64,
        raw: &str,
        p: Partial,
    ) -> Parsed {
        let raw = if raw.len() > MAX_RAW {
            &raw[..raw.floor_char_boundary(MAX_RAW)]
        } else {
            raw
        };
        Parsed::Quarantined(Box::new(QuarantineRecord {
            reason,
            detail,
            source_file: self.source.to_string(),
            source_row: row,
            raw: raw.to_string(),
            customer_tenant_id: p.tenant.map(|t| t.to_ascii_lowercase()),
            subscription_id: p.subscription.map(|s| s.to_ascii_lowercase()),
            meter_id: p.meter.map(|m| m.to_ascii_lowercase()),
            usage_date: p.date,
        }))
    }

    /// Validate one record's JSON text.
    fn record(&self, text: &str, row: i64) -> Parsed {
        let rec: RawRecord = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                return self.quarantine(
                    ReasonCode::Malformed,
                    format!("record is not a valid utilization record: {e}"),
                    row,
                    text,
                )
            }
        };
        let tenant = rec
            .customer_tenant_id
            .clone()
            .or_else(|| self.route.0.clone());
        let subscription = rec.subscription_id.clone().or_else(|| self.route.1.clone());
        let meter = rec.resource.as_ref().and_then(|r| r.id.clone());
        let start_text = rec.usage_start_time.clone();
        let mut partial = Partial {
            tenant: tenant.clone(),
            subscription: subscription.clone(),
            meter: meter.clone(),
            date: None,
        };
        let missing = [
            ("usageStartTime", rec.usage_start_time.is_none()),
            ("usageEndTime", rec.usage_end_time.is_none()),
            ("resource.id", meter.is_none()),
            ("quantity", rec.quantity.is_none()),
            (
                "customerTenantId (or a customers/<tenant>/ route in the path)",
                tenant.is_none(),
            ),
            (
                "subscriptionId (or a subscriptions/<subscription>/ route in the path)",
                subscription.is_none(),
            ),
        ];
        if let Some((field, _)) = missing.iter().find(|(_, m)| *m) {
            return self.quarantine_with(
                ReasonCode::Malformed,
                format!("required field {field} is missing"),
                row,
                text,
                partial,
            );
        }
        let quantity = match rec.quantity.map(decimal_from_raw) {
            Some(Ok(q)) => q,
            _ => {
                let shown = rec
                    .quantity
                    .map(|q| q.get().to_string())
                    .unwrap_or_default();
                return self.quarantine_with(
                    ReasonCode::BadNumber,
                    format!("quantity {shown} is not a decimal number"),
                    row,
                    text,
                    partial,
                );
            }
        };
        let start_raw = start_text.unwrap_or_default();
        let end_raw = rec.usage_end_time.clone().unwrap_or_default();
        let Some(start) = parse_rfc3339_utc(&start_raw) else {
            return self.quarantine_with(
                ReasonCode::BadTimestamp,
                format!("usageStartTime '{start_raw}' is not an RFC 3339 time with an offset"),
                row,
                text,
                partial,
            );
        };
        partial.date = Some(start.date_naive());
        let Some(end) = parse_rfc3339_utc(&end_raw) else {
            return self.quarantine_with(
                ReasonCode::BadTimestamp,
                format!("usageEndTime '{end_raw}' is not an RFC 3339 time with an offset"),
                row,
                text,
                partial,
            );
        };
        if end <= start {
            return self.quarantine_with(
                ReasonCode::BadTimestamp,
                format!("usageEndTime '{end_raw}' is not after usageStartTime '{start_raw}'"),
                row,
                text,
                partial,
            );
        }
        let ids = [
            ("customer tenant", &tenant),
            ("subscription", &subscription),
            ("resource.id (meter)", &meter),
        ];
        let mut norm = Vec::with_capacity(3);
        for (what, v) in ids {
            let v = v.as_deref().unwrap_or_default();
            match normalize_guid(v) {
                Some(g) => norm.push(g),
                None => {
                    return self.quarantine_with(
                        ReasonCode::BadId,
                        format!("{what} ID '{v}' is not a GUID"),
                        row,
                        text,
                        partial,
                    )
                }
            }
        }
        let (meter_id, subscription_id, customer_tenant_id) = (
            norm.pop().unwrap_or_default(),
            norm.pop().unwrap_or_default(),
            norm.pop().unwrap_or_default(),
        );
        let inst = rec.instance_data;
        let resource_uri = inst
            .as_ref()
            .and_then(|i| i.resource_uri.clone())
            .unwrap_or_default();
        let additional_info = inst
            .as_ref()
            .and_then(|i| i.additional_info.as_ref())
            .filter(|v| !v.is_null())
            .map(canonical_json)
            .unwrap_or_default();
        let tags = inst
            .as_ref()
            .and_then(|i| i.tags.as_ref())
            .filter(|v| v.is_object())
            .map(canonical_json)
            .unwrap_or_else(|| "{}".to_string());
        let (usage_start, usage_end) = (to_micros(start), to_micros(end));
        let key = format!("{customer_tenant_id}\u{1f}{subscription_id}\u{1f}{meter_id}\u{1f}{resource_uri}\u{1f}{usage_start}\u{1f}{usage_end}\u{1f}{additional_info}");
        let resource = rec.resource;
        Parsed::Record(Box::new(UsageRecord {
            key_hash: xxhash_rust::xxh3::xxh3_128(key.as_bytes()),
            customer_tenant_id,
            subscription_id,
            meter_id,
            meter_name: resource.as_ref().and_then(|r| r.name.clone()),
            meter_category: resource.as_ref().and_then(|r| r.category.clone()),
            meter_subcategory: resource.as_ref().and_then(|r| r.subcategory.clone()),
            meter_region: resource.as_ref().and_then(|r| r.region.clone()),
            resource_uri,
            location: inst.as_ref().and_then(|i| i.location.clone()),
            part_number: inst
                .as_ref()
                .and_then(|i| i.part_number.as_ref())
                .and_then(scalar_text),
            order_number: inst
                .as_ref()
                .and_then(|i| i.order_number.as_ref())
                .and_then(scalar_text),
            additional_info,
            tags,
            info_fields: rec
                .info_fields
                .as_ref()
                .filter(|v| !v.is_null())
                .map(canonical_json),
            unit: rec.unit.filter(|u| !u.trim().is_empty()),
            quantity,
            usage_start,
            usage_end,
            usage_date: date_to_days(start.date_naive()),
            source_file: self.source.to_string(),
            source_row: row,
            ingest_run_id: self.run_id.to_string(),
            raw: text.to_string(),
        }))
    }
}

/// CSV header names accepted for each record path (flat API names or dotted paths).
const CSV_FIELDS: &[(&str, &[&str])] = &[
    ("usageStartTime", &["usagestarttime"]),
    ("usageEndTime", &["usageendtime"]),
    ("resource.id", &["resource.id", "resourceid", "meterid"]),
    (
        "resource.name",
        &["resource.name", "resourcename", "metername"],
    ),
    (
        "resource.category",
        &["resource.category", "category", "metercategory"],
    ),
    (
        "resource.subcategory",
        &["resource.subcategory", "subcategory", "metersubcategory"],
    ),
    (
        "resource.region",
        &["resource.region", "region", "meterregion"],
    ),
    ("quantity", &["quantity"]),
    ("unit", &["unit"]),
    ("customerTenantId", &["customertenantid", "customerid"]),
    ("subscriptionId", &["subscriptionid"]),
    (
        "instanceData.resourceUri",
        &["instancedata.resourceuri", "resourceuri"],
    ),
    (
        "instanceData.location",
        &["instancedata.location", "location"],
    ),
    (
        "instanceData.partNumber",
        &["instancedata.partnumber", "partnumber"],
    ),
    (
        "instanceData.orderNumber",
        &["instancedata.ordernumber", "ordernumber"],
    ),
    (
        "instanceData.additionalInfo",
        &["instancedata.additionalinfo", "additionalinfo"],
    ),
    ("instanceData.tags", &["instancedata.tags", "tags"]),
];

fn parse_csv(
    path: &Path,
    ctx: &FileCtx,
    sink: &mut dyn FnMut(Parsed) -> Result<()>,
) -> Result<u64> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(open_reader(path)?);
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| Error::InputFormat {
            path: ctx.source.to_string(),
            expected: format!("a CSV header row: {e}"),
        })?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    let positions: Vec<(&str, Option<usize>)> = CSV_FIELDS
        .iter()
        .map(|(field, names)| {
            (
                *field,
                headers.iter().position(|h| names.contains(&h.as_str())),
            )
        })
        .collect();
    let mut n = 0u64;
    for (i, row) in rdr.records().enumerate() {
        n += 1;
        let line = i as i64 + 2;
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                sink(ctx.quarantine(
                    ReasonCode::Malformed,
                    format!("CSV row is not readable: {e}"),
                    line,
                    "",
                ))?;
                continue;
            }
        };
        let raw = row.iter().collect::<Vec<_>>().join(",");
        let mut obj = serde_json::Map::new();
        let mut bad_json = None;
        for (field, pos) in &positions {
            let Some(cell) = pos.and_then(|p| row.get(p)).filter(|c| !c.is_empty()) else {
                continue;
            };
            let value = if field.ends_with("additionalInfo") || field.ends_with("tags") {
                match serde_json::from_str::<Value>(cell) {
                    Ok(v) => v,
                    Err(e) => {
                        bad_json = Some(format!("column {field} is not a JSON object: {e}"));
                        continue;
                    }
                }
            } else {
                Value::String(cell.to_string())
            };
            let (outer, inner) = field
                .split_once('.')
                .map(|(a, b)| (a, Some(b)))
                .unwrap_or((field, None));
            match inner {
                None => {
                    obj.insert(outer.to_string(), value);
                }
                Some(inner) => {
                    let entry = obj
                        .entry(outer.to_string())
                        .or_insert_with(|| Value::Object(Default::default()));
                    if let Value::Object(m) = entry {
                        m.insert(inner.to_string(), value);
                    }
                }
            }
        }
        if let Some(detail) = bad_json {
            sink(ctx.quarantine(ReasonCode::Malformed, detail, line, &raw))?;
            continue;
        }
        let json = Value::Object(obj).to_string();
        let parsed = match ctx.record(&json, line) {
            Parsed::Record(mut r) => {
                r.raw = raw;
                Parsed::Record(r)
            }
            Parsed::Quarantined(mut q) => {
                q.raw = raw;
                Parsed::Quarantined(q)
            }
        };
        sink(parsed)?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_is_read_from_the_path() {
        let (t, s) = route_ids(Path::new("/d/customers/E499C962-9218-4DBA-8B83-8ADC94F47B9F/subscriptions/FC8F8908-F918-4406-AF13-D5BC0FE41865/utilizations/azure/p1.json"));
        assert_eq!(t.as_deref(), Some("E499C962-9218-4DBA-8B83-8ADC94F47B9F"));
        assert_eq!(s.as_deref(), Some("FC8F8908-F918-4406-AF13-D5BC0FE41865"));
        assert_eq!(route_ids(Path::new("/d/records.ndjson")), (None, None));
    }
}
