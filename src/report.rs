//! Terminal summaries printed at the end of each command (presentation only).

use crate::emit::manifest::Manifest;

/// Print a run's counts and quarantine by reason.
pub fn print_ingest_summary(m: &Manifest) {
    let c = |k: &str| m.counts.get(k).copied().unwrap_or(0);
    crate::outln!("{} (run {})", m.command, m.run_id);
    let skipped = m.inputs.iter().filter(|i| i.status != "ingested").count();
    crate::outln!(
        "  files: {} read, {} skipped as already ingested",
        m.inputs.len() - skipped,
        skipped
    );
    crate::outln!(
        "  records: {} read = {} new + {} restated + {} unchanged + {} quarantined",
        c("read"),
        c("new"),
        c("restated"),
        c("unchanged"),
        m.quarantined_total()
    );
    for (reason, n) in &m.quarantined {
        crate::outln!("    quarantined {reason:<18} {n}");
    }
}

/// Print quarantine counts by stage, partition and reason.
pub fn print_quarantine(rows: &[(String, String, String, u64)]) {
    if rows.is_empty() {
        crate::outln!("no quarantined records");
        return;
    }
    crate::outln!(
        "{:<8} {:<40} {:<22} {:>8}",
        "stage",
        "partition",
        "reason",
        "records"
    );
    let mut total = 0;
    for (stage, part, reason, n) in rows {
        crate::outln!("{stage:<8} {part:<40} {reason:<22} {n:>8}");
        total += n;
    }
    crate::outln!("{:<8} {:<40} {:<22} {total:>8}", "total", "", "");
}

/// A duration for people: `420 ms`, `3.2 s`, `4m 05s`, `1h 02m`.
pub fn duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m {:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// A manifest's counts in one line: the main counts first, then quarantine and partitions.
fn counts_line(m: &Manifest) -> String {
    const FIRST: [&str; 7] = [
        "read",
        "new",
        "restated",
        "unchanged",
        "staged",
        "rated",
        "months",
    ];
    const SKIP: [&str; 3] = ["superseded", "files", "files_skipped_identical"];
    // `rate` records `read` as the staged count too: show it once.
    let same_as_staged = |k: &str| k == "read" && m.counts.contains_key("staged");
    let mut parts: Vec<String> = FIRST
        .iter()
        .filter(|k| !same_as_staged(k))
        .filter_map(|k| m.counts.get(*k).map(|v| format!("{k} {v}")))
        .collect();
    parts.extend(
        m.counts
            .iter()
            .filter(|(k, _)| !FIRST.contains(&k.as_str()) && !SKIP.contains(&k.as_str()))
            .map(|(k, v)| format!("{k} {v}")),
    );
    parts.push(format!("quarantined {}", m.quarantined_total()));
    let by_action = |a: &str| m.partitions.iter().filter(|p| p.action == a).count();
    let (written, deleted) = (by_action("written"), by_action("deleted"));
    if written + deleted > 0 {
        parts.push(format!("partitions {written} written, {deleted} deleted"));
    }
    parts.join(", ")
}

/// `2026-02-16 02:00:01` (UTC) from a manifest's RFC 3339 start time.
fn started(m: &Manifest) -> String {
    chrono::DateTime::parse_from_rfc3339(&m.started_at)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| m.started_at.clone())
}

/// Print past runs, newest first: start time, duration, command, run ID, counts.
pub fn print_runs(runs: &[Manifest]) {
    if runs.is_empty() {
        crate::outln!("no runs recorded in this lake");
        return;
    }
    crate::outln!(
        "{:<19}  {:>9}  {:<18}  {:<30}  counts",
        "started (UTC)",
        "duration",
        "command",
        "run"
    );
    for m in runs {
        crate::outln!(
            "{:<19}  {:>9}  {:<18}  {:<30}  {}",
            started(m),
            duration(m.duration_ms),
            m.command,
            m.run_id,
            match &m.status {
                // A crashed or failed run's manifest, written by a later run (emit::journal).
                Some(status) => format!("{status}: {}", counts_line(m)),
                None => counts_line(m),
            }
        );
    }
}

/// Log the end of a run (its last log line): command, run ID, duration; in JSON also the
/// counts, quarantine by reason and partitions written and deleted.
pub fn log_finished(m: &Manifest) {
    use serde_json::Value;
    let by_action = |a: &str| m.partitions.iter().filter(|p| p.action == a).count();
    crate::progress::log_with(
        &format!(
            "{} finished in {} (run {})",
            m.command,
            duration(m.duration_ms),
            m.run_id
        ),
        &[
            ("event", Value::from("finished")),
            ("command", Value::from(m.command.as_str())),
            ("run_id", Value::from(m.run_id.as_str())),
            ("duration_ms", Value::from(m.duration_ms)),
            ("counts", serde_json::json!(m.counts)),
            ("quarantined", serde_json::json!(m.quarantined)),
            ("partitions_written", Value::from(by_action("written"))),
            ("partitions_deleted", Value::from(by_action("deleted"))),
        ],
    );
}

/// Print the tenant registry.
pub fn print_tenants(r: &crate::model::reference::Reference) {
    crate::outln!(
        "{:<38} {:<20} {:<16}",
        "customer_tenant_id",
        "organization",
        "partnership"
    );
    for t in r.tenants.values() {
        crate::outln!(
            "{:<38} {:<20} {:<16}",
            t.customer_tenant_id,
            t.organization_id,
            t.partnership_id
        );
    }
}

/// Print one tenant with its organization.
pub fn print_tenant(
    r: &crate::model::reference::Reference,
    t: &crate::model::reference::TenantMapping,
) {
    crate::outln!("tenant        {}", t.customer_tenant_id);
    match r.organizations.get(&t.organization_id) {
        Some(o) => crate::outln!(
            "organization  {} ({}), billed in {}",
            o.id,
            o.name,
            o.billing_currency
        ),
        None => crate::outln!("organization  {} (unknown)", t.organization_id),
    }
    if let Some(res) = r.billing.reseller_of(&t.organization_id) {
        crate::outln!(
            "reseller      {} ({}), invoices the organization",
            res.id,
            res.name
        );
    }
    crate::outln!(
        "partnership   {} ({})",
        t.partnership_id,
        r.partnerships
            .get(&t.partnership_id)
            .map(String::as_str)
            .unwrap_or("unknown")
    );
    let others: Vec<&str> = r
        .tenants
        .values()
        .filter(|o| {
            o.organization_id == t.organization_id && o.customer_tenant_id != t.customer_tenant_id
        })
        .map(|o| o.customer_tenant_id.as_str())
        .collect();
    if !others.is_empty() {
        crate::outln!("other tenants of the organization: {}", others.join(", "));
    }
}

/// An amount rounded half away from zero to its currency's minor unit, as plain text
/// (`12.95`, `162973`): what a person reads of an aggregate (rating.md §1).
pub fn minor_unit_amount(v: crate::model::Dec10, currency: &str) -> String {
    let d = crate::model::currency::minor_unit_digits(currency);
    let r = crate::model::Dec10(crate::model::half_away_from_zero::round_scale10_to(v.0, d));
    r.to_fixed(d)
}

/// An amount rounded to its currency's minor unit, as text (`12.95 EUR`).
pub fn money(v: crate::model::Dec10, currency: &str) -> String {
    format!("{} {currency}", minor_unit_amount(v, currency))
}

/// Print what `rate` did: months and why, totals per organization and month, quarantine.
pub fn print_rate_summary(r: &crate::rate::run::RateReport) {
    let m = &r.manifest;
    crate::outln!("rate (run {})", m.run_id);
    for mo in &r.plan.months {
        crate::outln!("  {}: {}", mo.month, mo.why);
    }
    let c = |k: &str| m.counts.get(k).copied().unwrap_or(0);
    crate::outln!(
        "  records: {} staged = {} rated + {} quarantined",
        c("staged"),
        c("rated"),
        m.quarantined_total()
    );
    print_org_month_totals(&r.totals);
    for (month, reasons) in &r.quarantined {
        for (reason, n) in reasons {
            crate::outln!("  quarantined {month} {reason:<18} {n}");
        }
    }
    print_partition_actions(m);
}

/// Rows, `x_ListCostUsd` and `BilledCost` per organization and month.
fn print_org_month_totals(totals: &[crate::emit::costs::OrgMonthTotal]) {
    if totals.is_empty() {
        return;
    }
    crate::outln!(
        "  {:<14} {:<8} {:>6} {:>20} {:>24}",
        "organization",
        "month",
        "rows",
        "x_ListCostUsd",
        "BilledCost"
    );
    for t in totals {
        crate::outln!(
            "  {:<14} {:<8} {:>6} {:>20} {:>24}",
            t.org,
            t.month,
            t.rows,
            t.list_cost_usd.to_string(),
            format!("{} {}", t.billed_cost, t.currency)
        );
    }
}

/// How many files a run wrote, left unchanged and deleted.
fn print_partition_actions(m: &Manifest) {
    let count = |action: &str| m.partitions.iter().filter(|p| p.action == action).count();
    crate::outln!(
        "  partitions: {} written, {} unchanged, {} deleted",
        count("written"),
        count("unchanged"),
        count("deleted")
    );
}

/// Print what `reserve` did: orders priced and quarantined, assets, charges per organization
/// and month.
pub fn print_reserve_summary(r: &crate::reserve::run::ReserveReport) {
    let m = &r.manifest;
    crate::outln!("reserve (run {}) as of {}", m.run_id, r.as_of);
    let c = |k: &str| m.counts.get(k).copied().unwrap_or(0);
    crate::outln!(
        "  orders: {} staged = {} priced + {} unchanged + {} quarantined",
        c("read"),
        c("priced"),
        c("unchanged"),
        m.quarantined_total()
    );
    for (reason, n) in &m.quarantined {
        crate::outln!("    quarantined {reason:<22} {n}");
    }
    let expired = crate::reserve::assets::expired_count(&r.assets);
    crate::outln!(
        "  assets: {} ({} active, {expired} expired) in {}",
        r.assets.len(),
        r.assets.len() - expired,
        crate::reserve::assets::ASSETS_FILE
    );
    crate::outln!("  purchase charges: {}", c("charges"));
    print_org_month_totals(&r.totals);
    print_partition_actions(m);
}

/// A decimal with at least `digits` decimals (`700.80`, `0.1234`).
fn with_min_digits(v: crate::model::Dec10, digits: u32) -> String {
    let plain = v.to_plain();
    let have = plain.split_once('.').map(|(_, f)| f.len()).unwrap_or(0);
    if have as u32 >= digits {
        plain
    } else {
        v.to_fixed(digits)
    }
}

/// Columns of `cspcost assets`: (header, right-aligned): text columns left, amounts and
/// counts right.
const ASSET_COLUMNS: [(&str, bool); 14] = [
    ("order", false),
    ("reservation", false),
    ("organization", false),
    ("status", false),
    ("quantity", true),
    ("purchased (UTC)", false),
    ("expires (UTC)", false),
    ("USD unit price", true),
    ("FX USD/unit (date)", true),
    ("unit price", true),
    ("markup", true),
    ("sell unit price", true),
    ("total", true),
    ("billed", true),
];

/// Print reservation assets as a table, the product title and details under each row.
pub fn print_assets(rows: &[crate::reserve::assets::AssetRow]) {
    let Some(first) = rows.first() else {
        crate::outln!("no reservation assets match");
        return;
    };
    let table: Vec<Vec<String>> = rows.iter().map(asset_cells).collect();
    let widths: Vec<usize> = ASSET_COLUMNS
        .iter()
        .enumerate()
        .map(|(k, (header, _))| {
            table
                .iter()
                .map(|r| r[k].len())
                .fold(header.len(), usize::max)
        })
        .collect();
    let line = |cells: Vec<&str>| aligned_line(&cells, &widths);
    let expired = crate::reserve::assets::expired_count(rows);
    crate::outln!(
        "reservation assets as of {}: {} ({} active, {expired} expired)",
        first.as_of,
        rows.len(),
        rows.len() - expired
    );
    crate::outln!("{}", line(ASSET_COLUMNS.iter().map(|(h, _)| *h).collect()));
    let indent = " ".repeat(widths[0] + 2);
    for (a, cells) in rows.iter().zip(&table) {
        crate::outln!("{}", line(cells.iter().map(String::as_str).collect()));
        crate::outln!("{indent}{}", a.get("product_title"));
        crate::outln!("{indent}{}", a.get("product_details"));
    }
}

/// One asset's cells, in [`ASSET_COLUMNS`] order.
fn asset_cells(a: &crate::reserve::assets::AssetRow) -> Vec<String> {
    let instant = |us: i64| {
        crate::model::time::from_micros(us)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    };
    vec![
        a.get("order_id").to_string(),
        a.get("reservation_id").to_string(),
        match &a.reseller_id {
            Some(r) => format!("{} (reseller {r})", a.organization_id),
            None => a.organization_id.clone(),
        },
        a.status.as_str().to_string(),
        format!(
            "{} {}",
            a.quantity,
            crate::pricing::reservation::PRICING_UNIT
        ),
        instant(a.purchase_date_utc),
        instant(a.expiration_utc),
        with_min_digits(a.original_unit_price_usd, 2),
        format!("{} ({})", a.fx_usd_per_unit.to_plain(), a.fx_rate_date),
        money(a.purchase_unit_price, &a.currency),
        format!("{}%", a.reservation_markup_percent.to_plain()),
        money(a.sell_unit_price, &a.currency),
        money(a.total, &a.currency),
        format!("{}/{}", a.installments_billed_so_far, a.installments_total),
    ]
}

/// A line of the assets table: each cell padded to its column's width, on its side.
fn aligned_line(cells: &[&str], widths: &[usize]) -> String {
    let parts: Vec<String> = cells
        .iter()
        .zip(ASSET_COLUMNS.iter().zip(widths))
        .map(|(c, ((_, right), w))| {
            if *right {
                format!("{c:>w$}")
            } else {
                format!("{c:<w$}")
            }
        })
        .collect();
    parts.join("  ").trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(420), "420 ms");
        assert_eq!(duration(3_240), "3.2 s");
        assert_eq!(duration(245_000), "4m 05s");
        assert_eq!(duration(3_720_000), "1h 02m");
    }
}
