//! What a pull prints on stdout: the per-customer summary of pull.md (subscriptions
//! pulled/skipped, pages, records, retries) and the `tenants discover` table.

use super::customers::Discovered;
use super::writer::PullManifest;

/// The summary of a finished pull.
pub fn print_summary(m: &PullManifest) {
    let c = &m.counts;
    crate::outln!(
        "{} {}: {} requests ({} retried attempts), {} pages, {} records, {} files ({} bytes) in {:.1} s",
        m.command,
        m.run_id,
        c.requests,
        c.retries,
        c.pages,
        c.records,
        c.files,
        c.bytes,
        m.elapsed_secs()
    );
    if !m.customers.is_empty() {
        crate::outln!(
            "{:<38} {:<24} {:>6} {:>7} {:>6} {:>6} {:>9} {:>7}",
            "customer_tenant_id",
            "company",
            "pulled",
            "skipped",
            "failed",
            "pages",
            "records",
            "retries"
        );
        for s in &m.customers {
            let company: String = s.company.chars().take(24).collect();
            crate::outln!(
                "{:<38} {:<24} {:>6} {:>7} {:>6} {:>6} {:>9} {:>7}",
                s.tenant,
                company,
                s.subscriptions_pulled,
                s.subscriptions_skipped,
                s.subscriptions_failed,
                s.pages,
                s.records,
                s.retries
            );
        }
    }
    if c.smaller_later_records > 0 {
        crate::outln!(
            "{} record(s) came back in a later window with a smaller quantity (see README: a day reported across two windows)",
            c.smaller_later_records
        );
    }
    for w in &m.warnings {
        crate::outln!("warning: {w}");
    }
    crate::outln!("manifest: _pull/{}.json", m.run_id);
}

/// `tenants discover`: every customer, registered organization or `-`.
pub fn print_discovered(rows: &[Discovered]) {
    crate::outln!(
        "{:<38} {:<30} {:<34} organization",
        "customer_tenant_id",
        "company",
        "domain"
    );
    for r in rows {
        crate::outln!(
            "{:<38} {:<30} {:<34} {}",
            r.customer.tenant,
            r.customer.company,
            r.customer.domain,
            r.organization.as_deref().unwrap_or("-")
        );
    }
    let unregistered = rows.iter().filter(|r| r.organization.is_none()).count();
    if unregistered > 0 {
        crate::outln!(
            "{unregistered} customer(s) not registered: `cspcost tenants add --lake LAKE --tenant ID --org ORG --partnership P` to pull their usage"
        );
    }
}
