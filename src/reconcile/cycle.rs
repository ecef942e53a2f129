//! `computed_cost_cycle` (reconciliation.md): the same rated usage re-tiered over an
//! invoice's own charge period instead of the calendar month, as rating with
//! `tier_period = billing_cycle` would (rating.md §4, §6). The tier math is the rating
//! engine's: each row's price version comes from [`PriceBook::version_at`] and its cost from
//! [`TierLadder::allocate`](crate::pricing::tiers::TierLadder::allocate) on the running total of
//! its scope, so no second implementation of tiers exists.
//!
//! Only rated rows are re-tiered: a record quarantined by `rate` did not accumulate on the
//! calendar ladder and does not accumulate here either.

use crate::error::{Error, Result};
use crate::model::decimal::Dec10;
use crate::model::tier::TierScope;
use crate::model::time::days_to_date;
use crate::pricing::price_book::PriceBook;
use crate::reconcile::extract::RatedUsage;
use crate::reconcile::ReconcileError;
use rayon::prelude::*;
use std::collections::HashMap;

/// The USD cost of each row when the rows' tier scopes accumulate from zero at the start of
/// the period (`rows` are exactly the period's rows). Costs come back in the order of `rows`.
///
/// Within a scope rows are taken in the engine's order as far as `costs/` records it:
/// `ChargePeriodStart`, `ChargePeriodEnd`, `SubAccountId`, then file order. The engine
/// breaks remaining ties by resource URI and natural key, which `costs/` does not repeat;
/// rows still tied here share start, end and subscription, so they sit next to each other in
/// both orders and belong to the same reconciliation line: every line total is the one the
/// engine's order would give.
pub fn retier_costs(rows: &[&RatedUsage], book: &PriceBook) -> Result<Vec<Dec10>> {
    let mut scopes: HashMap<(&str, &str, &str), Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let scope_id = match r.tier_scope {
            TierScope::Subscription => r.subscription_id.as_str(),
            TierScope::Customer => r.customer_tenant_id.as_str(),
            TierScope::Organization => &*r.organization_id,
        };
        scopes
            .entry((r.tier_scope.as_str(), scope_id, r.meter_id.as_str()))
            .or_default()
            .push(i);
    }
    let groups: Vec<Vec<usize>> = scopes.into_values().collect();
    let priced: Vec<Vec<(usize, Dec10)>> = groups
        .into_par_iter()
        .map(|mut idx| {
            // Stable sort: file order breaks the remaining ties.
            idx.sort_by_key(|&i| {
                let r = rows[i];
                (
                    r.charge_period_start,
                    r.charge_period_end,
                    r.subscription_id.as_str(),
                )
            });
            retier_scope(rows, &idx, book)
        })
        .collect::<Result<_>>()?;
    let mut costs = vec![Dec10::ZERO; rows.len()];
    for (i, c) in priced.into_iter().flatten() {
        costs[i] = c;
    }
    Ok(costs)
}

/// One scope's rows, already in order: running total from zero, telescoped tier cost.
fn retier_scope(
    rows: &[&RatedUsage],
    order: &[usize],
    book: &PriceBook,
) -> Result<Vec<(usize, Dec10)>> {
    let overflow = || Error::Overflow {
        context: "re-tiering a scope over the charge period".into(),
    };
    let mut cum = Dec10::ZERO;
    let mut out = Vec::with_capacity(order.len());
    for &i in order {
        let r = rows[i];
        let version = book.version_at(&r.meter_id, r.usage_date);
        let stale = |now: String| ReconcileError::StalePrices {
            meter: r.meter_id.clone(),
            day: days_to_date(r.usage_date).to_string(),
            rated: r
                .price_effective_start
                .map(|d| days_to_date(d).to_string())
                .unwrap_or_else(|| "unknown".into()),
            now,
        };
        let Some(version) = version else {
            return Err(stale("no price".into()).into());
        };
        if r.price_effective_start
            .is_some_and(|d| d != version.effective_start)
        {
            return Err(stale(days_to_date(version.effective_start).to_string()).into());
        }
        let ladder = version
            .ladder
            .as_ref()
            .map_err(|_| stale("a price conflict".into()))?;
        let after = cum.checked_add(r.pricing_quantity).ok_or_else(overflow)?;
        let cost = ladder.allocate(cum, after).map_err(|_| overflow())?.cost;
        out.push((i, cost));
        cum = after;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::price::PriceRow;
    use crate::model::time::date_to_days;
    use chrono::NaiveDate;
    use std::sync::Arc;

    fn day(s: &str) -> i32 {
        date_to_days(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
    }

    fn tier(min: &str, price: &str, eff: &str) -> PriceRow {
        PriceRow {
            sku_id: "sku".into(),
            is_primary_meter_region: Some(true),
            ..PriceRow::usd_consumption(
                "m",
                "1 GB",
                day(eff),
                Dec10::parse(min).unwrap(),
                Dec10::parse(price).unwrap(),
            )
        }
    }

    /// Ladder L1 (rating.md §7).
    fn l1() -> PriceBook {
        PriceBook::build(&[
            tier("0", "0", "2026-01-01"),
            tier("5", "0.087", "2026-01-01"),
            tier("100", "0.083", "2026-01-01"),
        ])
    }

    fn gb(sub: &str, d: i32, q: &str, eff: &str) -> RatedUsage {
        let micros = d as i64 * 86_400_000_000;
        RatedUsage {
            organization_id: Arc::from("o"),
            billing_currency: Arc::from("USD"),
            customer_tenant_id: "t".into(),
            subscription_id: sub.into(),
            meter_id: "m".into(),
            meter_name: None,
            usage_date: d,
            charge_period_start: micros,
            charge_period_end: micros + 86_400_000_000,
            pricing_quantity: Dec10::parse(q).unwrap(),
            pricing_unit: "1 GB".into(),
            consumed_quantity: Dec10::parse(q).unwrap(),
            consumed_unit: "1 GB".into(),
            list_cost_usd: Dec10::ZERO,
            list_cost: Dec10::ZERO,
            billed_cost: Dec10::ZERO,
            tier_scope: TierScope::Subscription,
            price_effective_start: Some(day(eff)),
        }
    }

    fn sum(v: &[Dec10]) -> String {
        Dec10(v.iter().map(|c| c.0).sum()).to_plain()
    }

    /// reconciliation.md worked example: 4 GB a day from 2026-01-15 to 2026-02-14.
    #[test]
    fn worked_example_cycle_and_calendar() {
        let book = l1();
        let rows: Vec<RatedUsage> = (day("2026-01-15")..=day("2026-02-14"))
            .map(|d| gb("s", d, "4", "2026-01-01"))
            .collect();
        let all: Vec<&RatedUsage> = rows.iter().collect();
        assert_eq!(sum(&retier_costs(&all, &book).unwrap()), "10.257");
        // The calendar months re-tiered on their own are what `rate` wrote: 5.481 + 4.437.
        let (jan, feb): (Vec<&RatedUsage>, Vec<&RatedUsage>) =
            all.iter().partition(|r| r.usage_date < day("2026-02-01"));
        assert_eq!(sum(&retier_costs(&jan, &book).unwrap()), "5.481");
        assert_eq!(sum(&retier_costs(&feb, &book).unwrap()), "4.437");
    }

    #[test]
    fn scopes_accumulate_apart_and_in_time_order() {
        let book = l1();
        // Given out of order: day 2 first. Scope s accumulates 3 then 4 (7 -> 2 * 0.087).
        let rows = [
            gb("s", day("2026-01-02"), "4", "2026-01-01"),
            gb("s", day("2026-01-01"), "3", "2026-01-01"),
            gb("u", day("2026-01-01"), "6", "2026-01-01"),
        ];
        let refs: Vec<&RatedUsage> = rows.iter().collect();
        let c = retier_costs(&refs, &book).unwrap();
        assert_eq!(
            (c[0].to_plain(), c[1].to_plain(), c[2].to_plain()),
            ("0.174".into(), "0".into(), "0.087".into())
        );
        let mut customer = rows.clone();
        for r in &mut customer {
            r.tier_scope = TierScope::Customer;
        }
        let refs: Vec<&RatedUsage> = customer.iter().collect();
        // One ladder for tenant t: day 1 (s 3, u 6 -> 9) then day 2 (+4 -> 13): 8 * 0.087.
        assert_eq!(sum(&retier_costs(&refs, &book).unwrap()), "0.696");
    }

    #[test]
    fn rows_rated_with_another_price_version_are_refused() {
        let rows = [gb("s", day("2026-01-05"), "4", "2025-06-01")];
        let refs: Vec<&RatedUsage> = rows.iter().collect();
        let e = retier_costs(&refs, &l1()).unwrap_err();
        assert_eq!(e.to_string(), "costs/ rows of meter m dated 2026-01-05 were rated with the price version effective 2025-06-01, but the staged prices now give 2026-01-01: run `cspcost rate` before reconciling");
        let early = [gb("s", day("2025-12-31"), "4", "2025-06-01")];
        let refs: Vec<&RatedUsage> = early.iter().collect();
        assert!(retier_costs(&refs, &l1())
            .unwrap_err()
            .to_string()
            .contains("now give no price"));
    }
}
