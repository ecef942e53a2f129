//! The terminal summary of `reconcile` (presentation only): the extract per organization,
//! then per customer tenant and in total the invoice total, the computed total and the
//! amount each reason code explains. Amounts are rounded to the minor unit here and nowhere
//! earlier.

use crate::model::decimal::Dec10;
use crate::model::half_away_from_zero::round_scale10_to;
use crate::reconcile::run::{ReconcileReport, VarianceReport};
use crate::reconcile::variance::{VarianceReason, VarianceSummary};
use crate::report::minor_unit_amount;
use std::fmt::Write;

/// The summary as text (printed by the CLI; tests read it too).
pub fn render(r: &ReconcileReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "reconcile {} (run {})", r.period, r.manifest.run_id);
    let _ = writeln!(
        s,
        "  extract: {} rated rows in {} lines (grain: {})",
        r.rows,
        r.lines,
        r.grain.as_str()
    );
    if !r.orgs.is_empty() {
        let _ = writeln!(
            s,
            "    {:<14} {:<8} {:>6} {:>6} {:>15} {:>15} {:>15}",
            "organization", "currency", "rows", "lines", "x_ListCostUsd", "ListCost", "BilledCost"
        );
        for o in &r.orgs {
            let _ = writeln!(
                s,
                "    {:<14} {:<8} {:>6} {:>6} {:>15} {:>15} {:>15}",
                o.organization_id,
                o.billing_currency,
                o.rows,
                o.lines,
                minor_unit_amount(o.list_cost_usd, "USD"),
                minor_unit_amount(o.list_cost, &o.billing_currency),
                minor_unit_amount(o.billed_cost, &o.billing_currency),
            );
        }
    }
    if let Some(v) = &r.variance {
        variance(&mut s, r, v);
    }
    for n in &r.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    let _ = writeln!(s, "  wrote {} to {}", r.files.join(", "), r.out.display());
    s
}

/// Print [`render`] to stdout.
pub fn print_summary(r: &ReconcileReport) {
    print!("{}", render(r));
}

fn variance(s: &mut String, r: &ReconcileReport, v: &VarianceReport) {
    let cur = v.currency.as_str();
    let money = |d: Dec10| minor_unit_amount(d, cur);
    let tol = |k: &str| {
        r.manifest
            .options
            .get(k)
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .to_string()
    };
    let _ = writeln!(
        s,
        "  invoice {}: {} lines in {cur}, {} compared lines (quantity tolerance {}, cost tolerance {})",
        v.invoice_path,
        v.invoice_lines,
        v.lines.len(),
        tol("quantity_tolerance"),
        tol("cost_tolerance"),
    );
    let _ = writeln!(
        s,
        "    {:<38} {:<12} {:>12} {:>12} {:>12}",
        format!("customer tenant ({cur})"),
        "organization",
        "invoice",
        "computed",
        "difference"
    );
    for sum in &v.summaries {
        let (name, org) = match &sum.customer_tenant_id {
            Some(t) => (
                t.clone(),
                sum.organization_id.clone().unwrap_or_else(|| "-".into()),
            ),
            None => ("total".to_string(), String::new()),
        };
        let row = format!(
            "    {:<38} {:<12} {:>12} {:>12} {:>12}",
            name,
            org,
            money(sum.invoice_total),
            money(sum.computed_total),
            money(sum.difference())
        );
        let customer = sum.customer_name.as_deref().unwrap_or("");
        let _ = writeln!(s, "{}", format!("{row}  {customer}").trim_end());
        reasons(s, v, sum, &money);
    }
}

fn reasons(
    s: &mut String,
    v: &VarianceReport,
    sum: &VarianceSummary,
    money: &dyn Fn(Dec10) -> String,
) {
    for reason in VarianceReason::ALL {
        let Some((n, amount)) = sum.explained.get(&reason) else {
            continue;
        };
        let label = format!(
            "      {:<20} {:>3} line{}",
            reason.as_str(),
            n,
            if *n == 1 { "" } else { "s" }
        );
        // Right-aligned under the difference column of the tenant rows.
        let _ = writeln!(s, "{label:<81} {:>12}", money(*amount));
        // Per tenant, show each discount; the total row repeats none of them.
        let Some(tenant) = &sum.customer_tenant_id else {
            continue;
        };
        if reason != VarianceReason::PriceDifference {
            continue;
        }
        for l in v
            .lines
            .iter()
            .filter(|l| l.reason == reason && &l.customer_tenant_id == tenant)
        {
            if let Some(d) = l.effective_discount_percent {
                let _ = writeln!(
                    s,
                    "        {}: effective discount {} %",
                    l.meter_name.as_deref().unwrap_or(&l.meter_id),
                    Dec10(round_scale10_to(d.0, 1)).to_fixed(1)
                );
            }
        }
    }
}
