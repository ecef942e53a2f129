//! `ingest reservations`: reservation orders from CSV (header = field names) or JSON (an
//! array, a `{"items": [...]}` page, or NDJSON) into `staged/reservations/orders.parquet`.
//! An identical order again is a no-op; the same `order_id` with other content is staged
//! and rejected by `reserve` as `DUPLICATE_ORDER`, so the conflict stays visible every run.

use crate::emit::manifest::Manifest;
use crate::error::Result;
use crate::ingest::json_text::scalar_text;
use crate::ingest::{finish_ingest, record_counts, IngestCounts, RecordProblem};
use crate::model::decimal::Dec10;
use crate::model::ids::normalize_guid;
use crate::model::order::{order_schema, orders_to_batch, ReservationOrder, ORDER_TEXT_FIELDS};
use crate::model::reason::{QuarantineRecord, ReasonCode};
use crate::model::time::{parse_lenient_utc, to_micros};
use crate::store::Lake;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::staged::orders::{load_orders, ORDERS_FILE};
use crate::store::input::{csv_header, header_name, logical_name, open_csv, read_all};

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
    match check_order(&get, &tenant_raw) {
        Ok(checked) => Ok(order_record(&get, checked, source, row, raw)),
        Err(p) => Err(Box::new(QuarantineRecord {
            customer_tenant_id: normalize_guid(&tenant_raw),
            ..QuarantineRecord::of_row(p.reason, p.detail, source, row, raw.to_string())
        })),
    }
}

/// What an order's checks read from it.
struct CheckedOrder {
    original_unit_price_usd: Option<Dec10>,
    purchase: chrono::DateTime<chrono::Utc>,
    ids: OrderIds,
}

/// An order's tenant and (optional, else empty) subscription, normalised GUIDs.
struct OrderIds {
    tenant: String,
    subscription: String,
}

fn problem<T>(reason: ReasonCode, detail: String) -> std::result::Result<T, RecordProblem> {
    Err(RecordProblem { reason, detail })
}

/// Required fields, quantity, price, purchase time and IDs, in that order.
fn check_order(
    get: &impl Fn(&str) -> String,
    tenant_raw: &str,
) -> std::result::Result<CheckedOrder, RecordProblem> {
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
            return problem(
                ReasonCode::Malformed,
                format!("order {}: required field {f} is missing", get("order_id")),
            );
        }
    }
    let order_id = get("order_id");
    if Dec10::parse(&get("quantity")).is_err() {
        return problem(
            ReasonCode::BadNumber,
            format!(
                "order {order_id}: quantity '{}' is not a number",
                get("quantity")
            ),
        );
    }
    let price = match get("original_unit_price_usd") {
        p if p.is_empty() => None,
        p => match Dec10::parse(&p) {
            Ok(v) => Some(v),
            Err(_) => {
                return problem(
                    ReasonCode::BadNumber,
                    format!(
                        "order {order_id}: original_unit_price_usd '{p}' is not a decimal number"
                    ),
                )
            }
        },
    };
    let Some(purchase) = parse_lenient_utc(&get("purchase_date_utc")) else {
        return problem(
            ReasonCode::BadTimestamp,
            format!(
                "order {order_id}: purchase_date_utc '{}' is not a time",
                get("purchase_date_utc")
            ),
        );
    };
    Ok(CheckedOrder {
        original_unit_price_usd: price,
        purchase,
        ids: order_ids(get, &order_id, tenant_raw)?,
    })
}

fn order_ids(
    get: &impl Fn(&str) -> String,
    order_id: &str,
    tenant_raw: &str,
) -> std::result::Result<OrderIds, RecordProblem> {
    let Some(tenant) = normalize_guid(tenant_raw) else {
        return problem(
            ReasonCode::BadId,
            format!("order {order_id}: customer_tenant_id '{tenant_raw}' is not a GUID"),
        );
    };
    let sub_raw = get("subscription_id");
    let subscription = if sub_raw.is_empty() {
        String::new()
    } else {
        match normalize_guid(&sub_raw) {
            Some(s) => s,
            None => {
                return problem(
                    ReasonCode::BadId,
                    format!("order {order_id}: subscription_id '{sub_raw}' is not a GUID"),
                )
            }
        }
    };
    Ok(OrderIds {
        tenant,
        subscription,
    })
}

/// The staged order of a checked one, with its content hash.
fn order_record(
    get: &impl Fn(&str) -> String,
    c: CheckedOrder,
    source: &str,
    row: i64,
    raw: &str,
) -> ReservationOrder {
    let price = c.original_unit_price_usd;
    let mut text: [String; 13] = std::array::from_fn(|i| get(ORDER_TEXT_FIELDS[i]));
    text[2] = c.ids.tenant;
    text[3] = c.ids.subscription;
    let purchase_utc = to_micros(c.purchase);
    let mut h = Sha256::new();
    for t in &text {
        h.update(t.as_bytes());
        h.update([0x1f]);
    }
    h.update(purchase_utc.to_le_bytes());
    h.update(price.map(|p| p.0).unwrap_or(i128::MIN).to_le_bytes());
    ReservationOrder {
        text,
        purchase_utc,
        original_unit_price_usd: price,
        content_hash: hex::encode(h.finalize()),
        source_file: source.to_string(),
        source_row: row,
        raw: raw.to_string(),
    }
}

/// An order, or why it was quarantined.
type Outcome = std::result::Result<ReservationOrder, Box<QuarantineRecord>>;

fn parse_orders_file(path: &Path) -> Result<Vec<Outcome>> {
    let source = path.display().to_string();
    if logical_name(path).ends_with(".csv") {
        return parse_orders_csv(path, &source);
    }
    let bytes = read_all(path)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut out = Vec::new();
    for item in json_order_items(&text) {
        let fields: Option<BTreeMap<String, String>> = match item.value {
            Ok(Value::Object(o)) => Some(
                o.iter()
                    .filter_map(|(k, v)| scalar_text(v).map(|t| (k.to_ascii_lowercase(), t)))
                    .collect(),
            ),
            _ => None,
        };
        out.push(match fields {
            Some(f) => order_from_fields(&f, &source, item.row, &item.raw),
            None => Err(Box::new(QuarantineRecord::of_row(
                ReasonCode::Malformed,
                "order is not a JSON object".into(),
                &source,
                item.row,
                item.raw,
            ))),
        });
    }
    Ok(out)
}

/// A CSV file of orders, its header the field names in any case.
fn parse_orders_csv(path: &Path, source: &str) -> Result<Vec<Outcome>> {
    let mut out = Vec::new();
    let mut rdr = open_csv(path)?;
    let headers: Vec<String> = csv_header(path, &mut rdr, "a CSV header row")?
        .iter()
        .map(|h| header_name(h).to_ascii_lowercase())
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
                    source,
                    line,
                    &rec.iter().collect::<Vec<_>>().join(","),
                ));
            }
            Err(e) => out.push(Err(Box::new(super::unreadable_csv_row(path, e, line)?))),
        }
    }
    Ok(out)
}

/// One order of a JSON file: its 1-based item or line number, its value (or why the line
/// is not JSON) and its text.
struct JsonOrderItem {
    row: i64,
    value: std::result::Result<Value, String>,
    raw: String,
}

/// The items of a JSON array or `{"items": [...]}` page, else the non-blank lines of NDJSON.
fn json_order_items(text: &str) -> Vec<JsonOrderItem> {
    let item = |(i, v): (usize, &Value)| JsonOrderItem {
        row: i as i64 + 1,
        value: Ok(v.clone()),
        raw: v.to_string(),
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(a)) => a.iter().enumerate().map(item).collect(),
        Ok(Value::Object(o)) if o.get("items").map(Value::is_array).unwrap_or(false) => {
            match &o["items"] {
                Value::Array(a) => a.iter().enumerate().map(item).collect(),
                _ => Vec::new(),
            }
        }
        _ => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| JsonOrderItem {
                row: i as i64 + 1,
                value: serde_json::from_str::<Value>(l).map_err(|e| e.to_string()),
                raw: l.to_string(),
            })
            .collect(),
    }
}

/// Run `ingest reservations`.
pub fn ingest_orders(lake: &Lake, paths: &[PathBuf], run_id: &str) -> Result<Manifest> {
    let started = std::time::Instant::now();
    let (mut m, files) = super::begin_ingest("ingest reservations", paths, run_id)?;
    let planned = super::plan_ingest(lake, &mut m, &files, "reservations")?;
    let mut orders = load_orders(lake)?;
    let mut known: HashSet<String> = orders.iter().map(|o| o.content_hash.clone()).collect();
    let mut quarantine = Vec::new();
    let (mut read, mut new, mut unchanged) = (0u64, 0u64, 0u64);
    for f in &planned.to_read {
        for outcome in parse_orders_file(&f.path)? {
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
        super::record_written(&mut m, ORDERS_FILE, orders.len());
    }
    finish_ingest(
        lake,
        m,
        planned.ledger,
        "reservations",
        &quarantine,
        planned.to_read,
        started,
    )
}
