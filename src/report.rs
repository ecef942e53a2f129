//! Terminal summaries printed at the end of each command (presentation only).

use crate::emit::manifest::Manifest;

/// Print a run's counts and quarantine by reason.
pub fn print_ingest_summary(m: &Manifest) {
    let c = |k: &str| m.counts.get(k).copied().unwrap_or(0);
    println!("{} (run {})", m.command, m.run_id);
    let skipped = m.inputs.iter().filter(|i| i.status != "ingested").count();
    println!(
        "  files: {} read, {} skipped as already ingested",
        m.inputs.len() - skipped,
        skipped
    );
    println!(
        "  records: {} read = {} new + {} restated + {} unchanged + {} quarantined",
        c("read"),
        c("new"),
        c("restated"),
        c("unchanged"),
        m.quarantined_total()
    );
    for (reason, n) in &m.quarantined {
        println!("    quarantined {reason:<18} {n}");
    }
}

/// Print quarantine counts by stage, partition and reason.
pub fn print_quarantine(rows: &[(String, String, String, u64)]) {
    if rows.is_empty() {
        println!("no quarantined records");
        return;
    }
    println!(
        "{:<8} {:<40} {:<22} {:>8}",
        "stage", "partition", "reason", "records"
    );
    let mut total = 0;
    for (stage, part, reason, n) in rows {
        println!("{stage:<8} {part:<40} {reason:<22} {n:>8}");
        total += n;
    }
    println!("{:<8} {:<40} {:<22} {total:>8}", "total", "", "");
}

/// Print past runs, newest first.
pub fn print_runs(runs: &[Manifest]) {
    println!(
        "{:<34} {:<22} {:>9} {:>9} {:>11} {:>9}",
        "run", "command", "read", "rated", "quarantined", "ms"
    );
    for m in runs {
        let c = |k: &str| m.counts.get(k).copied().unwrap_or(0);
        println!(
            "{:<34} {:<22} {:>9} {:>9} {:>11} {:>9}",
            m.run_id,
            m.command,
            c("read"),
            c("rated"),
            m.quarantined_total(),
            m.duration_ms
        );
    }
}

/// Print the tenant registry.
pub fn print_tenants(r: &crate::model::reference::Reference) {
    println!(
        "{:<38} {:<20} {:<16}",
        "customer_tenant_id", "organization", "partnership"
    );
    for t in r.tenants.values() {
        println!(
            "{:<38} {:<20} {:<16}",
            t.customer_tenant_id, t.organization_id, t.partnership_id
        );
    }
}

/// Print one tenant with its organization.
pub fn print_tenant(
    r: &crate::model::reference::Reference,
    t: &crate::model::reference::TenantMapping,
) {
    println!("tenant        {}", t.customer_tenant_id);
    match r.organizations.get(&t.organization_id) {
        Some(o) => println!(
            "organization  {} ({}), billed in {}",
            o.id, o.name, o.billing_currency
        ),
        None => println!("organization  {} (unknown)", t.organization_id),
    }
    println!(
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
        println!("other tenants of the organization: {}", others.join(", "));
    }
}

/// Minor-unit digits of a currency (ISO 4217): 0 for JPY/KRW and the other zero-decimal
/// currencies, 3 for the dinars, 2 otherwise.
pub fn minor_unit_digits(currency: &str) -> u32 {
    match currency.to_ascii_uppercase().as_str() {
        "JPY" | "KRW" | "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "KMF" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// An amount rounded half away from zero to its currency's minor unit, as plain text
/// (`12.95`, `162973`): what a person reads of an aggregate (rating.md §1).
pub fn minor_unit_amount(v: crate::model::Dec10, currency: &str) -> String {
    let d = minor_unit_digits(currency);
    let r = crate::model::Dec10(crate::rate::half_away_from_zero::round_scale10_to(v.0, d));
    r.to_fixed(d)
}

/// An amount rounded to its currency's minor unit, as text (`12.95 EUR`).
pub fn money(v: crate::model::Dec10, currency: &str) -> String {
    format!("{} {currency}", minor_unit_amount(v, currency))
}

/// Print what `rate` did: months and why, totals per organization and month, quarantine.
pub fn print_rate_summary(r: &crate::rate::run::RateReport) {
    let m = &r.manifest;
    println!("rate (run {})", m.run_id);
    for (month, why) in &r.plan {
        println!("  {month}: {why}");
    }
    let c = |k: &str| m.counts.get(k).copied().unwrap_or(0);
    println!(
        "  records: {} staged = {} rated + {} quarantined",
        c("staged"),
        c("rated"),
        m.quarantined_total()
    );
    if !r.totals.is_empty() {
        println!(
            "  {:<14} {:<8} {:>6} {:>20} {:>24}",
            "organization", "month", "rows", "x_ListCostUsd", "BilledCost"
        );
        for t in &r.totals {
            println!(
                "  {:<14} {:<8} {:>6} {:>20} {:>24}",
                t.org,
                t.month,
                t.rows,
                t.list_cost_usd.to_string(),
                format!("{} {}", t.billed_cost, t.currency)
            );
        }
    }
    for (month, reasons) in &r.quarantined {
        for (reason, n) in reasons {
            println!("  quarantined {month} {reason:<18} {n}");
        }
    }
    let written = m
        .partitions
        .iter()
        .filter(|p| p.action == "written")
        .count();
    let unchanged = m
        .partitions
        .iter()
        .filter(|p| p.action == "unchanged")
        .count();
    let deleted = m
        .partitions
        .iter()
        .filter(|p| p.action == "deleted")
        .count();
    println!("  partitions: {written} written, {unchanged} unchanged, {deleted} deleted");
}
