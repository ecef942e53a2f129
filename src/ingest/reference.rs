//! `ingest reference` and `tenants add|list|show|remove` (inputs.md §3). Files are recognised
//! by name; a new version of a table replaces it, except FX rates, which merge by
//! (currency, month) so that monthly FX files can arrive one at a time. The tenant registry
//! is validated as a whole and every problem is reported at once (exit 2).

use crate::emit::manifest::Manifest;
use crate::error::{Error, Result};
use crate::ingest::{finish_ingest, record_counts, IngestCounts, RecordProblem};
use crate::model::decimal::Dec10;
use crate::model::ids::{check_safe_id, normalize_guid, shown_id};
use crate::model::reason::{QuarantineRecord, ReasonCode};
use crate::model::reference::*;
use crate::model::time::{month_of, parse_lenient_utc, parse_month};
use crate::staged::reference::{load_table, save_table};
use crate::store::input::{csv_header, logical_name, open_csv, open_reader};
use crate::store::Lake;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which reference table a file holds, from its name.
pub fn table_for(path: &Path) -> Option<&'static RefTableDef> {
    let name = logical_name(path);
    if is_subscription_list(path) {
        return Some(&SUBSCRIPTIONS);
    }
    let stem = name.strip_suffix(".csv")?;
    if stem.starts_with("fx_rates") || stem.starts_with("fxrates") || stem.starts_with("fx-rates") {
        return Some(&FX_RATES);
    }
    ALL_TABLES.iter().copied().find(|t| t.name == stem)
}

/// Microsoft's FX header names mapped to ours.
fn column_alias(table: &RefTableDef, header: &str) -> String {
    let h = header
        .trim()
        .trim_start_matches('\u{feff}')
        .trim_matches('"')
        .to_ascii_lowercase();
    if table.name == "fx_rates" {
        return match h.as_str() {
            "currencycode" => "currency_code".into(),
            "usdperunit" => "usd_per_unit".into(),
            other => other.into(),
        };
    }
    h
}

/// A Partner Center subscription list as `pull` saves it: `subscriptions/<tenant>.json`.
fn is_subscription_list(path: &Path) -> bool {
    logical_name(path).ends_with(".json")
        && path
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|d| d.eq_ignore_ascii_case("subscriptions"))
}

/// Rows of a Partner Center subscription list (`{"items": [{"id", "entitlementId",
/// "friendlyName"}, ...]}`): the friendly name under the Azure subscription ID (an Azure
/// plan's `entitlementId`) and under the CSP subscription `id` when they differ. Items
/// without a GUID or a name are quarantined.
fn parse_subscription_list(
    path: &Path,
    quarantine: &mut Vec<QuarantineRecord>,
) -> Result<(RefRows, u64)> {
    let source = path.display().to_string();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut open_reader(path)?, &mut text)
        .map_err(|e| Error::io(path, e))?;
    let doc: serde_json::Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| Error::InputFormat {
            path: source.clone(),
            expected: format!("a Partner Center subscription list (JSON with \"items\"): {e}"),
        })?;
    let items = doc
        .get("items")
        .and_then(|v| v.as_array())
        .ok_or_else(|| Error::InputFormat {
            path: source.clone(),
            expected: "a Partner Center subscription list (JSON with an \"items\" array)".into(),
        })?;
    let mut rows = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let get = |k: &str| item.get(k).and_then(|v| v.as_str()).map(str::trim);
        let name = get("friendlyName").filter(|s| !s.is_empty());
        let ids: Vec<String> = [get("entitlementId"), get("id")]
            .into_iter()
            .flatten()
            .filter_map(normalize_guid)
            .collect();
        match (name, ids.is_empty()) {
            (Some(name), false) => {
                let mut seen = Vec::new();
                for id in ids {
                    if !seen.contains(&id) {
                        rows.push(vec![Cell::Str(id.clone()), Cell::Str(name.to_string())]);
                        seen.push(id);
                    }
                }
            }
            _ => quarantine.push(QuarantineRecord::of_row(
                ReasonCode::Malformed,
                "subscription item has no GUID id/entitlementId or no friendlyName".into(),
                &source,
                i as i64 + 1,
                item.to_string(),
            )),
        }
    }
    // A record is a (subscription ID, name) row, so an item listed under two IDs counts
    // twice; a rejected item counts once.
    let rejected = quarantine
        .iter()
        .filter(|q| q.source_file == source)
        .count();
    let read = rows.len() + rejected;
    Ok((rows, read as u64))
}

fn guid_columns(table: &RefTableDef) -> &'static [&'static str] {
    match table.name {
        "tenants" => &["customer_tenant_id"],
        "transfers" | "subscriptions" => &["subscription_id"],
        _ => &[],
    }
}

/// Parse one reference CSV into typed rows, quarantining bad ones. An ID of ours that is
/// not safe as a directory name goes to `id_problems` (the run stops with exit 2).
fn parse_table(
    path: &Path,
    table: &RefTableDef,
    quarantine: &mut Vec<QuarantineRecord>,
    id_problems: &mut Vec<String>,
) -> Result<(RefRows, u64)> {
    let source = path.display().to_string();
    let mut rdr = open_csv(path)?;
    let positions = column_positions(path, table, &mut rdr)?;
    let mut rows = Vec::new();
    let mut read = 0;
    for (i, rec) in rdr.records().enumerate() {
        read += 1;
        let line = i as i64 + 2;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                quarantine.push(super::unreadable_csv_row(path, e, line)?);
                continue;
            }
        };
        let at = RowAt {
            table,
            source: &source,
            line,
        };
        let typed = typed_row(&at, &rec, &positions, id_problems);
        match typed.problem {
            Some(p) => quarantine.push(QuarantineRecord::of_row(
                p.reason,
                p.detail,
                &source,
                line,
                rec.iter().collect::<Vec<_>>().join(","),
            )),
            None => rows.push(typed.cells),
        }
    }
    Ok((rows, read))
}

/// Where each of the table's columns is in the file's header (any case, Microsoft's FX
/// names too); a required column that is absent stops the file.
fn column_positions<R: std::io::Read>(
    path: &Path,
    table: &RefTableDef,
    rdr: &mut csv::Reader<R>,
) -> Result<Vec<Option<usize>>> {
    let headers: Vec<String> = csv_header(path, rdr, "a CSV header row")?
        .iter()
        .map(|h| column_alias(table, h))
        .collect();
    let mut missing = Vec::new();
    let positions: Vec<Option<usize>> = table
        .columns
        .iter()
        .map(|(name, _, required)| {
            let p = headers.iter().position(|h| h == name);
            if p.is_none() && *required {
                missing.push(*name);
            }
            p
        })
        .collect();
    if !missing.is_empty() {
        return Err(Error::InputFormat {
            path: path.display().to_string(),
            expected: format!("{}.csv with column(s) {}", table.name, missing.join(", ")),
        });
    }
    Ok(positions)
}

/// A row of a reference file: its table, file and line.
struct RowAt<'a> {
    table: &'a RefTableDef,
    source: &'a str,
    line: i64,
}

/// A row's typed cells, and its first problem if any.
struct TypedRow {
    cells: Vec<Cell>,
    problem: Option<RecordProblem>,
}

fn typed_row(
    at: &RowAt,
    rec: &csv::StringRecord,
    positions: &[Option<usize>],
    id_problems: &mut Vec<String>,
) -> TypedRow {
    let table = at.table;
    let mut cells = Vec::with_capacity(table.columns.len());
    let mut problem: Option<RecordProblem> = None;
    for ((name, kind, required), pos) in table.columns.iter().zip(positions) {
        let cell = pos.and_then(|p| rec.get(p)).unwrap_or("").trim();
        if cell.is_empty() {
            if *required {
                note(
                    &mut problem,
                    ReasonCode::Malformed,
                    format!("required column {name} is empty"),
                );
            }
            cells.push(Cell::empty(*kind));
            continue;
        }
        cells.push(typed_cell(at, name, *kind, cell, &mut problem, id_problems));
    }
    if table.name == "fx_rates" {
        if let Cell::Dec(Some(v)) = cells[1] {
            if v.0 <= 0 {
                note(
                    &mut problem,
                    ReasonCode::BadNumber,
                    format!("USDPerUnit '{}' must be above zero", v.to_plain()),
                );
            }
        }
    }
    TypedRow { cells, problem }
}

/// Keep the first problem of a row.
fn note(problem: &mut Option<RecordProblem>, reason: ReasonCode, detail: String) {
    problem.get_or_insert(RecordProblem { reason, detail });
}

/// One non-empty cell as its column's kind; a problem is noted, the cell kept as read.
fn typed_cell(
    at: &RowAt,
    name: &str,
    kind: ColKind,
    cell: &str,
    problem: &mut Option<RecordProblem>,
    id_problems: &mut Vec<String>,
) -> Cell {
    match kind {
        ColKind::Str if name == "month" => match parse_month(cell) {
            Some(d) => Cell::Str(month_of(d)),
            None => {
                note(
                    problem,
                    ReasonCode::BadTimestamp,
                    format!("Month '{cell}' is not YYYYMM, YYYY-MM or a date"),
                );
                Cell::Str(String::new())
            }
        },
        ColKind::Str if guid_columns(at.table).contains(&name) => match normalize_guid(cell) {
            Some(g) => Cell::Str(g),
            None => {
                note(
                    problem,
                    ReasonCode::BadId,
                    format!("{name} '{cell}' is not a GUID"),
                );
                Cell::Str(cell.to_string())
            }
        },
        ColKind::Str if name == "billing_currency" || name == "currency_code" => {
            if cell.len() != 3 || !cell.chars().all(|c| c.is_ascii_alphabetic()) {
                note(
                    problem,
                    ReasonCode::Malformed,
                    format!("{name} '{cell}' is not an ISO 4217 code"),
                );
            }
            Cell::Str(cell.to_ascii_uppercase())
        }
        // Microsoft's SKU IDs (`DZH318Z0BQ4L/0123`) hold '/' and never name a
        // directory: only IDs of ours must be directory-safe.
        ColKind::Str if name.ends_with("_id") && name != "sku_id" => {
            if let Err(why) = check_safe_id(cell) {
                id_problems.push(format!(
                    "{} line {}: {name} '{}' {why}",
                    at.source,
                    at.line,
                    shown_id(cell)
                ));
            }
            Cell::Str(cell.to_string())
        }
        ColKind::Str => Cell::Str(cell.to_string()),
        ColKind::Dec => match Dec10::parse(cell) {
            Ok(d) => Cell::Dec(Some(d)),
            Err(_) => {
                note(
                    problem,
                    ReasonCode::BadNumber,
                    format!("{name} '{cell}' is not a decimal number"),
                );
                Cell::Dec(None)
            }
        },
        ColKind::Date => match parse_lenient_utc(cell) {
            Some(t) => Cell::Date(Some(t.date_naive())),
            None => {
                note(
                    problem,
                    ReasonCode::BadTimestamp,
                    format!("{name} '{cell}' is not a date"),
                );
                Cell::Date(None)
            }
        },
    }
}

fn key_of(table: &RefTableDef, row: &[Cell]) -> Vec<String> {
    table
        .key
        .iter()
        .map(|k| {
            table
                .columns
                .iter()
                .position(|(n, _, _)| n == k)
                .map(|i| row[i].text())
                .unwrap_or_default()
        })
        .collect()
}

/// Run `ingest reference`.
pub fn ingest_reference(lake: &Lake, paths: &[PathBuf], run_id: &str) -> Result<Manifest> {
    let started = std::time::Instant::now();
    let (mut m, files) = super::begin_ingest("ingest reference", paths, run_id)?;
    let unknown: Vec<String> = files
        .iter()
        .filter(|f| table_for(f).is_none())
        .map(|f| format!("{}: not a reference file (expected partnerships.csv, organizations.csv, tenants.csv, transfers.csv, fx_rates*.csv, resellers.csv, reservation_settings.csv, reservation_skus.csv, price_lists.csv, subscriptions.csv or subscriptions/<tenant>.json)", f.display()))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::Config { problems: unknown });
    }
    let planned = super::plan_ingest(lake, &mut m, &files, "reference")?;
    let mut quarantine = Vec::new();
    let mut id_problems = Vec::new();
    let mut tables: BTreeMap<&'static str, RefRows> = BTreeMap::new();
    let mut counts = IngestCounts::default();
    for f in &planned.to_read {
        let path = &f.path;
        let def = table_for(path).expect("checked above");
        let (rows, n) = if is_subscription_list(path) {
            parse_subscription_list(path, &mut quarantine)?
        } else {
            parse_table(path, def, &mut quarantine, &mut id_problems)?
        };
        counts.read += n;
        let current = match tables.remove(def.name) {
            Some(t) => t,
            None => load_table(lake, def)?,
        };
        let merged = merge_rows(path, def, current, rows, &mut quarantine, &mut counts)?;
        tables.insert(def.name, merged);
    }
    ensure_no_problems(id_problems)?;
    check_registry(lake, &tables, &quarantine)?;
    record_counts(&mut m, counts, &quarantine)?;

    for def in ALL_TABLES {
        if let Some(rows) = tables.get(def.name) {
            save_table(lake, def, rows)?;
            super::record_written(
                &mut m,
                &format!("staged/reference/{}.parquet", def.name),
                rows.len(),
            );
        }
    }
    finish_ingest(
        lake,
        m,
        planned.ledger,
        "reference",
        &quarantine,
        planned.to_read,
        started,
    )
}

/// A file's rows merged into its table as it stands (`current`): FX and subscription names
/// merge (one file per month / per tenant), every other table is replaced by the new file.
/// A key seen twice in the file keeps its first row (the other is quarantined), except a
/// tenant mapped two ways, which stops the run. Counts new, restated and unchanged rows.
fn merge_rows(
    path: &Path,
    def: &RefTableDef,
    current: RefRows,
    rows: RefRows,
    quarantine: &mut Vec<QuarantineRecord>,
    counts: &mut IngestCounts,
) -> Result<RefRows> {
    let old: BTreeMap<Vec<String>, Vec<Cell>> = current
        .iter()
        .map(|r| (key_of(def, r), r.clone()))
        .collect();
    let mut result: BTreeMap<Vec<String>, Vec<Cell>> =
        if def.name == "fx_rates" || def.name == "subscriptions" {
            old.clone()
        } else {
            BTreeMap::new()
        };
    let mut seen = std::collections::BTreeSet::new();
    for (i, row) in rows.into_iter().enumerate() {
        let key = key_of(def, &row);
        if !seen.insert(key.clone()) {
            let same = result.get(&key) == Some(&row);
            if def.name == "tenants" && !same {
                return Err(Error::config(format!(
                    "{}: tenant {} is mapped to two organizations or partnerships; a tenant belongs to exactly one",
                    path.display(),
                    key[0]
                )));
            }
            quarantine.push(QuarantineRecord::of_row(
                ReasonCode::DuplicateRecord,
                format!(
                    "{} key {} appears earlier in this file; the first row is kept",
                    def.name,
                    key.join("/")
                ),
                &path.display().to_string(),
                i as i64 + 2,
                row.iter().map(Cell::text).collect::<Vec<_>>().join(","),
            ));
            continue;
        }
        match old.get(&key) {
            Some(o) if *o == row => counts.unchanged += 1,
            Some(_) => counts.restated += 1,
            None => counts.new += 1,
        }
        result.insert(key, row);
    }
    Ok(result.into_values().collect())
}

/// Validate the registry against the tables as they will be, before writing anything.
fn check_registry(
    lake: &Lake,
    tables: &BTreeMap<&'static str, RefRows>,
    quarantine: &[QuarantineRecord],
) -> Result<()> {
    let mut candidate = Reference::load(lake)?;
    apply_tables(&mut candidate, tables);
    let problems = candidate.registry_problems();
    if problems.is_empty() {
        return Ok(());
    }
    // A row rejected above is often the first cause (a bad currency drops its
    // organization, whose tenants then point to an unknown one): name it first.
    let mut all: Vec<String> = quarantine
        .iter()
        .filter(|q| q.reason != ReasonCode::DuplicateRecord)
        .map(|q| {
            format!(
                "{} line {}: {} ({}; the row was rejected)",
                q.source_file,
                q.source_row,
                q.detail,
                q.reason.as_str()
            )
        })
        .collect();
    all.extend(problems);
    Err(Error::Config { problems: all })
}

fn apply_tables(r: &mut Reference, tables: &BTreeMap<&'static str, RefRows>) {
    let text = |c: &Cell| c.text();
    for (name, rows) in tables {
        r.billing.apply(name, rows);
    }
    if let Some(rows) = tables.get("partnerships") {
        r.partnerships = rows
            .iter()
            .map(|row| (text(&row[0]), text(&row[1])))
            .collect();
    }
    if let Some(rows) = tables.get("organizations") {
        r.organizations = rows
            .iter()
            .map(|row| {
                let dec = |c: &Cell| {
                    if let Cell::Dec(Some(v)) = c {
                        *v
                    } else {
                        Dec10::ZERO
                    }
                };
                let o = Organization {
                    id: text(&row[0]),
                    name: text(&row[1]),
                    billing_currency: text(&row[2]),
                    consumption_adjustment_percent: dec(&row[3]),
                    reservation_markup_percent: dec(&row[4]),
                };
                (o.id.clone(), o)
            })
            .collect();
    }
    if let Some(rows) = tables.get("tenants") {
        r.tenants = rows
            .iter()
            .map(|row| {
                let t = TenantMapping {
                    customer_tenant_id: text(&row[0]),
                    organization_id: text(&row[1]),
                    partnership_id: text(&row[2]),
                };
                (t.customer_tenant_id.clone(), t)
            })
            .collect();
    }
}

/// `tenants add`: register a tenant to an organization under a partnership.
pub fn tenants_add(
    lake: &Lake,
    tenant: &str,
    org: &str,
    partnership: &str,
) -> Result<TenantMapping> {
    let mut r = Reference::load(lake)?;
    let mut problems = Vec::new();
    for (flag, id) in [("--org", org), ("--partnership", partnership)] {
        if let Err(why) = check_safe_id(id) {
            problems.push(format!("{flag} '{}' {why}", shown_id(id)));
        }
    }
    let guid = normalize_guid(tenant);
    if guid.is_none() {
        problems.push(format!("--tenant '{tenant}' is not a GUID"));
    }
    if !r.organizations.contains_key(org) {
        problems.push(format!(
            "--org '{org}' is not a known organization (ingest organizations.csv first)"
        ));
    }
    if !r.partnerships.contains_key(partnership) {
        problems.push(format!("--partnership '{partnership}' is not a known partnership (ingest partnerships.csv first)"));
    }
    if let Some(g) = &guid {
        if let Some(existing) = r.tenants.get(g) {
            if existing.organization_id != org || existing.partnership_id != partnership {
                problems.push(format!(
                    "tenant {g} is already registered to organization '{}' (partnership '{}'); a tenant belongs to one organization: run `tenants remove {g}` first",
                    existing.organization_id, existing.partnership_id
                ));
            }
        }
    }
    ensure_no_problems(problems)?;
    let g = guid.unwrap_or_default();
    let mapping = TenantMapping {
        customer_tenant_id: g.clone(),
        organization_id: org.to_string(),
        partnership_id: partnership.to_string(),
    };
    r.tenants.insert(g, mapping.clone());
    save_table(lake, &TENANTS, &tenant_rows(&r.tenants))?;
    Ok(mapping)
}

/// `tenants remove`: unregister a tenant. Its partitions disappear at the next `rate`.
pub fn tenants_remove(lake: &Lake, tenant: &str) -> Result<TenantMapping> {
    let mut r = Reference::load(lake)?;
    let removed = r.registered_tenant(tenant)?.clone();
    r.tenants.remove(&removed.customer_tenant_id);
    save_table(lake, &TENANTS, &tenant_rows(&r.tenants))?;
    Ok(removed)
}
