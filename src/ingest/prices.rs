//! `ingest prices`: Azure Retail Prices API pages, Partner Center rate cards and CSV price
//! sheets (inputs.md §2), detected from their content, into `staged/prices/prices.parquet`.
//! A rate card's `includedQuantity` becomes a free band: its tier minimums shift up by it
//! (rating.md §3).

use crate::emit::manifest::{Manifest, PartitionSummary};
use crate::error::{Error, Result};
use crate::ingest::json_text::decimal_from_raw;
use crate::ingest::source::plan_files;
use crate::ingest::{finish_ingest, record_counts, IngestCounts};
use crate::model::decimal::Dec10;
use crate::model::ids::normalize_guid;
use crate::model::price::{
    price_schema, prices_to_batch, rejected_price_schema, rejected_to_batch, PriceRow,
    RejectedPrice,
};
use crate::model::reason::{QuarantineRecord, ReasonCode};
use crate::model::time::{date_to_days, parse_lenient_utc};
use crate::staged::ledger::Ledger;
use crate::store::Lake;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::staged::prices::{load_prices, load_rejected_prices, PRICES_FILE, REJECTED_FILE};
use crate::store::input::{csv_row_error, logical_name, open_reader, read_all};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawItem<'a> {
    currency_code: Option<String>,
    #[serde(borrow)]
    tier_minimum_units: Option<&'a RawValue>,
    #[serde(borrow)]
    retail_price: Option<&'a RawValue>,
    #[serde(borrow)]
    unit_price: Option<&'a RawValue>,
    arm_region_name: Option<String>,
    location: Option<String>,
    effective_start_date: Option<String>,
    meter_id: Option<String>,
    meter_name: Option<String>,
    product_id: Option<String>,
    sku_id: Option<String>,
    product_name: Option<String>,
    sku_name: Option<String>,
    service_name: Option<String>,
    service_family: Option<String>,
    unit_of_measure: Option<String>,
    #[serde(rename = "type")]
    price_type: Option<String>,
    is_primary_meter_region: Option<Value>,
    reservation_term: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMeter<'a> {
    id: Option<String>,
    name: Option<String>,
    #[serde(borrow)]
    rates: Option<BTreeMap<String, &'a RawValue>>,
    category: Option<String>,
    subcategory: Option<String>,
    region: Option<String>,
    unit: Option<String>,
    #[serde(borrow)]
    included_quantity: Option<&'a RawValue>,
    effective_date: Option<String>,
}

#[derive(Deserialize)]
struct Top<'a> {
    #[serde(rename = "Items", borrow)]
    items: Option<Vec<&'a RawValue>>,
    #[serde(borrow)]
    meters: Option<Vec<&'a RawValue>>,
    currency: Option<String>,
}

struct Ctx<'a> {
    source: &'a str,
    out: &'a mut Vec<PriceRow>,
    quarantine: &'a mut Vec<QuarantineRecord>,
    rejected: &'a mut Vec<RejectedPrice>,
    read: u64,
}

impl Ctx<'_> {
    /// The rows quarantined since `before` poison `version` (when it could be read).
    fn poison(&mut self, before: usize, version: Option<(String, i32)>) {
        let Some((meter_id, effective_start)) = version else {
            return;
        };
        for q in &self.quarantine[before..] {
            self.rejected.push(RejectedPrice {
                meter_id: meter_id.clone(),
                effective_start,
                source_file: q.source_file.clone(),
                source_row: q.source_row,
                reason: q.reason.as_str().to_string(),
                detail: q.detail.clone(),
            });
        }
    }

    fn reject(
        &mut self,
        reason: ReasonCode,
        detail: String,
        row: i64,
        raw: &str,
        meter: Option<&str>,
    ) {
        self.quarantine.push(QuarantineRecord {
            reason,
            detail,
            source_file: self.source.to_string(),
            source_row: row,
            raw: raw.to_string(),
            customer_tenant_id: None,
            subscription_id: None,
            meter_id: meter.map(|m| m.to_ascii_lowercase()),
            usage_date: None,
        });
    }
}

fn bool_of(v: &Option<Value>) -> Option<bool> {
    match v {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// The price version `(meter, effective date)` a rejected row belonged to, when both can be
/// read and the row would rate usage (USD Consumption, or type/currency unreadable): that
/// version is incomplete and must not rate (inputs.md §2).
fn version_of(
    meter: Option<&str>,
    effective: Option<&str>,
    price_type: Option<&str>,
    currency: Option<&str>,
) -> Option<(String, i32)> {
    let may_rate =
        |v: Option<&str>, want: &str| v.is_none_or(|v| v.trim().eq_ignore_ascii_case(want));
    if !may_rate(price_type, "Consumption") || !may_rate(currency, "USD") {
        return None;
    }
    let meter = normalize_guid(meter?)?;
    let eff = parse_lenient_utc(effective?)?;
    Some((meter, date_to_days(eff.date_naive())))
}

/// Validate one Retail Prices item (also used for CSV rows rebuilt as items). A rejected
/// item whose version can be read poisons that version.
fn item_row(ctx: &mut Ctx, text: &str, row: i64) {
    let before = ctx.quarantine.len();
    let version = serde_json::from_str::<RawItem>(text).ok().and_then(|it| {
        version_of(
            it.meter_id.as_deref(),
            it.effective_start_date.as_deref(),
            it.price_type.as_deref(),
            it.currency_code.as_deref(),
        )
    });
    item_row_checked(ctx, text, row);
    ctx.poison(before, version);
}

fn item_row_checked(ctx: &mut Ctx, text: &str, row: i64) {
    ctx.read += 1;
    let it: RawItem = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return ctx.reject(
                ReasonCode::Malformed,
                format!("price item is not valid: {e}"),
                row,
                text,
                None,
            )
        }
    };
    let meter = it.meter_id.as_deref();
    let required = [
        ("meterId", it.meter_id.is_none()),
        ("unitPrice", it.unit_price.is_none()),
        ("effectiveStartDate", it.effective_start_date.is_none()),
        ("unitOfMeasure", it.unit_of_measure.is_none()),
        ("currencyCode", it.currency_code.is_none()),
        ("type", it.price_type.is_none()),
    ];
    if let Some((f, _)) = required.iter().find(|(_, m)| *m) {
        return ctx.reject(
            ReasonCode::Malformed,
            format!("required field {f} is missing"),
            row,
            text,
            meter,
        );
    }
    let num = |name: &str, v: Option<&RawValue>| -> std::result::Result<Option<Dec10>, String> {
        match v {
            None => Ok(None),
            Some(r) if r.get() == "null" => Ok(None),
            Some(r) => decimal_from_raw(r)
                .map(Some)
                .map_err(|_| format!("{name} {} is not a decimal number", r.get())),
        }
    };
    let parsed = (|| {
        Ok::<_, String>((
            num("unitPrice", it.unit_price)?,
            num("tierMinimumUnits", it.tier_minimum_units)?,
            num("retailPrice", it.retail_price)?,
        ))
    })();
    let (unit_price, tier_min, retail) = match parsed {
        Ok((Some(u), t, r)) => (u, t.unwrap_or(Dec10::ZERO), r),
        Ok((None, _, _)) => {
            return ctx.reject(
                ReasonCode::Malformed,
                "required field unitPrice is null".into(),
                row,
                text,
                meter,
            )
        }
        Err(d) => return ctx.reject(ReasonCode::BadNumber, d, row, text, meter),
    };
    // A negative price or tier would bill credits no price sheet means to give.
    for (name, v) in [("unitPrice", unit_price), ("tierMinimumUnits", tier_min)] {
        if v.0 < 0 {
            return ctx.reject(
                ReasonCode::BadNumber,
                format!(
                    "{name} {} of row {row} of {} is negative; prices and tier minimums are never below zero",
                    v.to_plain(),
                    ctx.source
                ),
                row,
                text,
                meter,
            );
        }
    }
    let eff_text = it.effective_start_date.clone().unwrap_or_default();
    let Some(eff) = parse_lenient_utc(&eff_text) else {
        return ctx.reject(
            ReasonCode::BadTimestamp,
            format!("effectiveStartDate '{eff_text}' is not a date"),
            row,
            text,
            meter,
        );
    };
    let Some(meter_id) = normalize_guid(meter.unwrap_or_default()) else {
        return ctx.reject(
            ReasonCode::BadId,
            format!("meterId '{}' is not a GUID", meter.unwrap_or_default()),
            row,
            text,
            meter,
        );
    };
    ctx.out.push(PriceRow {
        meter_id,
        meter_name: it.meter_name,
        product_id: it.product_id,
        product_name: it.product_name.clone(),
        sku_id: it.sku_id.unwrap_or_default(),
        sku_name: it.sku_name,
        service_name: it.service_name.clone(),
        service_family: it.service_family,
        meter_category: it.service_name,
        meter_subcategory: it.product_name,
        arm_region_name: it.arm_region_name.unwrap_or_default(),
        location: it.location,
        unit_of_measure: it.unit_of_measure.unwrap_or_default(),
        price_type: it.price_type.unwrap_or_default(),
        currency_code: it.currency_code.unwrap_or_default().to_ascii_uppercase(),
        reservation_term: it.reservation_term.unwrap_or_default(),
        tier_minimum: tier_min,
        unit_price,
        retail_price: retail,
        effective_start: date_to_days(eff.date_naive()),
        is_primary_meter_region: bool_of(&it.is_primary_meter_region),
        source_file: ctx.source.to_string(),
        source_row: row,
    });
}

/// Validate one rate-card meter into one row per tier; a rejected meter whose version can
/// be read poisons that version.
fn meter_rows(ctx: &mut Ctx, text: &str, row: i64, currency: &str) {
    let before = ctx.quarantine.len();
    let version = serde_json::from_str::<RawMeter>(text).ok().and_then(|m| {
        version_of(
            m.id.as_deref(),
            m.effective_date.as_deref(),
            Some("Consumption"),
            Some(currency),
        )
    });
    meter_rows_checked(ctx, text, row, currency);
    ctx.poison(before, version);
}

fn meter_rows_checked(ctx: &mut Ctx, text: &str, row: i64, currency: &str) {
    ctx.read += 1;
    let m: RawMeter = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return ctx.reject(
                ReasonCode::Malformed,
                format!("rate card meter is not valid: {e}"),
                row,
                text,
                None,
            )
        }
    };
    let meter = m.id.as_deref();
    let required = [
        ("id", m.id.is_none()),
        (
            "rates",
            m.rates.as_ref().map(|r| r.is_empty()).unwrap_or(true),
        ),
        ("unit", m.unit.is_none()),
        ("effectiveDate", m.effective_date.is_none()),
    ];
    if let Some((f, _)) = required.iter().find(|(_, miss)| *miss) {
        return ctx.reject(
            ReasonCode::Malformed,
            format!("required field {f} is missing or empty"),
            row,
            text,
            meter,
        );
    }
    let included = match m.included_quantity.map(decimal_from_raw) {
        None => Dec10::ZERO,
        Some(Ok(v)) if v.0 < 0 => {
            return ctx.reject(
                ReasonCode::BadNumber,
                format!(
                    "includedQuantity {} of meter {row} of {} is negative",
                    v.to_plain(),
                    ctx.source
                ),
                row,
                text,
                meter,
            )
        }
        Some(Ok(v)) => v,
        Some(Err(_)) => {
            return ctx.reject(
                ReasonCode::BadNumber,
                "includedQuantity is not a decimal number".into(),
                row,
                text,
                meter,
            )
        }
    };
    let mut tiers = Vec::new();
    for (k, v) in m.rates.iter().flatten() {
        match (Dec10::parse(k), decimal_from_raw(v)) {
            (Ok(min), Ok(price)) if min.0 < 0 || price.0 < 0 => {
                return ctx.reject(
                    ReasonCode::BadNumber,
                    format!(
                        "rates entry \"{k}\": {} of meter {row} of {} is negative; prices and tier minimums are never below zero",
                        v.get(),
                        ctx.source
                    ),
                    row,
                    text,
                    meter,
                )
            }
            (Ok(min), Ok(price)) => tiers.push((min, price)),
            _ => {
                return ctx.reject(
                    ReasonCode::BadNumber,
                    format!(
                        "rates entry \"{k}\": {} is not a decimal tier and price",
                        v.get()
                    ),
                    row,
                    text,
                    meter,
                )
            }
        }
    }
    let eff_text = m.effective_date.clone().unwrap_or_default();
    let Some(eff) = parse_lenient_utc(&eff_text) else {
        return ctx.reject(
            ReasonCode::BadTimestamp,
            format!("effectiveDate '{eff_text}' is not a date"),
            row,
            text,
            meter,
        );
    };
    let Some(meter_id) = normalize_guid(meter.unwrap_or_default()) else {
        return ctx.reject(
            ReasonCode::BadId,
            format!("meter id '{}' is not a GUID", meter.unwrap_or_default()),
            row,
            text,
            meter,
        );
    };
    for (min, price) in tiers {
        let Some(shifted) = min.checked_add(included) else {
            return ctx.reject(
                ReasonCode::BadNumber,
                "tier minimum plus includedQuantity overflows".into(),
                row,
                text,
                meter,
            );
        };
        ctx.out.push(PriceRow {
            meter_id: meter_id.clone(),
            meter_name: m.name.clone(),
            product_id: None,
            product_name: None,
            sku_id: String::new(),
            sku_name: None,
            service_name: m.category.clone(),
            service_family: None,
            meter_category: m.category.clone(),
            meter_subcategory: m.subcategory.clone(),
            arm_region_name: m.region.clone().unwrap_or_default(),
            location: m.region.clone(),
            unit_of_measure: m.unit.clone().unwrap_or_default(),
            price_type: "Consumption".into(),
            currency_code: currency.to_ascii_uppercase(),
            reservation_term: String::new(),
            tier_minimum: shifted,
            unit_price: price,
            retail_price: Some(price),
            effective_start: date_to_days(eff.date_naive()),
            is_primary_meter_region: None,
            source_file: ctx.source.to_string(),
            source_row: row,
        });
    }
}

/// Parse one price file of any supported format.
fn parse_price_file(path: &Path, ctx: &mut Ctx) -> Result<()> {
    let source = ctx.source.to_string();
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
                    expected: format!("a CSV price sheet header: {e}"),
                },
            })?
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
            .collect();
        for need in [
            "meterId",
            "unitPrice",
            "effectiveStartDate",
            "unitOfMeasure",
            "currencyCode",
            "type",
        ] {
            if !headers.iter().any(|h| h.eq_ignore_ascii_case(need)) {
                return Err(Error::InputFormat {
                    path: source,
                    expected: format!("a CSV price sheet whose header has the Retail Prices names (missing column {need})"),
                });
            }
        }
        for (i, rec) in rdr.records().enumerate() {
            let line = i as i64 + 2;
            match rec {
                Ok(rec) => {
                    let mut obj = serde_json::Map::new();
                    for (h, v) in headers.iter().zip(rec.iter()) {
                        if !v.is_empty() {
                            let camel = canonical_item_name(h);
                            obj.insert(camel, Value::String(v.to_string()));
                        }
                    }
                    let raw = rec.iter().collect::<Vec<_>>().join(",");
                    let before = ctx.quarantine.len();
                    item_row(ctx, &Value::Object(obj).to_string(), line);
                    for q in &mut ctx.quarantine[before..] {
                        q.raw = raw.clone();
                    }
                }
                Err(e) => {
                    let e = csv_row_error(path, e)?;
                    ctx.read += 1;
                    ctx.reject(
                        ReasonCode::Malformed,
                        format!("CSV row is not readable: {e}"),
                        line,
                        "",
                        None,
                    );
                }
            }
        }
        return Ok(());
    }
    let bytes = read_all(path)?;
    let text = String::from_utf8_lossy(&bytes);
    let top: Top = serde_json::from_str(&text).map_err(|e| Error::InputFormat {
        path: source.clone(),
        expected: format!("a Retail Prices page, a Partner Center rate card or a CSV price sheet; JSON error: {e}"),
    })?;
    if let Some(items) = top.items {
        for (i, item) in items.iter().enumerate() {
            item_row(ctx, item.get(), i as i64 + 1);
        }
    } else if let Some(meters) = top.meters {
        let currency = top.currency.unwrap_or_else(|| "USD".into());
        for (i, meter) in meters.iter().enumerate() {
            meter_rows(ctx, meter.get(), i as i64 + 1, &currency);
        }
    } else {
        return Err(Error::InputFormat {
            path: source,
            expected: "a Retail Prices page (with \"Items\") or a Partner Center rate card (with \"meters\")".into(),
        });
    }
    Ok(())
}

/// CSV headers in any case map to the Retail Prices item names.
fn canonical_item_name(h: &str) -> String {
    const NAMES: [&str; 19] = [
        "currencyCode",
        "tierMinimumUnits",
        "retailPrice",
        "unitPrice",
        "armRegionName",
        "location",
        "effectiveStartDate",
        "meterId",
        "meterName",
        "productId",
        "skuId",
        "productName",
        "skuName",
        "serviceName",
        "serviceFamily",
        "unitOfMeasure",
        "type",
        "isPrimaryMeterRegion",
        "reservationTerm",
    ];
    NAMES
        .iter()
        .find(|n| n.eq_ignore_ascii_case(h))
        .map(|n| n.to_string())
        .unwrap_or_else(|| h.to_string())
}

/// Run `ingest prices`.
pub fn ingest_prices(lake: &Lake, paths: &[PathBuf], run_id: &str) -> Result<Manifest> {
    let started = std::time::Instant::now();
    let (mut m, files) = super::begin_ingest("ingest prices", paths, run_id)?;
    let ledger = Ledger::load(lake, "prices")?;
    let (to_read, inputs) = plan_files(&files, &ledger)?;
    m.inputs = inputs;
    let mut incoming = Vec::new();
    let mut quarantine = Vec::new();
    let mut rejected = Vec::new();
    let mut read = 0;
    for f in &to_read {
        let path = &f.path;
        let source = path.display().to_string();
        let mut ctx = Ctx {
            source: &source,
            out: &mut incoming,
            quarantine: &mut quarantine,
            rejected: &mut rejected,
            read: 0,
        };
        parse_price_file(path, &mut ctx)?;
        read += ctx.read;
    }
    // Rate-card meters yield several rows from one record: count records, classify rows.
    let mut rows: Vec<Option<PriceRow>> = load_prices(lake)?.into_iter().map(Some).collect();
    let mut index: HashMap<_, Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        if let Some(r) = r {
            index.entry(r.key()).or_default().push(i);
        }
    }
    // Rows of one key in this run: an identical price again is a duplicate (first kept);
    // another price is kept beside it, for rating to judge (rating.md §3, inputs.md §2).
    let mut groups: Vec<Vec<PriceRow>> = Vec::new();
    let mut group_of: HashMap<_, usize> = HashMap::new();
    let mut record_outcome: BTreeMap<(String, i64), &'static str> = BTreeMap::new();
    for r in incoming {
        let rec_key = (r.source_file.clone(), r.source_row);
        let g = *group_of.entry(r.key()).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        if groups[g].iter().any(|o| same_price(o, &r)) {
            if record_outcome.insert(rec_key, "dup").is_none() {
                quarantine.push(QuarantineRecord {
                    reason: ReasonCode::DuplicateRecord,
                    detail: format!(
                        "price for meter {} sku '{}' effective {} tier {} appeared earlier in this run; the first is kept",
                        r.meter_id,
                        r.sku_id,
                        crate::model::time::days_to_date(r.effective_start),
                        r.tier_minimum.to_plain()
                    ),
                    source_file: r.source_file.clone(),
                    source_row: r.source_row,
                    raw: String::new(),
                    customer_tenant_id: None,
                    subscription_id: None,
                    meter_id: Some(r.meter_id.clone()),
                    usage_date: None,
                });
            }
            continue;
        }
        groups[g].push(r);
    }
    for group in groups {
        let Some(first) = group.first() else {
            continue;
        };
        let old = index.get(&first.key()).cloned().unwrap_or_default();
        let old_rows: Vec<&PriceRow> = old.iter().filter_map(|&i| rows[i].as_ref()).collect();
        let outcome = if old_rows.is_empty() {
            "new"
        } else if old_rows.len() == group.len()
            && group
                .iter()
                .all(|n| old_rows.iter().any(|o| same_price(o, n)))
        {
            "unchanged"
        } else {
            "restated"
        };
        let rec_keys: Vec<(String, i64)> = group
            .iter()
            .map(|r| (r.source_file.clone(), r.source_row))
            .collect();
        if outcome != "unchanged" {
            // The run's rows of this key replace the staged ones: the first in place (so a
            // plain restatement keeps its position), the others appended or removed.
            let mut old = old.into_iter();
            let mut kept = Vec::new();
            for r in group {
                match old.next() {
                    Some(i) => {
                        rows[i] = Some(r);
                        kept.push(i);
                    }
                    None => {
                        kept.push(rows.len());
                        rows.push(Some(r));
                    }
                }
            }
            for i in old {
                rows[i] = None;
            }
            if let Some(k) = rows[kept[0]].as_ref().map(PriceRow::key) {
                index.insert(k, kept);
            }
        }
        // A record (rate-card meter) counts once: restated wins over new over unchanged.
        for rec_key in rec_keys {
            let e = record_outcome.entry(rec_key).or_insert(outcome);
            if *e != "dup" && (outcome == "restated" || (outcome == "new" && *e == "unchanged")) {
                *e = outcome;
            }
        }
    }
    let mut rows: Vec<PriceRow> = rows.into_iter().flatten().collect();
    let (mut new, mut restated, mut unchanged) = (0u64, 0u64, 0u64);
    for o in record_outcome.values() {
        match *o {
            "new" => new += 1,
            "restated" => restated += 1,
            "unchanged" => unchanged += 1,
            _ => {}
        }
    }
    record_counts(
        &mut m,
        IngestCounts {
            read,
            new,
            restated,
            unchanged,
        },
        &quarantine,
    )?;

    if new + restated > 0 {
        rows.sort_by(|a, b| {
            (
                &a.meter_id,
                a.effective_start,
                a.tier_minimum,
                &a.price_type,
                &a.currency_code,
                &a.sku_id,
                &a.arm_region_name,
            )
                .cmp(&(
                    &b.meter_id,
                    b.effective_start,
                    b.tier_minimum,
                    &b.price_type,
                    &b.currency_code,
                    &b.sku_id,
                    &b.arm_region_name,
                ))
        });
        lake.put_parquet(
            PRICES_FILE,
            price_schema(),
            &[prices_to_batch(&rows)?],
            vec![],
        )?;
        m.partitions.push(PartitionSummary {
            path: PRICES_FILE.into(),
            rows: rows.len() as u64,
            billed_cost: None,
            action: "written".into(),
        });
    }
    save_rejected(lake, &mut m, &to_read, rejected)?;
    finish_ingest(lake, m, ledger, "prices", &quarantine, to_read, started)
}

/// Two staged rows of one key that agree: the same price in the same unit.
fn same_price(a: &PriceRow, b: &PriceRow) -> bool {
    a.unit_price == b.unit_price && a.unit_of_measure == b.unit_of_measure
}

/// Update the staged rejected rows: the files this run read replace their earlier entries
/// (a corrected file lifts its poison), the others keep theirs. Written only when changed,
/// so a run without rejections leaves the table (and rating fingerprints) as they were.
fn save_rejected(
    lake: &Lake,
    m: &mut Manifest,
    read: &[crate::staged::ledger::FileToRead],
    mut new: Vec<RejectedPrice>,
) -> Result<()> {
    let old = load_rejected_prices(lake)?;
    let reread: HashSet<String> = read.iter().map(|f| f.path.display().to_string()).collect();
    new.extend(
        old.iter()
            .filter(|r| !reread.contains(&r.source_file))
            .cloned(),
    );
    new.sort();
    new.dedup();
    if new == old {
        return Ok(());
    }
    lake.put_parquet(
        REJECTED_FILE,
        rejected_price_schema(),
        &[rejected_to_batch(&new)?],
        vec![],
    )?;
    m.partitions.push(PartitionSummary {
        path: REJECTED_FILE.into(),
        rows: new.len() as u64,
        billed_cost: None,
        action: "written".into(),
    });
    Ok(())
}
