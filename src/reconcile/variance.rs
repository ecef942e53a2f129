//! Variance against Microsoft's invoice (reconciliation.md "Against Microsoft's invoice"):
//! invoice lines summed over `DetailLineItemId`, computed lines summed from the rated rows of
//! each charge period, a full outer join on `(customer tenant, meter)` — or
//! `(subscription, meter)` when the invoice's subscriptions can be matched — and one reason
//! code per line, the first that applies in the spec's order.
//!
//! The join covers the reconciliation period (`--from`..`--to`) both ways. Invoice lines of
//! another charge period (latent usage of an earlier cycle) are compared with the usage of
//! their own period; usage of such a period without an invoice line is not reported here,
//! since it belongs to that period's invoice.

use crate::error::{Error, Result};
use crate::model::decimal::{Dec10, ONE_RAW};
use crate::model::half_away_from_zero::div_round;
use crate::model::ids::normalize_guid;
use crate::model::units::Unit;
use crate::pricing::fx::to_billing_currency;
use crate::reconcile::extract::{add_to, RatedUsage};
use crate::reconcile::invoice::{InvoiceLine, SubscriptionMap};
use crate::reconcile::period::Period;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Why a line differs, in the spec's precedence (the first that applies wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VarianceReason {
    /// Computed usage, no invoice line.
    MissingInInvoice,
    /// Invoice line, no computed usage (utilization not ingested, or unmapped tenant).
    MissingInUsage,
    /// Quantities differ by more than the quantity tolerance (late or restated usage).
    QuantityMismatch,
    /// The invoice cost equals the cost as rated (calendar-month tiers).
    Matched,
    /// The invoice cost equals the cost re-tiered over the charge period.
    TierPeriod,
    /// The rest: the unit price differs (CSP price vs pay-as-you-go).
    PriceDifference,
}

impl VarianceReason {
    /// Every code, in precedence order.
    pub const ALL: [VarianceReason; 6] = [
        VarianceReason::MissingInInvoice,
        VarianceReason::MissingInUsage,
        VarianceReason::QuantityMismatch,
        VarianceReason::Matched,
        VarianceReason::TierPeriod,
        VarianceReason::PriceDifference,
    ];

    /// The code as written in `reason_code`.
    pub fn as_str(self) -> &'static str {
        match self {
            VarianceReason::MissingInInvoice => "MISSING_IN_INVOICE",
            VarianceReason::MissingInUsage => "MISSING_IN_USAGE",
            VarianceReason::QuantityMismatch => "QUANTITY_MISMATCH",
            VarianceReason::Matched => "MATCHED",
            VarianceReason::TierPeriod => "TIER_PERIOD",
            VarianceReason::PriceDifference => "PRICE_DIFFERENCE",
        }
    }
}

impl fmt::Display for VarianceReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `--quantity-tolerance` and `--cost-tolerance`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tolerances {
    /// Largest |invoice - computed| quantity that is still the same quantity.
    pub quantity: Dec10,
    /// Largest |invoice - computed| cost that is still the same cost.
    pub cost: Dec10,
}

impl Default for Tolerances {
    /// The spec's defaults: 0.000001 and 0.005.
    fn default() -> Tolerances {
        Tolerances {
            quantity: Dec10(10_000),
            cost: Dec10(50_000_000),
        }
    }
}

/// The reason code of a line and, for `PRICE_DIFFERENCE`, the effective discount.
///
/// `invoice` is `(quantity, cost)`; `computed` is `(quantity, cost_calendar, cost_cycle)`,
/// all in the invoice's units and currency.
pub fn classify(
    invoice: Option<(Dec10, Dec10)>,
    computed: Option<(Dec10, Dec10, Dec10)>,
    tol: Tolerances,
) -> Result<(VarianceReason, Option<Dec10>)> {
    let (Some((iq, ic)), Some((cq, cal, cyc))) = (invoice, computed) else {
        return Ok(if invoice.is_none() {
            (VarianceReason::MissingInInvoice, None)
        } else {
            (VarianceReason::MissingInUsage, None)
        });
    };
    let within = |a: Dec10, b: Dec10, t: Dec10| a.0.abs_diff(b.0) <= t.0.unsigned_abs();
    Ok(if !within(iq, cq, tol.quantity) {
        (VarianceReason::QuantityMismatch, None)
    } else if within(ic, cal, tol.cost) {
        (VarianceReason::Matched, None)
    } else if within(ic, cyc, tol.cost) {
        (VarianceReason::TierPeriod, None)
    } else {
        (
            VarianceReason::PriceDifference,
            effective_discount_percent(ic, cyc)?,
        )
    })
}

/// `100 * (1 - invoice_cost / computed_cost_cycle)`, rounded to 10 decimals; `None` when
/// the computed cost is zero (no price to be discounted).
pub fn effective_discount_percent(invoice_cost: Dec10, cost_cycle: Dec10) -> Result<Option<Dec10>> {
    if cost_cycle.0 == 0 {
        return Ok(None);
    }
    let overflow = || Error::Overflow {
        context: "computing effective_discount_percent".into(),
    };
    let num = cost_cycle
        .0
        .checked_sub(invoice_cost.0)
        .and_then(|d| d.checked_mul(100 * ONE_RAW))
        .ok_or_else(overflow)?;
    Ok(Some(Dec10(div_round(num, cost_cycle.0))))
}

/// What invoice and computed lines are matched on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOn {
    /// `(customer tenant, meter)`: the default, since the CSV's `SubscriptionId` is a
    /// billing-platform ID.
    CustomerTenant,
    /// `(subscription, meter)`.
    Subscription,
}

impl MatchOn {
    /// As written in the manifest and the summary.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOn::CustomerTenant => "(customer tenant, meter)",
            MatchOn::Subscription => "(subscription, meter)",
        }
    }
}

/// The subscription GUID an invoice line stands for, if it can be known.
fn resolve_subscription(line: &InvoiceLine, map: Option<&SubscriptionMap>) -> Option<String> {
    let id = line.subscription_id.as_deref()?;
    map.and_then(|m| m.get(id).cloned())
        .or_else(|| normalize_guid(id))
}

/// Decide the match for a whole invoice (never per line, so that no usage is counted under
/// both keys), and say why in a sentence. Subscriptions are used when every line's
/// `SubscriptionId` resolves to a GUID — through `--subscription-map`, or being one — and,
/// without a map, at least one of them is a rated subscription.
pub fn choose_match(
    lines: &[InvoiceLine],
    map: Option<&SubscriptionMap>,
    rated_subscriptions: &BTreeSet<String>,
) -> (MatchOn, String) {
    let tenant = MatchOn::CustomerTenant;
    if lines.is_empty() {
        return (tenant, "the invoice has no lines".into());
    }
    if let Some(l) = lines
        .iter()
        .find(|l| resolve_subscription(l, map).is_none())
    {
        let why = match (&l.subscription_id, map) {
            (None, _) => format!("line {} has no SubscriptionId", l.source_line),
            (Some(s), None) => format!(
                "SubscriptionId '{s}' (line {}) is a billing-platform ID; give --subscription-map to match subscriptions",
                l.source_line
            ),
            (Some(s), Some(_)) => format!(
                "SubscriptionId '{s}' (line {}) is not in --subscription-map",
                l.source_line
            ),
        };
        return (tenant, why);
    }
    if map.is_some() {
        return (
            MatchOn::Subscription,
            "every SubscriptionId is mapped by --subscription-map".into(),
        );
    }
    let any_rated = lines
        .iter()
        .filter_map(|l| resolve_subscription(l, None))
        .any(|s| rated_subscriptions.contains(&s));
    if any_rated {
        (
            MatchOn::Subscription,
            "the invoice's SubscriptionIds are GUIDs of rated subscriptions".into(),
        )
    } else {
        (
            tenant,
            "the invoice's SubscriptionIds are GUIDs, but none is a rated subscription".into(),
        )
    }
}

/// Key of a comparable line: charge period, then the customer tenant or the subscription
/// (per [`MatchOn`]), then the meter.
pub type LineKey = (Period, String, String);

/// Invoice lines of one key summed over `DetailLineItemId`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceItem {
    /// Customer tenant (of the first line).
    pub customer_tenant_id: String,
    /// Customer name (of the first line that has one).
    pub customer_name: Option<String>,
    /// Subscription GUID, when matching on subscriptions.
    pub subscription_id: Option<String>,
    /// Meter name (of the first line that has one).
    pub meter_name: Option<String>,
    /// Unit of the consumed quantity (of the first line that has one).
    pub unit: Option<String>,
    /// Sum of `ConsumedQuantity`.
    pub consumed_quantity: Dec10,
    /// Sum of `PretaxCharges`.
    pub pretax_charges: Dec10,
    /// Lines of the file summed here, in file order.
    pub source_lines: Vec<u64>,
}

/// Sum invoice lines with the same key and charge period.
pub fn aggregate_invoice(
    lines: &[InvoiceLine],
    on: MatchOn,
    map: Option<&SubscriptionMap>,
) -> Result<BTreeMap<LineKey, InvoiceItem>> {
    const WHAT: &str = "summing invoice lines";
    let mut items: BTreeMap<LineKey, InvoiceItem> = BTreeMap::new();
    for l in lines {
        let subscription = match on {
            MatchOn::Subscription => resolve_subscription(l, map),
            MatchOn::CustomerTenant => None,
        };
        let id = subscription
            .clone()
            .unwrap_or_else(|| l.customer_tenant_id.clone());
        let item = items
            .entry((l.charge_period, id, l.meter_id.clone()))
            .or_insert_with(|| InvoiceItem {
                customer_tenant_id: l.customer_tenant_id.clone(),
                customer_name: None,
                subscription_id: subscription,
                meter_name: None,
                unit: None,
                consumed_quantity: Dec10::ZERO,
                pretax_charges: Dec10::ZERO,
                source_lines: Vec::new(),
            });
        item.customer_name = item.customer_name.take().or(l.customer_name.clone());
        item.meter_name = item.meter_name.take().or(l.meter_name.clone());
        item.unit = item.unit.take().or(l.unit.clone());
        add_to(&mut item.consumed_quantity, l.consumed_quantity, WHAT)?;
        add_to(&mut item.pretax_charges, l.pretax_charges, WHAT)?;
        item.source_lines.push(l.source_line);
    }
    Ok(items)
}

/// Overflow context of the computed side's sums.
const COMPUTED: &str = "summing computed usage";

/// Computed usage of one (charge period, tenant, subscription, meter): the finest grain,
/// rolled up to the match key once the match is chosen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComputedTotals {
    /// Organization of the rows.
    pub organization_id: String,
    /// Meter name of the rows.
    pub meter_name: Option<String>,
    /// Rated rows.
    pub rows: u64,
    /// Sum of `ConsumedQuantity` per `ConsumedUnit`.
    pub consumed_by_unit: BTreeMap<String, Dec10>,
    /// Sum of `x_ListCostUsd` (calendar-month tiers, as rated).
    pub list_cost_usd: Dec10,
    /// Sum of the re-tiered USD cost (tiers over the charge period).
    pub cycle_cost_usd: Dec10,
}

impl ComputedTotals {
    /// What every addition shares; the first organization and meter name stay.
    fn absorb(
        &mut self,
        org: &str,
        meter_name: Option<&String>,
        rows: u64,
        list_cost_usd: Dec10,
        cycle_cost_usd: Dec10,
    ) -> Result<()> {
        if self.rows == 0 {
            self.organization_id = org.to_string();
        }
        self.meter_name = self.meter_name.take().or(meter_name.cloned());
        self.rows += rows;
        add_to(&mut self.list_cost_usd, list_cost_usd, COMPUTED)?;
        add_to(&mut self.cycle_cost_usd, cycle_cost_usd, COMPUTED)
    }

    fn add_consumed(&mut self, unit: &str, quantity: Dec10) -> Result<()> {
        match self.consumed_by_unit.get_mut(unit) {
            Some(total) => add_to(total, quantity, COMPUTED),
            None => {
                self.consumed_by_unit.insert(unit.to_string(), quantity);
                Ok(())
            }
        }
    }

    fn add(&mut self, r: &RatedUsage, cycle_cost_usd: Dec10) -> Result<()> {
        self.add_consumed(&r.consumed_unit, r.consumed_quantity)?;
        let name = r.meter_name.as_ref();
        self.absorb(&r.organization_id, name, 1, r.list_cost_usd, cycle_cost_usd)
    }

    fn merge(&mut self, o: &ComputedTotals) -> Result<()> {
        for (unit, q) in &o.consumed_by_unit {
            self.add_consumed(unit, *q)?;
        }
        let name = o.meter_name.as_ref();
        self.absorb(
            &o.organization_id,
            name,
            o.rows,
            o.list_cost_usd,
            o.cycle_cost_usd,
        )
    }

    /// Consumed quantity in `unit` (the invoice's), converting each reported unit with the
    /// same base (`Hours` into `100 Hours`); without a unit, or across bases, the plain sum.
    pub fn quantity_in(&self, unit: Option<&str>) -> Result<Dec10> {
        let target = unit.map(Unit::parse);
        let mut total = Dec10::ZERO;
        for (u, q) in &self.consumed_by_unit {
            let q = match &target {
                Some(t) => Unit::parse(u).convert(*q, t).unwrap_or(*q),
                None => *q,
            };
            add_to(&mut total, q, "summing computed quantities")?;
        }
        Ok(total)
    }
}

/// Key of computed usage at the finest grain: (charge period, tenant, subscription, meter).
pub type ComputedKey = (Period, String, String, String);

/// Computed usage of all periods, built organization by organization.
#[derive(Debug, Default)]
pub struct Computed {
    /// Totals by key.
    pub totals: BTreeMap<ComputedKey, ComputedTotals>,
}

impl Computed {
    /// Add one period's rows with their re-tiered costs (same order as `rows`).
    pub fn add_period(
        &mut self,
        period: Period,
        rows: &[&RatedUsage],
        cycle_costs: &[Dec10],
    ) -> Result<()> {
        for (r, c) in rows.iter().zip(cycle_costs) {
            let key = (
                period,
                r.customer_tenant_id.clone(),
                r.subscription_id.clone(),
                r.meter_id.clone(),
            );
            self.totals.entry(key).or_default().add(r, *c)?;
        }
        Ok(())
    }

    /// Every rated subscription seen.
    pub fn subscriptions(&self) -> BTreeSet<String> {
        self.totals.keys().map(|k| k.2.clone()).collect()
    }

    /// Roll up to the match key; each value also names its tenant.
    fn rolled_up(&self, on: MatchOn) -> Result<BTreeMap<LineKey, (String, ComputedTotals)>> {
        let mut out: BTreeMap<LineKey, (String, ComputedTotals)> = BTreeMap::new();
        for ((period, tenant, sub, meter), t) in &self.totals {
            let id = match on {
                MatchOn::CustomerTenant => tenant.clone(),
                MatchOn::Subscription => sub.clone(),
            };
            let e = out
                .entry((*period, id, meter.clone()))
                .or_insert_with(|| (tenant.clone(), ComputedTotals::default()));
            e.1.merge(t)?;
        }
        Ok(out)
    }
}

/// One line of `variance.parquet` / `variance.csv`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarianceLine {
    /// Customer tenant.
    pub customer_tenant_id: String,
    /// Organization the tenant is registered to, if any.
    pub organization_id: Option<String>,
    /// Customer name from the invoice (from another line of the tenant when this one is
    /// missing in the invoice).
    pub customer_name: Option<String>,
    /// Subscription, when matching on subscriptions.
    pub subscription_id: Option<String>,
    /// Meter.
    pub meter_id: String,
    /// Meter name (invoice `ResourceName`, else the rated rows').
    pub meter_name: Option<String>,
    /// The charge period compared.
    pub charge_period: Period,
    /// Invoice currency: every cost of the line is in it.
    pub currency: String,
    /// Unit of the quantities (the invoice's `Unit`).
    pub unit: Option<String>,
    /// Invoice `ConsumedQuantity`, summed.
    pub invoice_quantity: Option<Dec10>,
    /// Sum of the rated rows' `ConsumedQuantity`, in the invoice's unit.
    pub computed_quantity: Option<Dec10>,
    /// `invoice_quantity - computed_quantity` (a missing side counts as 0).
    pub quantity_difference: Dec10,
    /// Invoice `PretaxCharges`, summed.
    pub invoice_cost: Option<Dec10>,
    /// Rated pay-as-you-go cost (calendar-month tiers) in the invoice currency.
    pub computed_cost_calendar: Option<Dec10>,
    /// The same usage re-tiered over the charge period, in the invoice currency.
    pub computed_cost_cycle: Option<Dec10>,
    /// `invoice_cost - computed_cost_calendar` (a missing side counts as 0): the amount this
    /// line's reason code explains.
    pub cost_difference_calendar: Dec10,
    /// `invoice_cost - computed_cost_cycle` (a missing side counts as 0).
    pub cost_difference_cycle: Dec10,
    /// `100 * (1 - invoice_cost / computed_cost_cycle)`, for `PRICE_DIFFERENCE` lines.
    pub effective_discount_percent: Option<Dec10>,
    /// The reason code.
    pub reason: VarianceReason,
    /// Invoice lines summed (tier bands).
    pub invoice_lines: Vec<u64>,
    /// Rated rows summed.
    pub computed_rows: u64,
}

/// Everything the join needs besides the two sides.
pub struct JoinContext<'a> {
    /// The reconciliation period (`--from`..`--to`), joined both ways.
    pub period: Period,
    /// Invoice currency (USD for an invoice without lines).
    pub currency: &'a str,
    /// USD per unit of the invoice currency, by `YYYY-MM` (1 for USD).
    pub fx: &'a dyn Fn(&str) -> Result<Dec10>,
    /// Organization of a registered tenant.
    pub organization_of: &'a dyn Fn(&str) -> Option<String>,
    /// Keep this line (`--tenant`, `--org`).
    pub keep: &'a dyn Fn(&VarianceLine) -> bool,
    /// What lines are matched on.
    pub on: MatchOn,
    /// Tolerances.
    pub tolerances: Tolerances,
}

/// The full outer join over the reconciliation period, and the invoice's other charge
/// periods against their own usage; lines sorted by tenant, subscription, meter, period.
pub fn join(
    ctx: &JoinContext,
    invoice: &BTreeMap<LineKey, InvoiceItem>,
    computed: &Computed,
) -> Result<Vec<VarianceLine>> {
    let rolled = computed.rolled_up(ctx.on)?;
    // A tenant's name for its lines the invoice does not have (MISSING_IN_INVOICE).
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    for item in invoice.values() {
        if let Some(n) = &item.customer_name {
            names.entry(&item.customer_tenant_id).or_insert(n);
        }
    }
    let mut keys: BTreeSet<&LineKey> = invoice.keys().collect();
    keys.extend(rolled.keys().filter(|k| k.0 == ctx.period));
    let mut out = Vec::new();
    for key in keys {
        let inv = invoice.get(key);
        let comp = rolled.get(key);
        let tenant = inv
            .map(|i| i.customer_tenant_id.clone())
            .or_else(|| comp.map(|c| c.0.clone()))
            .unwrap_or_default();
        let mut l = line(ctx, key, &tenant, inv, comp.map(|c| &c.1))?;
        if l.customer_name.is_none() {
            l.customer_name = names.get(tenant.as_str()).map(|n| n.to_string());
        }
        if (ctx.keep)(&l) {
            out.push(l);
        }
    }
    out.sort_by(|a, b| {
        (
            &a.customer_tenant_id,
            &a.subscription_id,
            &a.meter_id,
            a.charge_period,
        )
            .cmp(&(
                &b.customer_tenant_id,
                &b.subscription_id,
                &b.meter_id,
                b.charge_period,
            ))
    });
    Ok(out)
}

fn line(
    ctx: &JoinContext,
    key: &LineKey,
    tenant: &str,
    inv: Option<&InvoiceItem>,
    comp: Option<&ComputedTotals>,
) -> Result<VarianceLine> {
    let (period, id, meter) = key;
    let unit = inv.and_then(|i| i.unit.clone());
    let computed = match comp {
        Some(c) => {
            let fx = (ctx.fx)(&period.start_month())?;
            Some((
                c.quantity_in(unit.as_deref())?,
                to_billing_currency(c.list_cost_usd, fx)?,
                to_billing_currency(c.cycle_cost_usd, fx)?,
            ))
        }
        None => None,
    };
    let invoice = inv.map(|i| (i.consumed_quantity, i.pretax_charges));
    let (reason, discount) = classify(invoice, computed, ctx.tolerances)?;
    let diff = |a: Option<Dec10>, b: Option<Dec10>| {
        a.unwrap_or_default()
            .checked_sub(b.unwrap_or_default())
            .ok_or_else(|| Error::Overflow {
                context: "computing a variance".into(),
            })
    };
    let (iq, ic) = (invoice.map(|v| v.0), invoice.map(|v| v.1));
    let (cq, cal, cyc) = (
        computed.map(|v| v.0),
        computed.map(|v| v.1),
        computed.map(|v| v.2),
    );
    Ok(VarianceLine {
        customer_tenant_id: tenant.to_string(),
        organization_id: comp
            .map(|c| c.organization_id.clone())
            .or_else(|| (ctx.organization_of)(tenant)),
        customer_name: inv.and_then(|i| i.customer_name.clone()),
        subscription_id: (ctx.on == MatchOn::Subscription).then(|| id.clone()),
        meter_id: meter.clone(),
        meter_name: inv
            .and_then(|i| i.meter_name.clone())
            .or_else(|| comp.and_then(|c| c.meter_name.clone())),
        charge_period: *period,
        currency: ctx.currency.to_string(),
        unit,
        invoice_quantity: iq,
        computed_quantity: cq,
        quantity_difference: diff(iq, cq)?,
        invoice_cost: ic,
        computed_cost_calendar: cal,
        computed_cost_cycle: cyc,
        cost_difference_calendar: diff(ic, cal)?,
        cost_difference_cycle: diff(ic, cyc)?,
        effective_discount_percent: discount,
        reason,
        invoice_lines: inv.map(|i| i.source_lines.clone()).unwrap_or_default(),
        computed_rows: comp.map(|c| c.rows).unwrap_or(0),
    })
}

/// Totals of one customer tenant (or of all, `customer_tenant_id = None`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VarianceSummary {
    /// The tenant; `None` for the total row.
    pub customer_tenant_id: Option<String>,
    /// Its organization.
    pub organization_id: Option<String>,
    /// Its name on the invoice.
    pub customer_name: Option<String>,
    /// Variance lines.
    pub lines: u64,
    /// Sum of `invoice_cost`.
    pub invoice_total: Dec10,
    /// Sum of `computed_cost_calendar`.
    pub computed_total: Dec10,
    /// Sum of `computed_cost_cycle`.
    pub computed_total_cycle: Dec10,
    /// Per reason code: (lines, sum of `cost_difference_calendar`). The amounts add up to
    /// `invoice_total - computed_total`.
    pub explained: BTreeMap<VarianceReason, (u64, Dec10)>,
}

impl VarianceSummary {
    fn add(&mut self, l: &VarianceLine) -> Result<()> {
        const WHAT: &str = "summing the variance summary";
        self.lines += 1;
        add_to(
            &mut self.invoice_total,
            l.invoice_cost.unwrap_or_default(),
            WHAT,
        )?;
        add_to(
            &mut self.computed_total,
            l.computed_cost_calendar.unwrap_or_default(),
            WHAT,
        )?;
        add_to(
            &mut self.computed_total_cycle,
            l.computed_cost_cycle.unwrap_or_default(),
            WHAT,
        )?;
        let e = self.explained.entry(l.reason).or_default();
        e.0 += 1;
        add_to(&mut e.1, l.cost_difference_calendar, WHAT)
    }

    /// `invoice_total - computed_total`.
    pub fn difference(&self) -> Dec10 {
        Dec10(self.invoice_total.0 - self.computed_total.0)
    }
}

/// One summary per customer tenant (in tenant order), then the total.
pub fn summarize(lines: &[VarianceLine]) -> Result<Vec<VarianceSummary>> {
    let mut by_tenant: BTreeMap<&str, VarianceSummary> = BTreeMap::new();
    let mut total = VarianceSummary::default();
    for l in lines {
        let s = by_tenant
            .entry(&l.customer_tenant_id)
            .or_insert_with(|| VarianceSummary {
                customer_tenant_id: Some(l.customer_tenant_id.clone()),
                ..Default::default()
            });
        s.organization_id = s.organization_id.take().or(l.organization_id.clone());
        s.customer_name = s.customer_name.take().or(l.customer_name.clone());
        s.add(l)?;
        total.add(l)?;
    }
    let mut out: Vec<VarianceSummary> = by_tenant.into_values().collect();
    out.push(total);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dec10 {
        Dec10::parse(s).unwrap()
    }

    fn reason(
        inv: Option<(&str, &str)>,
        comp: Option<(&str, &str, &str)>,
    ) -> (String, Option<String>) {
        let (r, disc) = classify(
            inv.map(|(q, c)| (d(q), d(c))),
            comp.map(|(q, a, b)| (d(q), d(a), d(b))),
            Tolerances::default(),
        )
        .unwrap();
        (r.to_string(), disc.map(|v| v.to_string()))
    }

    /// reconciliation.md worked example: 124 GB, computed 9.918 (calendar) / 10.257 (cycle).
    #[test]
    fn worked_example_reason_codes() {
        let comp = Some(("124", "9.918", "10.257"));
        assert_eq!(reason(Some(("124", "10.26")), comp).0, "TIER_PERIOD");
        assert_eq!(reason(Some(("124", "9.92")), comp).0, "MATCHED");
        let (code, disc) = reason(Some(("124", "8.72")), comp);
        assert_eq!(code, "PRICE_DIFFERENCE");
        // 100 * (1 - 8.72 / 10.257) = 14.98488836892..., 15.0 % to one decimal.
        assert_eq!(disc.as_deref(), Some("14.9848883689"));
    }

    #[test]
    fn precedence_and_tolerance_edges() {
        let comp = Some(("10", "1.00", "1.10"));
        assert_eq!(reason(None, comp).0, "MISSING_IN_INVOICE");
        assert_eq!(reason(Some(("10", "1")), None).0, "MISSING_IN_USAGE");
        // Quantity first, even when the cost matches.
        assert_eq!(
            reason(Some(("10.000002", "1")), comp).0,
            "QUANTITY_MISMATCH"
        );
        assert_eq!(reason(Some(("10.000001", "1")), comp).0, "MATCHED");
        // Exactly the cost tolerance still matches; calendar before cycle.
        assert_eq!(reason(Some(("10", "1.005")), comp).0, "MATCHED");
        assert_eq!(reason(Some(("10", "1.0051")), comp).0, "PRICE_DIFFERENCE");
        assert_eq!(reason(Some(("10", "1.105")), comp).0, "TIER_PERIOD");
        let both = Some(("10", "1.00", "1.00"));
        assert_eq!(reason(Some(("10", "1")), both).0, "MATCHED");
        // A free line invoiced at a price has no discount to show.
        assert_eq!(
            reason(Some(("10", "2")), Some(("10", "0", "0"))),
            ("PRICE_DIFFERENCE".into(), None)
        );
        // Negative discount: invoiced above pay-as-you-go.
        assert_eq!(
            reason(Some(("10", "1.32")), comp).1.as_deref(),
            Some("-20.0000000000")
        );
    }

    fn inv_line(
        n: u64,
        tenant: &str,
        sub: Option<&str>,
        meter: &str,
        q: &str,
        c: &str,
    ) -> InvoiceLine {
        InvoiceLine {
            source_line: n,
            customer_tenant_id: tenant.into(),
            customer_name: Some("Contoso".into()),
            invoice_number: None,
            charge_period: Period::new(
                chrono::NaiveDate::from_ymd_opt(2026, 1, 15).unwrap(),
                chrono::NaiveDate::from_ymd_opt(2026, 2, 14).unwrap(),
            )
            .unwrap(),
            subscription_id: sub.map(str::to_string),
            meter_id: meter.into(),
            meter_name: None,
            detail_line_item_id: Some(n.to_string()),
            consumed_quantity: d(q),
            pretax_charges: d(c),
            currency: "USD".into(),
            unit: Some("1 GB".into()),
        }
    }

    const SUB: &str = "6ad487b8-95fe-47a5-92c2-b86c364426b3";

    #[test]
    fn tier_bands_are_summed_per_key_and_period() {
        let lines = [
            inv_line(2, "t", Some("usCBMgAAAAAAAAIA"), "m", "5", "0"),
            inv_line(3, "t", Some("usCBMgAAAAAAAAIA"), "m", "95", "7.60"),
            inv_line(4, "t", Some("usCBMgAAAAAAAAIA"), "m", "24", "1.80"),
            inv_line(5, "t", Some("usCBMgAAAAAAAAIA"), "n", "1", "0.01"),
        ];
        let items = aggregate_invoice(&lines, MatchOn::CustomerTenant, None).unwrap();
        assert_eq!(items.len(), 2);
        let m = items.values().next().unwrap();
        assert_eq!(
            (m.consumed_quantity.to_plain(), m.pretax_charges.to_plain()),
            ("124".into(), "9.4".into())
        );
        assert_eq!(m.source_lines, vec![2, 3, 4]);
        assert_eq!(m.subscription_id, None);
    }

    #[test]
    fn match_on_subscriptions_only_when_every_line_resolves() {
        let rated: BTreeSet<String> = [SUB.to_string()].into();
        let billing = [inv_line(2, "t", Some("usCBMgAAAAAAAAIA"), "m", "1", "1")];
        let (on, why) = choose_match(&billing, None, &rated);
        assert_eq!(on, MatchOn::CustomerTenant);
        assert!(
            why.contains("'usCBMgAAAAAAAAIA' (line 2) is a billing-platform ID"),
            "{why}"
        );
        let map: SubscriptionMap = [("usCBMgAAAAAAAAIA".to_string(), SUB.to_string())].into();
        assert_eq!(
            choose_match(&billing, Some(&map), &rated).0,
            MatchOn::Subscription
        );
        let items = aggregate_invoice(&billing, MatchOn::Subscription, Some(&map)).unwrap();
        assert_eq!(items.keys().next().unwrap().1, SUB);
        let guids = [inv_line(2, "t", Some(SUB), "m", "1", "1")];
        assert_eq!(choose_match(&guids, None, &rated).0, MatchOn::Subscription);
        assert_eq!(
            choose_match(&guids, None, &BTreeSet::new()).0,
            MatchOn::CustomerTenant
        );
        let unmapped = [
            inv_line(2, "t", Some("usCBMgAAAAAAAAIA"), "m", "1", "1"),
            inv_line(3, "t", Some("other"), "m", "1", "1"),
        ];
        let (on, why) = choose_match(&unmapped, Some(&map), &rated);
        assert_eq!(on, MatchOn::CustomerTenant);
        assert!(why.contains("'other' (line 3) is not in --subscription-map"));
    }

    #[test]
    fn computed_quantity_in_the_invoice_unit() {
        let mut t = ComputedTotals::default();
        t.consumed_by_unit.insert("Hours".into(), d("72"));
        t.consumed_by_unit.insert("1 Hour".into(), d("28"));
        assert_eq!(t.quantity_in(Some("100 Hours")).unwrap().to_plain(), "1");
        assert_eq!(t.quantity_in(None).unwrap().to_plain(), "100");
        assert_eq!(t.quantity_in(Some("1 GB")).unwrap().to_plain(), "100");
    }
}
