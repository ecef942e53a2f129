//! The extract (reconciliation.md "Extract for any period"): rated `Usage` rows of
//! `costs/` selected by `x_UsageDate`, reading only the month partitions the period touches,
//! summed into one line per organization, customer tenant, subscription and meter (plus the
//! usage date at the daily grain). Sums are exact (scale 10); rounding to a currency's minor
//! unit happens only when the per-organization summary is shown.

use crate::emit::costs::{col, for_each_cost_batch, partition_value};
use crate::error::{Error, Result};
use crate::model::decimal::Dec10;
use crate::model::schema::{opt_dec, opt_str, Cols};
use crate::model::tier::TierScope;
use crate::store::Lake;
use arrow::array::Array;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// The `costs/` columns a reconciliation reads; the rest of the partition is never decoded.
const COLUMNS: [&str; 19] = [
    col::BILLING_ACCOUNT_ID,
    col::BILLING_CURRENCY,
    col::CHARGE_CATEGORY,
    col::CHARGE_DESCRIPTION,
    col::CHARGE_PERIOD_START,
    col::CHARGE_PERIOD_END,
    col::CUSTOMER_TENANT_ID,
    col::SUB_ACCOUNT_ID,
    col::METER_ID,
    col::USAGE_DATE,
    col::PRICING_QUANTITY,
    col::PRICING_UNIT,
    col::CONSUMED_QUANTITY,
    col::CONSUMED_UNIT,
    col::LIST_COST_USD,
    col::LIST_COST,
    col::BILLED_COST,
    col::TIER_SCOPE,
    col::PRICE_EFFECTIVE_START,
];

/// One rated usage row, as much of it as reconciliation needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RatedUsage {
    /// `BillingAccountId` (organization).
    pub organization_id: Arc<str>,
    /// `BillingCurrency`.
    pub billing_currency: Arc<str>,
    /// `x_CustomerTenantId`.
    pub customer_tenant_id: String,
    /// `SubAccountId`.
    pub subscription_id: String,
    /// `x_MeterId`.
    pub meter_id: String,
    /// `ChargeDescription` (meter name).
    pub meter_name: Option<String>,
    /// `x_UsageDate`, days since the epoch.
    pub usage_date: i32,
    /// `ChargePeriodStart`, µs since the epoch.
    pub charge_period_start: i64,
    /// `ChargePeriodEnd`, µs since the epoch.
    pub charge_period_end: i64,
    /// `PricingQuantity`.
    pub pricing_quantity: Dec10,
    /// `PricingUnit`.
    pub pricing_unit: String,
    /// `ConsumedQuantity`.
    pub consumed_quantity: Dec10,
    /// `ConsumedUnit`.
    pub consumed_unit: String,
    /// `x_ListCostUsd`.
    pub list_cost_usd: Dec10,
    /// `ListCost`.
    pub list_cost: Dec10,
    /// `BilledCost`.
    pub billed_cost: Dec10,
    /// `x_TierScope`: what accumulated on one ladder when the row was rated.
    pub tier_scope: TierScope,
    /// `x_PriceEffectiveStart`, days since the epoch.
    pub price_effective_start: Option<i32>,
}

/// `total += v`, failing instead of wrapping.
pub fn add_to(total: &mut Dec10, v: Dec10, context: &str) -> Result<()> {
    *total = total.checked_add(v).ok_or_else(|| Error::Overflow {
        context: context.to_string(),
    })?;
    Ok(())
}

/// The `org=<id>` directories under `costs/`, sorted; only the one of `org` when given.
pub fn organization_dirs(lake: &Lake, org: Option<&str>) -> Result<Vec<String>> {
    let wanted = org.map(|o| format!("org={}", partition_value(o)));
    Ok(lake
        .list_dir("costs")?
        .into_iter()
        .filter(|d| d.starts_with("org="))
        .filter(|d| wanted.as_ref().is_none_or(|w| w == d))
        .collect())
}

/// Rated `Usage` rows of one organization directory in `months`, keeping those whose usage
/// date passes `keep`. Files are read in path order and rows in file order, so the result
/// is the same on every run.
pub fn load_rated_usage(
    lake: &Lake,
    org_dir: &str,
    months: &[String],
    keep: &dyn Fn(i32) -> bool,
) -> Result<Vec<RatedUsage>> {
    let mut rows = Vec::new();
    for month in months {
        let dir = format!("costs/{org_dir}/month={month}");
        for_each_cost_batch(lake, &dir, &COLUMNS, |_, batch| {
            read_batch(batch, keep, &mut rows)
        })?;
    }
    Ok(rows)
}

fn read_batch(
    batch: &arrow::array::RecordBatch,
    keep: &dyn Fn(i32) -> bool,
    out: &mut Vec<RatedUsage>,
) -> Result<()> {
    let c = Cols(batch);
    let (org, currency, category) = (
        c.str(col::BILLING_ACCOUNT_ID)?,
        c.str(col::BILLING_CURRENCY)?,
        c.str(col::CHARGE_CATEGORY)?,
    );
    let (name, start, end) = (
        c.str(col::CHARGE_DESCRIPTION)?,
        c.ts(col::CHARGE_PERIOD_START)?,
        c.ts(col::CHARGE_PERIOD_END)?,
    );
    let (tenant, sub, meter, day) = (
        c.str(col::CUSTOMER_TENANT_ID)?,
        c.str(col::SUB_ACCOUNT_ID)?,
        c.str(col::METER_ID)?,
        c.date(col::USAGE_DATE)?,
    );
    let (pq, pu, cq, cu) = (
        c.dec(col::PRICING_QUANTITY)?,
        c.str(col::PRICING_UNIT)?,
        c.dec(col::CONSUMED_QUANTITY)?,
        c.str(col::CONSUMED_UNIT)?,
    );
    let (usd, list, billed, scope) = (
        c.dec(col::LIST_COST_USD)?,
        c.dec(col::LIST_COST)?,
        c.dec(col::BILLED_COST)?,
        c.str(col::TIER_SCOPE)?,
    );
    let eff = c.date(col::PRICE_EFFECTIVE_START)?;
    let text = |a: &arrow::array::StringArray, i: usize| opt_str(a, i).unwrap_or("").to_string();
    let mut org_arc: Arc<str> = Arc::from("");
    let mut cur_arc: Arc<str> = Arc::from("");
    for i in 0..batch.num_rows() {
        if opt_str(category, i) != Some("Usage") || day.is_null(i) || !keep(day.value(i)) {
            continue;
        }
        // Every row of a partition shares its organization and currency: share the text.
        if *org_arc != *org.value(i) {
            org_arc = Arc::from(org.value(i));
        }
        if *cur_arc != *currency.value(i) {
            cur_arc = Arc::from(currency.value(i));
        }
        out.push(RatedUsage {
            organization_id: org_arc.clone(),
            billing_currency: cur_arc.clone(),
            customer_tenant_id: text(tenant, i),
            subscription_id: text(sub, i),
            meter_id: text(meter, i),
            meter_name: opt_str(name, i).map(str::to_string),
            usage_date: day.value(i),
            charge_period_start: if start.is_null(i) { 0 } else { start.value(i) },
            charge_period_end: if end.is_null(i) { 0 } else { end.value(i) },
            pricing_quantity: Dec10(opt_dec(pq, i).unwrap_or(0)),
            pricing_unit: text(pu, i),
            consumed_quantity: Dec10(opt_dec(cq, i).unwrap_or(0)),
            consumed_unit: text(cu, i),
            list_cost_usd: Dec10(opt_dec(usd, i).unwrap_or(0)),
            list_cost: Dec10(list.value(i)),
            billed_cost: Dec10(billed.value(i)),
            tier_scope: opt_str(scope, i)
                .and_then(TierScope::parse)
                .unwrap_or_default(),
            price_effective_start: (!eff.is_null(i)).then(|| eff.value(i)),
        });
    }
    Ok(())
}

/// What one extract line groups by.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExtractKey {
    /// Organization.
    pub organization_id: String,
    /// Customer tenant.
    pub customer_tenant_id: String,
    /// Subscription.
    pub subscription_id: String,
    /// Meter.
    pub meter_id: String,
    /// Usage date (days since the epoch) at the daily grain, `None` otherwise.
    pub usage_date: Option<i32>,
    /// Billing currency (constant per organization; in the key so that a currency change
    /// between months can never add two currencies together).
    pub billing_currency: String,
}

/// Exact sums of one extract line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtractTotals {
    /// Rated rows summed.
    pub rows: u64,
    /// Sum of `PricingQuantity`.
    pub pricing_quantity: Dec10,
    /// Distinct price units of those rows (one, unless the meter's unit changed).
    pub pricing_units: BTreeSet<String>,
    /// Sum of `x_ListCostUsd`.
    pub list_cost_usd: Dec10,
    /// Sum of `ListCost`.
    pub list_cost: Dec10,
    /// Sum of `BilledCost`.
    pub billed_cost: Dec10,
}

impl ExtractTotals {
    /// Add `rows` rows with these sums: `[PricingQuantity, x_ListCostUsd, ListCost, BilledCost]`.
    fn add_sums(&mut self, rows: u64, sums: [Dec10; 4]) -> Result<()> {
        const WHAT: &str = "summing the reconciliation extract";
        self.rows += rows;
        let totals = [
            &mut self.pricing_quantity,
            &mut self.list_cost_usd,
            &mut self.list_cost,
            &mut self.billed_cost,
        ];
        for (total, v) in totals.into_iter().zip(sums) {
            add_to(total, v, WHAT)?;
        }
        Ok(())
    }

    fn add(&mut self, r: &RatedUsage) -> Result<()> {
        if !self.pricing_units.contains(&r.pricing_unit) {
            self.pricing_units.insert(r.pricing_unit.clone());
        }
        let sums = [
            r.pricing_quantity,
            r.list_cost_usd,
            r.list_cost,
            r.billed_cost,
        ];
        self.add_sums(1, sums)
    }

    fn merge(&mut self, o: ExtractTotals) -> Result<()> {
        let sums = [
            o.pricing_quantity,
            o.list_cost_usd,
            o.list_cost,
            o.billed_cost,
        ];
        self.pricing_units.extend(o.pricing_units);
        self.add_sums(o.rows, sums)
    }
}

/// Totals of one organization over the period (exact; rounded only when shown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgSummary {
    /// Organization.
    pub organization_id: String,
    /// Billing currency.
    pub billing_currency: String,
    /// Extract lines.
    pub lines: u64,
    /// Rated rows.
    pub rows: u64,
    /// Sum of `x_ListCostUsd`.
    pub list_cost_usd: Dec10,
    /// Sum of `ListCost`.
    pub list_cost: Dec10,
    /// Sum of `BilledCost`.
    pub billed_cost: Dec10,
}

/// The extract being built, in its deterministic order (the key order).
#[derive(Debug, Default)]
pub struct Extract {
    /// Lines by key.
    pub lines: BTreeMap<ExtractKey, ExtractTotals>,
}

impl Extract {
    /// Add the rows of one organization (`daily`: key by usage date too).
    pub fn add_rows<'a>(
        &mut self,
        rows: impl IntoIterator<Item = &'a RatedUsage>,
        daily: bool,
    ) -> Result<()> {
        // Group on borrowed keys first: one owned key per line, not per row.
        type Borrowed<'r> = (&'r str, &'r str, &'r str, &'r str, Option<i32>, &'r str);
        let mut local: HashMap<Borrowed<'a>, ExtractTotals> = HashMap::new();
        for r in rows {
            let key = (
                &*r.organization_id,
                r.customer_tenant_id.as_str(),
                r.subscription_id.as_str(),
                r.meter_id.as_str(),
                daily.then_some(r.usage_date),
                &*r.billing_currency,
            );
            local.entry(key).or_default().add(r)?;
        }
        for ((org, tenant, sub, meter, day, currency), totals) in local {
            let key = ExtractKey {
                organization_id: org.to_string(),
                customer_tenant_id: tenant.to_string(),
                subscription_id: sub.to_string(),
                meter_id: meter.to_string(),
                usage_date: day,
                billing_currency: currency.to_string(),
            };
            self.lines.entry(key).or_default().merge(totals)?;
        }
        Ok(())
    }

    /// Totals per organization (and currency), in organization order.
    pub fn summary(&self) -> Result<Vec<OrgSummary>> {
        const WHAT: &str = "summing the reconciliation summary";
        let mut by_org: BTreeMap<(&str, &str), OrgSummary> = BTreeMap::new();
        for (k, t) in &self.lines {
            let s = by_org
                .entry((&k.organization_id, &k.billing_currency))
                .or_insert_with(|| OrgSummary {
                    organization_id: k.organization_id.clone(),
                    billing_currency: k.billing_currency.clone(),
                    lines: 0,
                    rows: 0,
                    list_cost_usd: Dec10::ZERO,
                    list_cost: Dec10::ZERO,
                    billed_cost: Dec10::ZERO,
                });
            s.lines += 1;
            s.rows += t.rows;
            add_to(&mut s.list_cost_usd, t.list_cost_usd, WHAT)?;
            add_to(&mut s.list_cost, t.list_cost, WHAT)?;
            add_to(&mut s.billed_cost, t.billed_cost, WHAT)?;
        }
        Ok(by_org.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn row(tenant: &str, sub: &str, day: i32, usd: &str) -> RatedUsage {
        let d = |s: &str| Dec10::parse(s).unwrap();
        RatedUsage {
            organization_id: Arc::from("contoso"),
            billing_currency: Arc::from("EUR"),
            customer_tenant_id: tenant.into(),
            subscription_id: sub.into(),
            meter_id: "m".into(),
            meter_name: None,
            usage_date: day,
            charge_period_start: day as i64 * 86_400_000_000,
            charge_period_end: (day as i64 + 1) * 86_400_000_000,
            pricing_quantity: d("1.5"),
            pricing_unit: "1 GB".into(),
            consumed_quantity: d("1.5"),
            consumed_unit: "1 GB".into(),
            list_cost_usd: d(usd),
            list_cost: d(usd),
            billed_cost: d(usd),
            tier_scope: TierScope::Subscription,
            price_effective_start: Some(0),
        }
    }

    #[test]
    fn lines_group_by_key_and_daily_adds_the_date() {
        let rows = [
            row("t1", "s1", 10, "0.1"),
            row("t1", "s1", 11, "0.2"),
            row("t1", "s2", 11, "0.3"),
        ];
        let mut per_line = Extract::default();
        per_line.add_rows(&rows, false).unwrap();
        let got: Vec<(String, u64, String)> = per_line
            .lines
            .iter()
            .map(|(k, t)| {
                (
                    k.subscription_id.clone(),
                    t.rows,
                    t.list_cost_usd.to_plain(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("s1".into(), 2, "0.3".into()),
                ("s2".into(), 1, "0.3".into())
            ]
        );
        let mut daily = Extract::default();
        daily.add_rows(&rows, true).unwrap();
        assert_eq!(daily.lines.len(), 3);
        let s = daily.summary().unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].lines, s[0].rows), (3, 3));
        assert_eq!(s[0].billed_cost.to_plain(), "0.6");
        assert_eq!(
            daily
                .lines
                .values()
                .next()
                .unwrap()
                .pricing_quantity
                .to_plain(),
            "1.5"
        );
    }
}
