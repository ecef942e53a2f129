//! `ingest reservations`: reservation orders from CSV (header = field names) or JSON (an
//! array, a `{"items": [...]}` page, or NDJSON) into `staged/reservations/orders.parquet`.
//! An identical order again is a no-op; the same `order_id` with other content is staged
//! and rejected by `reserve` as `DUPLICATE_ORDER`, so the conflict stays visible every run.

use crate::emit::manifest::{Manifest, PartitionSummary};
use crate::error::{Error, Result};
use crate::ingest::json_text::scalar_text;
use crate::ingest::source::plan_files;
use crate::ingest::{finish_ingest, record_counts, IngestCounts};
use crate::model::decimal::Dec10;
use crate::model::ids::normalize_guid;
use crate::model::order::{order_schema, orders_to_batch, ReservationOrder, ORDER_TEXT_FIELDS};
use crate::model::reason::{QuarantineRecord, ReasonCode};
use crate::model::time::{parse_lenient_utc, to_micros};
use crate::staged::ledger::Ledger;
use crate::store::Lake;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::staged::orders::{load_orders, ORDERS_FILE};
use crate::store::input::{csv_row_error, logical_name, open_reader, read_all};

/// Validate one order given as field -> text.
#[allow(
    clippy::result_large_err,
    reason = "the Err side is the quarantine record of one rejected record, built once; boxing it buys nothing"
)]
fn order_from_fields(
    fields: &BTreeMap<String, String>,
    source: &str,
    row: i64,
    raw: &str,
) -> Outcome {
    let get = |k: &str| {
        fields
            .get(k)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let tenant_raw = get("customer_tenant_id");
    let reject = |reason, detail: String| {
        Box::new(QuarantineRecord {
            reason,
            detail,
            source_file: source.to_string(),
            source_row: row,
            raw: raw.to_string(),
            customer_tenant_id: normalize_guid(&tenant_raw),
            subscription_id: None,
            meter_id: None,
            usage_date: None,
        })
    };
    for f in [
        "order_id",
        "customer_tenant_id",
        "sku_id",
        "term",
        "quantity",
        "billing_frequency",
        "scope",
        "purchase_date_utc",
    ] {
        if get(f).is_empty() {
            return Err(reject(
                ReasonCode::Malformed,
                format!("order {}: required field {f} is missing", get("order_id")),
            ));
        }
    }
    let order_id = get("order_id");
    if Dec10::parse(&get("quantity")).is_err() {
        return Err(reject(
            ReasonCode::BadNumber,
            format!(
                "order {order_id}: quantity '{}' is not a number",
                get("quantity")
            ),
        ));
    }
    let price = match get("original_unit_price_usd") {
        p if p.is_empty() => None,
        p => match Dec10::parse(&p) {
            Ok(v) => Some(v),
            Err(_) => {
                return Err(reject(
                    ReasonCode::BadNumber,
                    format!(
                        "order {order_id}: original_unit_price_usd '{p}' is not a decimal number"
                    ),
                ))
            }
        },
    };
    let Some(purchase) = parse_lenient_utc(&get("purchase_date_utc")) else {
        return Err(reject(
            ReasonCode::BadTimestamp,
            format!(
                "order {order_id}: purchase_date_utc '{}' is not a time",
                get("purchase_date_utc")
            ),
        ));
    };
    let Some(tenant) = normalize_guid(&tenant_raw) else {
        return Err(reject(
            ReasonCode::BadId,
            format!("order {order_id}: customer_tenant_id '{tenant_raw}' is not a GUID"),
        ));
    };
    let sub_raw = get("subscription_id");
    let subscription = if sub_raw.is_empty() {
        String::new()
    } else {
        match normalize_guid(&sub_raw) {
            Some(s) => s,
            None => {
                return Err(reject(
                    ReasonCode::BadId,
                    format!("order {order_id}: subscription_id '{sub_raw}' is not a GUID"),
                ))
            }
        }
    };
    let mut text: [String; 13] = std::array::from_fn(|i| get(ORDER_TEXT_FIELDS[i]));
    text[2] = tenant;
    text[3] = subscription;
    let purchase_utc = to_micros(purchase);
    let mut h = Sha256::new();
    for t in &text {
        h.update(t.as_bytes());
        h.update([0x1f]);
    }
    h.update(purchase_utc.to_le_bytes());
    h.update(price.map(|p| p.0).unwrap_or(i128::MIN).to_le_bytes());
    Ok(ReservationOrder {
        text,
        purchase_utc,
        original_unit_price_usd: price,
        content_hash: hex::encode(h.finalize()),
        source_file: source.to_string(),
        source_row: row,
        raw: raw.to_string(),
    })
}

/// An order, or why it was quarantined.
type Outcome = std::result::Result<ReservationOrder, Box<QuarantineRecord>>;

fn parse_orders_file(path: &Path) -> Result<Vec<Outcome>> {
    let source = path.display().to_string();
    let mut out = Vec::new();
    if logical_name(path).ends_with(".csv") {
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(open_reader(path)?);
        let headers: Vec<String> = rdr
            .headers()
            .map_err(|e| match csv_row_error(path, e) {
                Err(fatal) => fatal,
                Ok(e) => Error::InputFormat {
                    path: source.clone(),
                    expected: format!("a CSV header row: {e}"),
                },
            })?
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect();
        for (i, rec) in rdr.records().enumerate() {
            let line = i as i64 + 2;
            match rec {
                Ok(rec) => {
                    let fields = headers
                        .iter()
                        .cloned()
                        .zip(rec.iter().map(str::to_string))
                        .collect();
                    out.push(order_from_fields(
                        &fields,
                        &source,
                        line,
                        &rec.iter().collect::<Vec<_>>().join(","),
                    ));
                }
                Err(e) => {
                    let e = csv_row_error(path, e)?;
                    out.push(Err(Box::new(QuarantineRecord {
                        reason: ReasonCode::Malformed,
                        detail: format!("CSV row is not readable: {e}"),
                        source_file: source.clone(),
                        source_row: line,
                        raw: String::new(),
                        customer_tenant_id: None,
                        subscription_id: None,
                        meter_id: None,
                        usage_date: None,
                    })))
                }
            }
        }
        return Ok(out);
    }
    let bytes = read_all(path)?;
    let text = String::from_utf8_lossy(&bytes);
    let items: Vec<(i64, std::result::Result<Value, String>, String)> =
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(a)) => a
                .into_iter()
                .enumerate()
                .map(|(i, v)| (i as i64 + 1, Ok(v.clone()), v.to_string()))
                .collect(),
            Ok(Value::Object(o)) if o.get("items").map(Value::is_array).unwrap_or(false) => {
                match &o["items"] {
                    Value::Array(a) => a
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (i as i64 + 1, Ok(v.clone()), v.to_string()))
                        .collect(),
                    _ => Vec::new(),
                }
            }
            _ => text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| {
                    (
                        i as i64 + 1,
                        serde_json::from_str::<Value>(l).map_err(|e| e.to_string()),
                        l.to_string(),
                    )
                })
                .collect(),
        };
    for (row, v, raw) in items {
        let fields: Option<BTreeMap<String, String>> = match v {
            Ok(Value::Object(o)) => Some(
                o.iter()
                    .filter_map(|(k, v)| scalar_text(v).map(|t| (k.to_ascii_lowercase(), t)))
                    .collect(),
            ),
            _ => None,
        };
        out.push(match fields {
            Some(f) => order_from_fields(&f, &source, row, &raw),
            None => Err(Box::new(QuarantineRecord {
                reason: ReasonCode::Malformed,
                detail: "order is not a JSON object".into(),
                source_file: source.clone(),
                source_row: row,
                raw,
                customer_tenant_id: None,
                subscription_id: None,
                meter_id: None,
                usage_date: None,
            })),
        });
    }
    Ok(out)
}

/// Run `ingest reservations`.
pub fn ingest_orders(lake: &Lake, paths: &[PathBuf], run_id: &str) -> Result<Manifest> {
    let started = std::time::Instant::now();
    let (mut m, files) = super::begin_ingest("ingest reservations", paths, run_id)?;
    let ledger = Ledger::load(lake, "reservations")?;
    let (to_read, inputs) = plan_files(&files, &ledger)?;
    m.inputs = inputs;
    let mut orders = load_orders(lake)?;
    let mut known: HashSet<String> = orders.iter().map(|o| o.content_hash.clone()).collect();
    let mut quarantine = Vec::new();
    let (mut read, mut new, mut unchanged) = (0u64, 0u64, 0u64);
    for f in &to_read {
        let path = &f.path;
        for outcome in parse_orders_file(path)? {
            read += 1;
            match outcome {
                Ok(o) if known.contains(&o.content_hash) => unchanged += 1,
                Ok(o) => {
                    new += 1;
                    known.insert(o.content_hash.clone());
                    orders.push(o);
                }
                Err(q) => quarantine.push(*q),
            }
        }
    }
    record_counts(
        &mut m,
        IngestCounts {
            read,
            new,
            restated: 0,
            unchanged,
        },
        &quarantine,
    )?;

    if new > 0 {
        lake.put_parquet(
            ORDERS_FILE,
            order_schema(),
            &[orders_to_batch(&orders)?],
            vec![],
        )?;
        m.partitions.push(PartitionSummary {
            path: ORDERS_FILE.into(),
            rows: orders.len() as u64,
            billed_cost: None,
            action: "written".into(),
        });
    }
    finish_ingest(
        lake,
        m,
        ledger,
        "reservations",
        &quarantine,
        to_read,
        started,
    )
}
