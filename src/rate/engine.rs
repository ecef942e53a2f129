//! The rating engine (rating.md §2-5): classify each staged record (the first quarantine
//! reason that applies, in README order), group the rest by tier scope, accumulate each scope
//! in its deterministic order, telescope the tier cost, then convert with Microsoft's FX rate
//! and apply the organization's adjustment. Scopes are rated in parallel with rayon; the
//! result does not depend on thread count, batch sizes or arrival order.

use crate::error::{Error, Result};
use crate::model::billing::Reseller;
use crate::model::decimal::Dec10;
use crate::model::reason::{QuarantineRecord, ReasonCode};
use crate::model::reference::{Organization, Reference, TenantMapping};
use crate::model::tier::{TierPeriod, TierScope};
use crate::model::time::{date_to_days, days_to_date};
use crate::model::units::Unit;
use crate::model::usage::UsageRecord;
use crate::pricing::fx::to_billing_currency;
use crate::pricing::markup::apply_percent;
use crate::pricing::price_book::{PriceBook, PriceVersion};
use crate::pricing::rated::RatedRow;
use crate::pricing::tiers::TierLadder;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};

/// Everything a month is rated against.
pub struct RateContext<'a> {
    /// Reference data.
    pub reference: &'a Reference,
    /// Prices.
    pub book: &'a PriceBook,
    /// Scope.
    pub scope: TierScope,
    /// Period.
    pub period: TierPeriod,
}

/// A month's outcome.
pub struct MonthRating<'a> {
    /// Rated rows of the month (unsorted).
    pub rows: Vec<RatedRow<'a>>,
    /// Quarantined records of the month.
    pub quarantine: Vec<QuarantineRecord>,
}

struct Prepared<'a> {
    rec: &'a UsageRecord,
    mapping: &'a TenantMapping,
    org: &'a Organization,
    reseller: Option<&'a Reseller>,
    version: &'a PriceVersion,
    ladder: &'a TierLadder,
    pricing_quantity: Dec10,
    fx: Dec10,
    emit: bool,
}

fn quarantine(rec: &UsageRecord, reason: ReasonCode, detail: String) -> Box<QuarantineRecord> {
    Box::new(QuarantineRecord {
        reason,
        detail,
        source_file: rec.source_file.clone(),
        source_row: rec.source_row,
        raw: rec.raw.clone(),
        customer_tenant_id: Some(rec.customer_tenant_id.clone()),
        subscription_id: Some(rec.subscription_id.clone()),
        meter_id: Some(rec.meter_id.clone()),
        usage_date: Some(days_to_date(rec.usage_date)),
    })
}

/// Unit strings parsed once per month.
type UnitCache = HashMap<String, Unit>;

/// The tenant's registration and organization, and the transfer date check.
#[allow(
    clippy::result_large_err,
    reason = "as classify: the Err side is one rejected record's quarantine record"
)]
fn owner<'a>(
    ctx: &'a RateContext,
    rec: &UsageRecord,
    day: chrono::NaiveDate,
) -> std::result::Result<(&'a TenantMapping, &'a Organization), Box<QuarantineRecord>> {
    let r = ctx.reference;
    let Some(mapping) = r.tenants.get(&rec.customer_tenant_id) else {
        return Err(quarantine(
            rec,
            ReasonCode::UnmappedTenant,
            format!(
                "customer tenant {} is not registered to an organization (cspcost tenants add)",
                rec.customer_tenant_id
            ),
        ));
    };
    let Some(org) = r.organizations.get(&mapping.organization_id) else {
        return Err(quarantine(
            rec,
            ReasonCode::UnmappedTenant,
            format!(
                "customer tenant {} maps to unknown organization '{}'",
                rec.customer_tenant_id, mapping.organization_id
            ),
        ));
    };
    if let Some(on) = r.transfers.get(&rec.subscription_id) {
        if day < *on {
            return Err(quarantine(
                rec,
                ReasonCode::BeforeTransfer,
                format!(
                    "usage date {day} is before subscription {} was transferred in on {on}",
                    rec.subscription_id
                ),
            ));
        }
    }
    Ok((mapping, org))
}

/// The price version in effect for the record, with its ladder.
#[allow(
    clippy::result_large_err,
    reason = "as classify: the Err side is one rejected record's quarantine record"
)]
fn price_in_effect<'a>(
    ctx: &'a RateContext,
    rec: &UsageRecord,
) -> std::result::Result<(&'a PriceVersion, &'a TierLadder), Box<QuarantineRecord>> {
    let day = days_to_date(rec.usage_date);
    let Some(version) = ctx.book.version_at(&rec.meter_id, rec.usage_date) else {
        return Err(quarantine(
            rec,
            ReasonCode::NoPrice,
            format!(
                "no USD Consumption price for meter {} is in effect on {day}",
                rec.meter_id
            ),
        ));
    };
    let ladder = match &version.ladder {
        Ok(l) => l,
        Err(why) => {
            return Err(quarantine(
                rec,
                ReasonCode::PriceConflict,
                format!(
                    "price version of meter {} effective {}: {why}",
                    rec.meter_id,
                    days_to_date(version.effective_start)
                ),
            ));
        }
    };
    Ok((version, ladder))
}

/// The record's quantity in the price's unit.
#[allow(
    clippy::result_large_err,
    reason = "as classify: the Err side is one rejected record's quarantine record"
)]
fn pricing_quantity(
    rec: &UsageRecord,
    version: &PriceVersion,
    units: &UnitCache,
) -> std::result::Result<Dec10, Box<QuarantineRecord>> {
    Ok(match rec.unit.as_deref() {
        None => rec.quantity,
        Some(u) => {
            let usage_unit = units.get(u).cloned().unwrap_or_else(|| Unit::parse(u));
            match usage_unit.convert(rec.quantity, &version.unit) {
                Some(q) => q,
                None => {
                    return Err(quarantine(
                        rec,
                        ReasonCode::UnitMismatch,
                        format!(
                            "usage unit '{u}' ({}) and price unit '{}' ({}) have different bases",
                            usage_unit.base, version.unit_text, version.unit.base
                        ),
                    ))
                }
            }
        }
    })
}

/// The first reason that applies, or the record ready for its ladder.
#[allow(
    clippy::result_large_err,
    reason = "the Err side is the quarantine record of one rejected record, built once; boxing it buys nothing"
)]
fn classify<'a>(
    ctx: &'a RateContext,
    rec: &'a UsageRecord,
    month: &str,
    units: &UnitCache,
) -> std::result::Result<Prepared<'a>, Box<QuarantineRecord>> {
    let day = days_to_date(rec.usage_date);
    if rec.quantity.is_negative() {
        return Err(quarantine(
            rec,
            ReasonCode::NegativeQuantity,
            format!("quantity {} is below zero", rec.quantity.to_plain()),
        ));
    }
    let (mapping, org) = owner(ctx, rec, day)?;
    let r = ctx.reference;
    let (version, ladder) = price_in_effect(ctx, rec)?;
    let pricing_quantity = pricing_quantity(rec, version, units)?;
    let Some(fx) = r.fx_usd_per_unit(&org.billing_currency, month) else {
        return Err(quarantine(rec, ReasonCode::NoFxRate, format!("no FX rate for {} in {month} (organization {}): ingest Microsoft's fx_rates file for that month", org.billing_currency, org.id)));
    };
    Ok(Prepared {
        rec,
        mapping,
        org,
        reseller: r.billing.reseller_of(&org.id),
        version,
        ladder,
        pricing_quantity,
        fx,
        emit: true,
    })
}

/// The deterministic order of records inside a scope (rating.md §4).
pub fn scope_order(a: &UsageRecord, b: &UsageRecord) -> std::cmp::Ordering {
    (
        a.usage_start,
        a.usage_end,
        &a.subscription_id,
        &a.resource_uri,
        &a.additional_info,
        a.key_hash,
        &a.source_file,
        a.source_row,
    )
        .cmp(&(
            b.usage_start,
            b.usage_end,
            &b.subscription_id,
            &b.resource_uri,
            &b.additional_info,
            b.key_hash,
            &b.source_file,
            b.source_row,
        ))
}

/// The ID of the scope whose ladder a prepared record climbs.
fn scope_id<'a>(scope: TierScope, p: &Prepared<'a>) -> &'a str {
    match scope {
        TierScope::Subscription => p.rec.subscription_id.as_str(),
        TierScope::Customer => p.rec.customer_tenant_id.as_str(),
        TierScope::Organization => p.org.id.as_str(),
    }
}

fn rate_scope<'a>(mut items: Vec<Prepared<'a>>) -> Result<Vec<RatedRow<'a>>> {
    items.sort_by(|a, b| scope_order(a.rec, b.rec));
    let mut ladder = Ladder::default();
    let mut out = Vec::with_capacity(items.len());
    for p in items {
        out.extend(ladder.climb(p)?);
    }
    Ok(out)
}

/// One ladder's running sum (rating.md §4-5): each record in the scope's order climbs it.
#[derive(Default)]
struct Ladder {
    cum: Dec10,
}

impl Ladder {
    /// Climb the ladder with one prepared record; its rated row when it is emitted.
    fn climb<'a>(&mut self, p: Prepared<'a>) -> Result<Option<RatedRow<'a>>> {
        let overflow = || Error::Overflow {
            context: "accumulating a tier scope".into(),
        };
        let cum = self.cum;
        let after = cum.checked_add(p.pricing_quantity).ok_or_else(overflow)?;
        let alloc = p.ladder.allocate(cum, after).map_err(|_| overflow())?;
        self.cum = after;
        if !p.emit {
            return Ok(None);
        }
        let list_cost = to_billing_currency(alloc.cost, p.fx)?;
        // billing.md: under a reseller the customer's adjustment applies to what the
        // partner invoices the reseller, each step rounded to 10 decimals.
        let (reseller_cost, billed_cost) = match p.reseller {
            Some(r) => {
                let rc = apply_percent(list_cost, r.consumption_markup_percent)?;
                (
                    Some(rc),
                    apply_percent(rc, p.org.consumption_adjustment_percent)?,
                )
            }
            None => (
                None,
                apply_percent(list_cost, p.org.consumption_adjustment_percent)?,
            ),
        };
        Ok(Some(RatedRow {
            rec: p.rec,
            mapping: p.mapping,
            org: p.org,
            reseller: p.reseller,
            version: p.version,
            pricing_quantity: p.pricing_quantity,
            cum_before: cum,
            cum_after: after,
            tier_first_minimum: alloc.first_minimum,
            tier_last_minimum: alloc.last_minimum,
            list_cost_usd: alloc.cost,
            fx_usd_per_unit: p.fx,
            list_cost,
            billed_cost,
            reseller_cost,
            list_unit_price: to_billing_currency(alloc.unit_price, p.fx)?,
            list_unit_price_usd: alloc.unit_price,
        }))
    }
}

/// Rate one month. `records` are the month's staged records; `earlier` are records of the
/// same tier period dated before the month (billing-cycle tiers), which accumulate but are
/// neither emitted nor counted.
pub fn rate_month<'a>(
    ctx: &'a RateContext,
    month: &str,
    records: &'a [UsageRecord],
    earlier: &'a [UsageRecord],
) -> Result<MonthRating<'a>> {
    let mut units: UnitCache = HashMap::new();
    for r in records.iter().chain(earlier) {
        if let Some(u) = &r.unit {
            if !units.contains_key(u) {
                units.insert(u.clone(), Unit::parse(u));
            }
        }
    }
    let earlier_month = |r: &UsageRecord| crate::model::time::month_of(days_to_date(r.usage_date));
    let classified: Vec<(bool, std::result::Result<Prepared, Box<QuarantineRecord>>)> = records
        .par_iter()
        .map(|r| (true, classify(ctx, r, month, &units)))
        .chain(
            earlier
                .par_iter()
                .map(|r| (false, classify(ctx, r, &earlier_month(r), &units))),
        )
        .collect();
    let mut quarantine = Vec::new();
    let mut scopes: HashMap<(&str, &str, i32), Vec<Prepared>> = HashMap::new();
    for (emit, c) in classified {
        match c {
            Ok(mut p) => {
                p.emit = emit;
                let scope_id = scope_id(ctx.scope, &p);
                let period = date_to_days(ctx.period.period_start(days_to_date(p.rec.usage_date)));
                scopes
                    .entry((scope_id, p.rec.meter_id.as_str(), period))
                    .or_default()
                    .push(p);
            }
            Err(q) if emit => quarantine.push(*q),
            Err(_) => {}
        }
    }
    let groups: Vec<Vec<Prepared>> = scopes.into_values().collect();
    let rated: Vec<Vec<RatedRow>> = groups
        .into_par_iter()
        .map(rate_scope)
        .collect::<Result<_>>()?;
    quarantine.sort_by(|a, b| (&a.source_file, a.source_row).cmp(&(&b.source_file, b.source_row)));
    Ok(MonthRating {
        rows: rated.into_iter().flatten().collect(),
        quarantine,
    })
}

/// The staged order of usage: `ingest`'s merge writes every partition in it.
type StagedKey<'b> = (&'b str, &'b str, i64, i64, &'b str, &'b str, u128);

/// Whether `b` may follow `a` in the staged order.
pub fn in_staged_order(a: &UsageRecord, b: &UsageRecord) -> bool {
    staged_key(a) <= staged_key(b)
}

fn staged_key(r: &UsageRecord) -> StagedKey<'_> {
    (
        &r.subscription_id,
        &r.meter_id,
        r.usage_start,
        r.usage_end,
        &r.resource_uri,
        &r.additional_info,
        r.key_hash,
    )
}

/// Records that are not in the staged order: a stream cannot rate them, the caller rates
/// their file as one unit instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfOrder;

/// Rates the default tier scope (subscription, calendar month) of records that arrive in
/// the staged order, in chunks of any size. Inside one (subscription, meter) ladder the
/// staged order is rating.md §4's order, and each ladder is one contiguous stretch: so one
/// running sum is carried from chunk to chunk, and memory holds a chunk, not the bucket.
pub struct StreamRater<'c> {
    ctx: &'c RateContext<'c>,
    month: String,
    units: UnitCache,
    ladder_key: Option<(String, String, i32)>,
    ladder: Ladder,
    last: Option<UsageRecord>,
    /// Ladders left behind: after [`StreamRater::restart`] none may open again.
    finished: HashSet<(String, String, i32)>,
    order: StreamOrder,
}

/// The order a [`StreamRater`] takes its records in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StreamOrder {
    /// The staged order: ladders one after another, each a (subscription, meter) block.
    Staged,
    /// rating.md §4's order inside one (scope, meter) ladder, merged from its blocks.
    Scope,
}

impl<'c> StreamRater<'c> {
    /// A rater for `month`; `None` for the scopes and periods whose ladders are not
    /// contiguous in staged order (customer and organization scopes, billing-cycle tiers).
    pub fn new(ctx: &'c RateContext<'c>, month: &str) -> Option<StreamRater<'c>> {
        if ctx.scope != TierScope::Subscription {
            return None;
        }
        StreamRater::for_block_ladders(ctx, month)
    }

    /// A rater of any scope, for a stream in which every ladder is one (subscription, meter)
    /// block: the caller has checked it (a customer or an organization with one
    /// subscription per meter). `None` for billing-cycle tiers, whose ladders reach into the
    /// month before.
    pub fn for_block_ladders(ctx: &'c RateContext<'c>, month: &str) -> Option<StreamRater<'c>> {
        StreamRater::with_order(ctx, month, StreamOrder::Staged)
    }

    /// A rater of the records of one (scope, meter) ladder in rating.md §4's order (start,
    /// end, subscription, resource, ...), as a merge of the ladder's blocks gives them. `None`
    /// for billing-cycle tiers.
    pub fn for_ladder(ctx: &'c RateContext<'c>, month: &str) -> Option<StreamRater<'c>> {
        StreamRater::with_order(ctx, month, StreamOrder::Scope)
    }

    fn with_order(
        ctx: &'c RateContext<'c>,
        month: &str,
        order: StreamOrder,
    ) -> Option<StreamRater<'c>> {
        (ctx.period == TierPeriod::CalendarMonth).then(|| StreamRater {
            ctx,
            month: month.to_string(),
            units: HashMap::new(),
            ladder_key: None,
            ladder: Ladder::default(),
            last: None,
            finished: HashSet::new(),
            order,
        })
    }

    fn in_order(&self, a: &UsageRecord, b: &UsageRecord) -> bool {
        match self.order {
            StreamOrder::Staged => in_staged_order(a, b),
            StreamOrder::Scope => scope_order(a, b) != std::cmp::Ordering::Greater,
        }
    }

    /// Whether `r` can follow the records rated so far in the stream's order.
    pub fn follows(&self, r: &UsageRecord) -> bool {
        self.last.as_ref().is_none_or(|prev| self.in_order(prev, r))
    }

    /// Go on with another stretch in staged order (of another staged file): its ladders
    /// must be new ones, or the next chunk is [`OutOfOrder`].
    pub fn restart(&mut self) {
        self.last = None;
        if let Some(done) = self.ladder_key.take() {
            self.finished.insert(done);
        }
    }

    /// Rate the next records of the stream; [`OutOfOrder`] (and nothing rated) when they do
    /// not follow the staged order.
    pub fn rate_chunk<'a>(
        &mut self,
        records: &'a [UsageRecord],
    ) -> Result<std::result::Result<MonthRating<'a>, OutOfOrder>>
    where
        'c: 'a,
    {
        let ordered = records.first().is_none_or(|first| self.follows(first))
            && records.windows(2).all(|w| self.in_order(&w[0], &w[1]));
        if !ordered {
            return Ok(Err(OutOfOrder));
        }
        for r in records {
            if let Some(u) = &r.unit {
                if !self.units.contains_key(u) {
                    self.units.insert(u.clone(), Unit::parse(u));
                }
            }
        }
        let ctx: &'a RateContext<'a> = self.ctx;
        let mut rows = Vec::with_capacity(records.len());
        let mut quarantine = Vec::new();
        for r in records {
            match classify(ctx, r, &self.month, &self.units) {
                Ok(p) => {
                    let period = date_to_days(ctx.period.period_start(days_to_date(r.usage_date)));
                    let id = scope_id(ctx.scope, &p);
                    let same = matches!(&self.ladder_key,
                        Some((s, m, d)) if s == id && *m == r.meter_id && *d == period);
                    if !same {
                        let key = (id.to_string(), r.meter_id.clone(), period);
                        if self.finished.contains(&key) {
                            return Ok(Err(OutOfOrder));
                        }
                        if let Some(done) = self.ladder_key.replace(key) {
                            self.finished.insert(done);
                        }
                        self.ladder = Ladder::default();
                    }
                    rows.extend(self.ladder.climb(p)?);
                }
                Err(q) => quarantine.push(*q),
            }
        }
        if let Some(r) = records.last() {
            self.last = Some(r.clone());
        }
        quarantine
            .sort_by(|a, b| (&a.source_file, a.source_row).cmp(&(&b.source_file, b.source_row)));
        Ok(Ok(MonthRating { rows, quarantine }))
    }
}

/// Output order inside a partition (outputs.md): `SubAccountId, x_MeterId, ChargePeriodStart,
/// ResourceId`, then end and lineage, so that the order is total and any two runs sort alike.
pub fn output_order(a: &RatedRow, b: &RatedRow) -> std::cmp::Ordering {
    output_key(a).cmp(&output_key(b))
}

type OutputKey<'b> = (&'b str, &'b str, i64, &'b str, i64, &'b str, i64);

fn output_key<'b>(r: &'b RatedRow) -> OutputKey<'b> {
    let u = r.rec;
    (
        u.subscription_id.as_str(),
        u.meter_id.as_str(),
        u.usage_start,
        u.resource_uri.as_str(),
        u.usage_end,
        u.source_file.as_str(),
        u.source_row,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn fx_and_markup_worked_example() {
        // rating.md §7: 8.2985 USD, EUR at 1.0854, +10 %.
        let list = to_billing_currency(
            Dec10::parse("8.2985").unwrap(),
            Dec10::parse("1.0854").unwrap(),
        )
        .unwrap();
        assert_eq!(list.to_string(), "7.6455684540");
        assert_eq!(
            apply_percent(list, Dec10::parse("10").unwrap())
                .unwrap()
                .to_string(),
            "8.4101252994"
        );
        assert_eq!(
            apply_percent(list, Dec10::parse("-5").unwrap())
                .unwrap()
                .to_string(),
            "7.2632900313"
        );
    }

    #[test]
    fn billing_cycle_periods() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let p = TierPeriod::parse("billing_cycle:15").unwrap();
        assert_eq!(p.period_start(d("2026-02-14")), d("2026-01-15"));
        assert_eq!(p.period_start(d("2026-01-15")), d("2026-01-15"));
        assert_eq!(p.period_start(d("2026-01-03")), d("2025-12-15"));
        assert_eq!(
            TierPeriod::CalendarMonth.period_start(d("2026-01-31")),
            d("2026-01-01")
        );
        assert_eq!(TierPeriod::parse("billing_cycle:29"), None);
        assert_eq!(TierPeriod::parse("weekly"), None);
    }
}
