//! Pure pricing of Azure Plan reservation orders (reservations.md), no I/O: validate an
//! order, find its USD unit price, convert it with Microsoft's FX rate of the purchase month,
//! add the organization's markup, and split the total into installments that sum to it
//! exactly. The `reserve` stage feeds it staged orders, price rows
//! and reference data and writes what it returns.
//!
//! Every rounding goes through [`crate::model::half_away_from_zero`], once per value, from the
//! exact quotient (`round_minor(700.80 / 1.0854)`, not `round_minor(round10(...))`).

use crate::error::{Error, Result};
use crate::model::billing::{BillingReference, Reseller};
use crate::model::currency::minor_unit_digits;
use crate::model::decimal::{Dec10, ONE_RAW};
use crate::model::half_away_from_zero::div_round_to;
use crate::model::order::{ReservationOrder, ORDER_TEXT_FIELDS};
use crate::model::price::PriceRow;
use crate::model::reason::{QuarantineRecord, ReasonCode};
use crate::model::reference::{Organization, Reference, TenantMapping};
use crate::model::time::{
    add_months_clamped, date_to_days, days_to_date, from_micros, month_of, to_micros,
};
use crate::pricing::fx::convert_from_usd;
use crate::pricing::markup::apply_percent_rounded;
use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use std::collections::{BTreeSet, HashMap};

/// `PricingUnit` of reservation charges and the unit of an asset's quantity.
pub const PRICING_UNIT: &str = "Instances";

/// Reservation term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Term {
    /// One year (`P1Y`, `1 Year`).
    OneYear,
    /// Three years (`P3Y`, `3 Years`).
    ThreeYears,
}

impl Term {
    /// Parse an order's `term` or a price row's `reservationTerm`, case-insensitively:
    /// `P1Y`, `P3Y`, `1 Year`, `3 Years`.
    pub fn parse(text: &str) -> Option<Term> {
        match text.trim().to_ascii_lowercase().as_str() {
            "p1y" | "1 year" => Some(Term::OneYear),
            "p3y" | "3 years" => Some(Term::ThreeYears),
            _ => None,
        }
    }

    /// Length in months (12 or 36).
    pub fn months(self) -> u32 {
        match self {
            Term::OneYear => 12,
            Term::ThreeYears => 36,
        }
    }

    /// ISO 8601 duration form (`P1Y`, `P3Y`), used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Term::OneYear => "P1Y",
            Term::ThreeYears => "P3Y",
        }
    }

    /// Price-sheet form (`1 Year`, `3 Years`), used in details.
    pub fn sheet_name(self) -> &'static str {
        match self {
            Term::OneYear => "1 Year",
            Term::ThreeYears => "3 Years",
        }
    }
}

/// How a reservation is billed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillingFrequency {
    /// The whole total on the purchase date.
    OneTime,
    /// Equal monthly installments over the term.
    Monthly,
}

impl BillingFrequency {
    /// Parse `OneTime` / `Monthly`, case-insensitively.
    pub fn parse(text: &str) -> Option<BillingFrequency> {
        match text.trim().to_ascii_lowercase().as_str() {
            "onetime" => Some(BillingFrequency::OneTime),
            "monthly" => Some(BillingFrequency::Monthly),
            _ => None,
        }
    }

    /// Canonical form (`OneTime`, `Monthly`).
    pub fn as_str(self) -> &'static str {
        match self {
            BillingFrequency::OneTime => "OneTime",
            BillingFrequency::Monthly => "Monthly",
        }
    }

    /// FOCUS `ChargeFrequency` of the charges.
    pub fn charge_frequency(self) -> &'static str {
        match self {
            BillingFrequency::OneTime => "One-Time",
            BillingFrequency::Monthly => "Recurring",
        }
    }

    /// Number of charges over `term`: 1, or one per month of the term.
    pub fn installment_count(self, term: Term) -> u32 {
        match self {
            BillingFrequency::OneTime => 1,
            BillingFrequency::Monthly => term.months(),
        }
    }
}

/// Where an order's original USD unit price came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PriceSource {
    /// `original_unit_price_usd` captured on the order.
    Order,
    /// A `Reservation` row of the staged price sheet.
    PriceSheet {
        /// The price file.
        source_file: String,
        /// Row or item within it.
        source_row: i64,
        /// `effectiveStartDate`, days since epoch.
        effective_start: i32,
        /// The row's `location` (display name of the region).
        location: Option<String>,
    },
}

impl PriceSource {
    /// `order` or `price_sheet`, as written in the assets table.
    pub fn as_str(&self) -> &'static str {
        match self {
            PriceSource::Order => "order",
            PriceSource::PriceSheet { .. } => "price_sheet",
        }
    }

    /// File and row of the sheet row (none for a captured price).
    pub fn sheet_row(&self) -> Option<(&str, i64)> {
        match self {
            PriceSource::Order => None,
            PriceSource::PriceSheet {
                source_file,
                source_row,
                ..
            } => Some((source_file, *source_row)),
        }
    }

    /// Effective date of the sheet row (none for a captured price).
    pub fn effective_start(&self) -> Option<i32> {
        match self {
            PriceSource::Order => None,
            PriceSource::PriceSheet {
                effective_start, ..
            } => Some(*effective_start),
        }
    }
}

/// One charge of a priced order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installment {
    /// 0-based index.
    pub index: u32,
    /// Charge date: the purchase date plus `index` months, clamped to the month's last day.
    pub date: NaiveDate,
    /// The charge in the billing currency (`BilledCost`).
    pub billed_cost: Dec10,
    /// The charge before markup (`ListCost`): `purchase_unit_price * quantity` split by the
    /// same rule.
    pub list_cost: Dec10,
    /// The USD amount before FX (`x_ListCostUsd`): `original_unit_price_usd * quantity` split
    /// by the same rule in cents.
    pub list_cost_usd: Dec10,
    /// What the partner invoices the reseller (`x_ResellerCost`, billing.md):
    /// `reseller_unit_price * quantity` split by the same rule; `None` for a direct customer.
    pub reseller_cost: Option<Dec10>,
}

/// An order that passed every check, with its prices and charges.
#[derive(Clone, Debug)]
pub struct PricedOrder<'a> {
    /// The staged order.
    pub order: &'a ReservationOrder,
    /// The tenant's registration.
    pub mapping: &'a TenantMapping,
    /// The organization billed.
    pub organization: &'a Organization,
    /// The reseller that bills the organization, if any (billing.md).
    pub reseller: Option<&'a Reseller>,
    /// Term.
    pub term: Term,
    /// Billing frequency.
    pub frequency: BillingFrequency,
    /// Instances.
    pub quantity: i64,
    /// Purchase instant plus the term (day clamped to the month's end), µs UTC.
    pub expiration_utc: i64,
    /// Microsoft's price of one instance for the whole term, USD.
    pub original_unit_price_usd: Dec10,
    /// Where that price came from.
    pub price_source: PriceSource,
    /// USD per unit of the billing currency for the purchase month (1 for USD).
    pub fx_usd_per_unit: Dec10,
    /// First day of the purchase month, when Microsoft posted the rate.
    pub fx_rate_date: NaiveDate,
    /// `round_minor(original_unit_price_usd / fx_usd_per_unit)` ("Pricing Currency" price).
    pub purchase_unit_price: Dec10,
    /// Under a reseller: `round_minor(purchase_unit_price * (1 + reseller markup / 100))`,
    /// the unit price the partner invoices the reseller.
    pub reseller_unit_price: Option<Dec10>,
    /// `round_minor(purchase_unit_price * (1 + markup / 100))` (under a reseller, of
    /// `reseller_unit_price`).
    pub sell_unit_price: Dec10,
    /// `sell_unit_price * quantity`.
    pub total: Dec10,
    /// The charges, in date order.
    pub installments: Vec<Installment>,
}

impl PricedOrder<'_> {
    /// UTC date of the purchase.
    pub fn purchase_date(&self) -> NaiveDate {
        from_micros(self.order.purchase_utc).date_naive()
    }

    /// Whether the reservation has expired by the end of `as_of` (UTC).
    pub fn is_expired(&self, as_of: NaiveDate) -> bool {
        from_micros(self.expiration_utc).date_naive() <= as_of
    }

    /// Installments dated on or before `as_of`: their count and their sum.
    pub fn billed_by(&self, as_of: NaiveDate) -> (u32, Dec10) {
        self.installments
            .iter()
            .filter(|i| i.date <= as_of)
            .fold((0, Dec10::ZERO), |(n, sum), i| {
                (n + 1, Dec10(sum.0 + i.billed_cost.0))
            })
    }
}

/// Why an order is not billed: a reason code and a sentence naming the order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The reason.
    pub reason: ReasonCode,
    /// A sentence naming the order ID, the field and the value.
    pub detail: String,
}

impl Rejection {
    fn new(reason: ReasonCode, order: &ReservationOrder, what: String) -> Rejection {
        Rejection {
            reason,
            detail: format!("order {}: {what}", order.get("order_id")),
        }
    }

    /// The quarantine record of `order` (tenant, subscription and purchase date as keys).
    pub fn into_quarantine(self, order: &ReservationOrder) -> QuarantineRecord {
        let non_empty = |f: &str| Some(order.get(f).to_string()).filter(|s| !s.is_empty());
        QuarantineRecord {
            reason: self.reason,
            detail: self.detail,
            source_file: order.source_file.clone(),
            source_row: order.source_row,
            raw: order.raw.clone(),
            customer_tenant_id: non_empty("customer_tenant_id"),
            subscription_id: non_empty("subscription_id"),
            meter_id: None,
            usage_date: Some(from_micros(order.purchase_utc).date_naive()),
        }
    }
}

/// What to do with a staged order given the ones staged before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Occurrence {
    /// The first order with its `order_id`: price it.
    First,
    /// The same content as the first order with its ID: a no-op.
    Repeat,
    /// The same `order_id` with different content: `DUPLICATE_ORDER` (the first is kept).
    Conflict(Rejection),
}

/// Classify staged orders, in staging order, by their `order_id`.
pub fn occurrences(orders: &[ReservationOrder]) -> Vec<Occurrence> {
    let mut first: HashMap<&str, &ReservationOrder> = HashMap::new();
    orders
        .iter()
        .map(|o| match first.get(o.get("order_id")) {
            None => {
                first.insert(o.get("order_id"), o);
                Occurrence::First
            }
            Some(f) if f.content_hash == o.content_hash => Occurrence::Repeat,
            Some(f) => Occurrence::Conflict(Rejection::new(
                ReasonCode::DuplicateOrder,
                o,
                format!(
                    "order_id was first seen in row {} of {} with different content ({}); the first order is kept",
                    f.source_row,
                    f.source_file,
                    differences(f, o)
                ),
            )),
        })
        .collect()
}

/// The fields in which `later` differs from `first`, as `field 'a' vs 'b'`.
fn differences(first: &ReservationOrder, later: &ReservationOrder) -> String {
    let mut out: Vec<String> = ORDER_TEXT_FIELDS
        .iter()
        .zip(first.text.iter().zip(&later.text))
        .filter(|(_, (a, b))| a != b)
        .map(|(f, (a, b))| format!("{f} '{a}' vs '{b}'"))
        .collect();
    if first.purchase_utc != later.purchase_utc {
        out.push(format!(
            "purchase_date_utc '{}' vs '{}'",
            from_micros(first.purchase_utc).to_rfc3339(),
            from_micros(later.purchase_utc).to_rfc3339()
        ));
    }
    if first.original_unit_price_usd != later.original_unit_price_usd {
        let text = |p: Option<Dec10>| p.map(Dec10::to_plain).unwrap_or_default();
        out.push(format!(
            "original_unit_price_usd '{}' vs '{}'",
            text(first.original_unit_price_usd),
            text(later.original_unit_price_usd)
        ));
    }
    out.join(", ")
}

/// USD `Reservation` rows of the price sheet by SKU and term, oldest first.
pub struct ReservationPrices<'a> {
    rows: HashMap<(String, Term), Vec<&'a PriceRow>>,
}

/// Outcome of a price-sheet lookup.
enum SheetPrice<'a> {
    Found(&'a PriceRow),
    Missing,
    /// Several different prices in the latest version: the day and the prices.
    Conflict(i32, BTreeSet<Dec10>),
}

impl<'a> ReservationPrices<'a> {
    /// Index the rows of type `Reservation` in USD with a 1- or 3-year term.
    pub fn build(rows: &'a [PriceRow]) -> ReservationPrices<'a> {
        let mut by_key: HashMap<(String, Term), Vec<&'a PriceRow>> = HashMap::new();
        for r in rows {
            let term = Term::parse(&r.reservation_term);
            if let (true, true, Some(term)) = (
                r.price_type.eq_ignore_ascii_case("Reservation"),
                r.currency_code == "USD",
                term,
            ) {
                by_key
                    .entry((r.sku_id.trim().to_ascii_uppercase(), term))
                    .or_default()
                    .push(r);
            }
        }
        for v in by_key.values_mut() {
            v.sort_by_key(|r| r.effective_start);
        }
        ReservationPrices { rows: by_key }
    }

    /// The row in effect on `day`: the latest `effectiveStartDate <= day`.
    fn lookup(&self, sku_id: &str, term: Term, day: i32) -> SheetPrice<'a> {
        let Some(rows) = self.rows.get(&(sku_id.trim().to_ascii_uppercase(), term)) else {
            return SheetPrice::Missing;
        };
        let Some(latest) = rows
            .iter()
            .map(|r| r.effective_start)
            .filter(|d| *d <= day)
            .max()
        else {
            return SheetPrice::Missing;
        };
        let version: Vec<&PriceRow> = rows
            .iter()
            .filter(|r| r.effective_start == latest)
            .copied()
            .collect();
        let prices: BTreeSet<Dec10> = version.iter().map(|r| r.unit_price).collect();
        if prices.len() > 1 {
            return SheetPrice::Conflict(latest, prices);
        }
        SheetPrice::Found(version[0])
    }
}

/// `total` split into `n` installments of `round(total / n)` to `digits` decimals, the last
/// one `total - (n - 1) * installment`, so that they sum to `total` exactly.
pub fn split_installments(total: Dec10, n: u32, digits: u32) -> Option<Vec<Dec10>> {
    if n == 0 {
        return None;
    }
    let each = div_round_to(total.0, n as i128, digits)?;
    let rest = total.0.checked_sub(each.checked_mul(n as i128 - 1)?)?;
    let mut out = vec![Dec10(each); n as usize - 1];
    out.push(Dec10(rest));
    Some(out)
}

/// An order's check: the value, or the rejection that quarantines the order.
type Checked<T> = std::result::Result<T, Rejection>;

/// Price one order, or reject it with the first reason that applies (reservations.md order:
/// scope, term, quantity, billing frequency, then billing.md's monthly billing, supported
/// billing cycles and price lists, then tenant, price, FX). `Err` only when arithmetic
/// leaves DECIMAL(38,10).
pub fn price_order<'a>(
    order: &'a ReservationOrder,
    prices: &ReservationPrices,
    reference: &'a Reference,
) -> Result<std::result::Result<PricedOrder<'a>, Rejection>> {
    let checked = check_terms(order)
        .and_then(|terms| check_billing(order, reference, terms.frequency).map(|()| terms))
        .and_then(|terms| Ok((terms, holder_of(order, reference)?)));
    let (terms, holder) = match checked {
        Ok(v) => v,
        Err(r) => return Ok(Err(r)),
    };
    let purchased = from_micros(order.purchase_utc);
    let purchase_date = purchased.date_naive();
    let (original_unit_price_usd, price_source) =
        match original_price(order, prices, terms.term, purchase_date) {
            Ok(v) => v,
            Err(r) => return Ok(Err(r)),
        };
    let organization = holder.organization;
    let currency = organization.billing_currency.as_str();
    let fx_rate_date = purchase_date.with_day(1).unwrap_or(purchase_date);
    let month = month_of(purchase_date);
    let Some(fx_usd_per_unit) = reference.fx_usd_per_unit(currency, &month) else {
        return Ok(Err(Rejection::new(
            ReasonCode::NoFxRate,
            order,
            format!(
                "no FX rate for {currency} in {month} (organization {}): ingest Microsoft's fx_rates file for that month",
                organization.id
            ),
        )));
    };
    let reseller = reference.billing.reseller_of(&organization.id);
    let digits = minor_unit_digits(currency);
    let units = unit_prices(
        order,
        original_unit_price_usd,
        fx_usd_per_unit,
        reseller,
        organization,
        digits,
    )?;
    let money = installments(
        order,
        &terms,
        &units,
        original_unit_price_usd,
        purchase_date,
        digits,
    )?;
    let expiration =
        add_months_clamped(purchase_date, terms.term.months()).and_time(purchased.time());
    Ok(Ok(PricedOrder {
        order,
        mapping: holder.mapping,
        organization,
        reseller,
        term: terms.term,
        frequency: terms.frequency,
        quantity: terms.quantity,
        expiration_utc: to_micros(Utc.from_utc_datetime(&expiration)),
        original_unit_price_usd,
        price_source,
        fx_usd_per_unit,
        fx_rate_date,
        purchase_unit_price: units.purchase,
        reseller_unit_price: units.reseller,
        sell_unit_price: units.sell,
        total: money.total,
        installments: money.installments,
    }))
}

/// An order's own terms, once its fields are checked.
struct OrderTerms {
    term: Term,
    quantity: i64,
    frequency: BillingFrequency,
}

/// Scope, term, quantity and billing frequency, in that order.
fn check_terms(order: &ReservationOrder) -> Checked<OrderTerms> {
    let reject = |reason, what: String| Err(Rejection::new(reason, order, what));
    let scope = order.get("scope");
    if !scope.eq_ignore_ascii_case("Shared") {
        return reject(
            ReasonCode::ScopeNotShared,
            format!("scope '{scope}' is not Shared; only shared-scope reservations are billed"),
        );
    }
    let Some(term) = Term::parse(order.get("term")) else {
        return reject(
            ReasonCode::BadTerm,
            format!(
                "term '{}' is not P1Y, P3Y, 1 Year or 3 Years",
                order.get("term")
            ),
        );
    };
    let Some(quantity) = whole_quantity(order.get("quantity")) else {
        return reject(
            ReasonCode::BadQuantity,
            format!(
                "quantity '{}' is not a whole number of instances of at least 1",
                order.get("quantity")
            ),
        );
    };
    let Some(frequency) = BillingFrequency::parse(order.get("billing_frequency")) else {
        return reject(
            ReasonCode::BadBillingFrequency,
            format!(
                "billing_frequency '{}' is not OneTime or Monthly",
                order.get("billing_frequency")
            ),
        );
    };
    Ok(OrderTerms {
        term,
        quantity,
        frequency,
    })
}

/// billing.md's rules: monthly billing enabled, the SKU's supported billing cycles, and the
/// price lists of the order's organization and its reseller.
fn check_billing(
    order: &ReservationOrder,
    reference: &Reference,
    frequency: BillingFrequency,
) -> Checked<()> {
    let reject = |reason, what: String| Err(Rejection::new(reason, order, what));
    let billing = &reference.billing;
    if frequency == BillingFrequency::Monthly && !billing.monthly_billing_enabled() {
        return reject(
            ReasonCode::MonthlyBillingDisabled,
            "billing_frequency is Monthly but monthly billing of reservations is disabled (reservation_settings.csv monthly_billing_enabled = false, the default)".to_string(),
        );
    }
    let sku = order.get("sku_id");
    if let Some(cycles) = billing.supported_cycles(sku) {
        if !cycles.contains(frequency.as_str()) {
            let supported: Vec<&str> = cycles.into_iter().collect();
            return reject(
                ReasonCode::BillingFrequencyNotSupported,
                format!(
                    "sku_id '{sku}' supports only {} billing (reservation_skus.csv), not {}",
                    supported.join("|"),
                    frequency.as_str()
                ),
            );
        }
    }
    let org_id = reference
        .tenants
        .get(order.get("customer_tenant_id"))
        .map(|m| m.organization_id.as_str());
    for (holder, list) in org_id
        .map(|o| billing.price_lists_of(o))
        .unwrap_or_default()
    {
        if !BillingReference::lists(list, sku) {
            return reject(
                ReasonCode::NotInPriceList,
                format!("sku_id '{sku}' is not in the price list of '{holder}' (price_lists.csv)"),
            );
        }
    }
    Ok(())
}

/// The organization an order's customer tenant is registered to.
struct OrderHolder<'a> {
    mapping: &'a TenantMapping,
    organization: &'a Organization,
}

fn holder_of<'a>(order: &ReservationOrder, reference: &'a Reference) -> Checked<OrderHolder<'a>> {
    let tenant = order.get("customer_tenant_id");
    let Some((mapping, organization)) = reference
        .tenants
        .get(tenant)
        .and_then(|m| Some((m, reference.organizations.get(&m.organization_id)?)))
    else {
        return Err(Rejection::new(
            ReasonCode::UnmappedTenant,
            order,
            format!("customer tenant {tenant} is not registered to an organization (cspcost tenants add)"),
        ));
    };
    Ok(OrderHolder {
        mapping,
        organization,
    })
}

/// The order's USD unit price and where it came from: the order itself, else the price
/// sheet's row in effect on the purchase date.
fn original_price(
    order: &ReservationOrder,
    prices: &ReservationPrices,
    term: Term,
    purchase_date: NaiveDate,
) -> Checked<(Dec10, PriceSource)> {
    let reject = |reason, what: String| Err(Rejection::new(reason, order, what));
    match order.original_unit_price_usd {
        Some(p) if p.is_negative() => reject(
            ReasonCode::NoPrice,
            format!(
                "original_unit_price_usd '{}' is negative, not a price",
                p.to_plain()
            ),
        ),
        Some(p) => Ok((p, PriceSource::Order)),
        None => match prices.lookup(order.get("sku_id"), term, date_to_days(purchase_date)) {
            SheetPrice::Found(row) => Ok((
                row.unit_price,
                PriceSource::PriceSheet {
                    source_file: row.source_file.clone(),
                    source_row: row.source_row,
                    effective_start: row.effective_start,
                    location: row.location.clone(),
                },
            )),
            SheetPrice::Missing => reject(
                ReasonCode::NoPrice,
                format!(
                    "no original_unit_price_usd on the order and no USD Reservation price for sku_id '{}', term {}, effective on or before {purchase_date}",
                    order.get("sku_id"),
                    term.sheet_name()
                ),
            ),
            SheetPrice::Conflict(day, found) => {
                let found: Vec<String> = found.iter().map(|p| p.to_plain()).collect();
                reject(
                    ReasonCode::PriceConflict,
                    format!(
                        "the price sheet has {} different USD Reservation prices for sku_id '{}', term {}, effective {} ({})",
                        found.len(),
                        order.get("sku_id"),
                        term.sheet_name(),
                        days_to_date(day),
                        found.join(", ")
                    ),
                )
            }
        },
    }
}

fn order_overflow(order: &ReservationOrder) -> Error {
    Error::Overflow {
        context: format!("pricing reservation order {}", order.get("order_id")),
    }
}

/// An order's unit prices in the billing currency, each rounded to its minor unit.
struct UnitPrices {
    /// Converted from USD: the list price.
    purchase: Dec10,
    /// With the reseller's markup, under a reseller.
    reseller: Option<Dec10>,
    /// With the organization's markup: what the organization pays.
    sell: Dec10,
}

fn unit_prices(
    order: &ReservationOrder,
    original_unit_price_usd: Dec10,
    fx_usd_per_unit: Dec10,
    reseller: Option<&Reseller>,
    organization: &Organization,
    digits: u32,
) -> Result<UnitPrices> {
    let overflow = || order_overflow(order);
    let purchase = convert_from_usd(original_unit_price_usd, fx_usd_per_unit, digits)
        .map_err(|_| overflow())?;
    // billing.md: under a reseller, the reseller's markup first, then the organization's
    // (its reseller's markup towards it), each rounded to the minor unit.
    let reseller = reseller
        .map(|r| {
            apply_percent_rounded(purchase, r.reservation_markup_percent, digits)
                .map_err(|_| overflow())
        })
        .transpose()?;
    let sell = apply_percent_rounded(
        reseller.unwrap_or(purchase),
        organization.reservation_markup_percent,
        digits,
    )
    .map_err(|_| overflow())?;
    Ok(UnitPrices {
        purchase,
        reseller,
        sell,
    })
}

/// An order's total and its installments.
struct OrderMoney {
    total: Dec10,
    installments: Vec<Installment>,
}

/// `quantity` times each unit price, split into the order's installments (USD ones to
/// cents), one a month from the purchase date.
fn installments(
    order: &ReservationOrder,
    terms: &OrderTerms,
    units: &UnitPrices,
    original_unit_price_usd: Dec10,
    purchase_date: NaiveDate,
    digits: u32,
) -> Result<OrderMoney> {
    let overflow = || order_overflow(order);
    let times_quantity = |unit: Dec10| {
        unit.0
            .checked_mul(terms.quantity as i128)
            .map(Dec10)
            .ok_or_else(overflow)
    };
    let total = times_quantity(units.sell)?;
    let n = terms.frequency.installment_count(terms.term);
    let split = |amount: Dec10, digits| split_installments(amount, n, digits).ok_or_else(overflow);
    let billed = split(total, digits)?;
    let list = split(times_quantity(units.purchase)?, digits)?;
    let usd = split(
        times_quantity(original_unit_price_usd)?,
        minor_unit_digits("USD"),
    )?;
    let reseller_costs = match units.reseller {
        Some(p) => Some(split(times_quantity(p)?, digits)?),
        None => None,
    };
    let installments = (0..n)
        .map(|k| Installment {
            index: k,
            date: add_months_clamped(purchase_date, k),
            billed_cost: billed[k as usize],
            list_cost: list[k as usize],
            list_cost_usd: usd[k as usize],
            reseller_cost: reseller_costs.as_ref().map(|c| c[k as usize]),
        })
        .collect();
    Ok(OrderMoney {
        total,
        installments,
    })
}

/// A quantity that is a whole number >= 1 (`3`, `3.0`, `3e0`).
fn whole_quantity(text: &str) -> Option<i64> {
    let q = Dec10::parse(text).ok()?;
    if q.0 < ONE_RAW || q.0 % ONE_RAW != 0 {
        return None;
    }
    i64::try_from(q.0 / ONE_RAW).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reference::{Organization, TenantMapping};

    const T_EUR: &str = "686adbc4-fd3f-4688-b527-617394bf68af";
    const T_JPY: &str = "77683a7d-7f5f-40ee-b171-212656ea1f96";
    const T_USD: &str = "cb68bce3-1e3f-416d-a860-6a6043d14194";
    const T_UNMAPPED: &str = "43ab1ab1-16d6-4711-84c7-f75b8bb73bc1";
    const SKU_1Y: &str = "DZH318Z0BQ4L/0123";
    const SKU_3Y: &str = "DZH318Z0BQ4L/0126";

    fn d(s: &str) -> Dec10 {
        Dec10::parse(s).unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// The worked example's order (ord-0001), with `changes` applied (`purchase_date_utc`
    /// and `original_unit_price_usd` included).
    fn order(changes: &[(&str, &str)]) -> ReservationOrder {
        let mut fields: HashMap<&str, &str> = [
            ("order_id", "ord-0001"),
            ("reservation_id", "fa6c4d0d-795e-4b1c-8fa7-442e048ef574"),
            ("customer_tenant_id", T_EUR),
            ("subscription_id", "fbfcd135-847c-436c-ac68-265a0737f7fd"),
            ("sku_id", SKU_1Y),
            ("product_id", "DZH318Z0BQ4L"),
            (
                "product_title",
                "Reserved VM Instance, Standard_D2_v3, EU West, 1 Year",
            ),
            ("product_details", "Standard_D2_v3, General purpose"),
            ("region", "westeurope"),
            ("term", "P1Y"),
            ("quantity", "3"),
            ("billing_frequency", "Monthly"),
            ("scope", "Shared"),
            ("purchase_date_utc", "2026-01-31T10:00:00Z"),
            ("original_unit_price_usd", ""),
        ]
        .into_iter()
        .collect();
        fields.extend(changes.iter().copied());
        let purchase = crate::model::time::parse_lenient_utc(fields["purchase_date_utc"]).unwrap();
        let price = Some(fields["original_unit_price_usd"])
            .filter(|p| !p.is_empty())
            .map(d);
        let text: [String; 13] = std::array::from_fn(|i| fields[ORDER_TEXT_FIELDS[i]].to_string());
        ReservationOrder {
            content_hash: format!("{text:?}{purchase}{price:?}"),
            text,
            purchase_utc: to_micros(purchase),
            original_unit_price_usd: price,
            source_file: "orders.csv".into(),
            source_row: 2,
            raw: "raw".into(),
        }
    }

    fn reference() -> Reference {
        let mut r = Reference::default();
        // The worked examples bill monthly; the seed product's default is off.
        r.billing
            .settings
            .insert("monthly_billing_enabled".into(), "true".into());
        for (id, currency, markup) in [
            ("contoso", "EUR", "10"),
            ("fabrikam", "JPY", "8"),
            ("adatum", "USD", "0"),
        ] {
            r.organizations.insert(
                id.into(),
                Organization {
                    id: id.into(),
                    name: id.into(),
                    billing_currency: currency.into(),
                    consumption_adjustment_percent: Dec10::ZERO,
                    reservation_markup_percent: d(markup),
                },
            );
        }
        for (tenant, org) in [(T_EUR, "contoso"), (T_JPY, "fabrikam"), (T_USD, "adatum")] {
            r.tenants.insert(
                tenant.into(),
                TenantMapping {
                    customer_tenant_id: tenant.into(),
                    organization_id: org.into(),
                    partnership_id: "p-eu".into(),
                },
            );
        }
        r.partnerships
            .insert("p-eu".into(), "Northwind CSP Europe".into());
        for (currency, month, rate) in [
            ("EUR", "2026-01", "1.0854"),
            ("EUR", "2026-02", "1.0790"),
            ("EUR", "2026-03", "1.0854"),
            ("JPY", "2026-01", "0.0064"),
            ("EUR", "2027-08", "1.1"),
        ] {
            r.fx.insert((currency.into(), month.into()), d(rate));
        }
        r
    }

    fn price_row(sku: &str, term: &str, price: &str, effective: &str, currency: &str) -> PriceRow {
        PriceRow {
            meter_id: "a1003d53-cd0c-4eee-bc65-32f5c76e4647".into(),
            meter_name: None,
            product_id: None,
            product_name: None,
            sku_id: sku.into(),
            sku_name: None,
            service_name: None,
            service_family: None,
            meter_category: None,
            meter_subcategory: None,
            arm_region_name: "westeurope".into(),
            location: Some("EU West".into()),
            unit_of_measure: "1 Hour".into(),
            price_type: "Reservation".into(),
            currency_code: currency.into(),
            reservation_term: term.into(),
            tier_minimum: Dec10::ZERO,
            unit_price: d(price),
            retail_price: None,
            effective_start: date_to_days(day(effective)),
            is_primary_meter_region: Some(true),
            source_file: "retail-prices-page-1.json".into(),
            source_row: 4,
        }
    }

    fn sheet() -> Vec<PriceRow> {
        vec![
            price_row(SKU_1Y, "1 Year", "700.8", "2024-01-01", "USD"),
            price_row(SKU_3Y, "3 Years", "1503.72", "2024-01-01", "USD"),
            price_row(SKU_1Y, "1 Year", "650", "2024-01-01", "EUR"),
            {
                let mut consumption = price_row(SKU_1Y, "", "0.096", "2024-01-01", "USD");
                consumption.price_type = "Consumption".into();
                consumption
            },
        ]
    }

    fn priced(order: &ReservationOrder, rows: &[PriceRow], r: &Reference) -> PricedOrder<'static> {
        // Leak the inputs so the priced order can outlive this helper (tests only).
        let order: &'static ReservationOrder = Box::leak(Box::new(order.clone()));
        let rows: &'static [PriceRow] = Box::leak(rows.to_vec().into_boxed_slice());
        let r: &'static Reference = Box::leak(Box::new(r.clone()));
        price_order(order, &ReservationPrices::build(rows), r)
            .unwrap()
            .expect("priced")
    }

    fn rejected(order: &ReservationOrder, rows: &[PriceRow]) -> Rejection {
        let r = reference();
        price_order(order, &ReservationPrices::build(rows), &r)
            .unwrap()
            .expect_err("rejected")
    }

    fn strings<T: ToString>(v: impl IntoIterator<Item = T>) -> Vec<String> {
        v.into_iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn worked_example_monthly_eur() {
        let p = priced(&order(&[]), &sheet(), &reference());
        assert_eq!(p.original_unit_price_usd, d("700.8"));
        assert!(matches!(
            p.price_source,
            PriceSource::PriceSheet { source_row: 4, .. }
        ));
        assert_eq!(p.fx_usd_per_unit, d("1.0854"));
        assert_eq!(p.fx_rate_date, day("2026-01-01"));
        assert_eq!(p.purchase_unit_price, d("645.66"));
        assert_eq!(p.sell_unit_price, d("710.23"));
        assert_eq!(p.total, d("2130.69"));
        assert_eq!(p.quantity, 3);
        let billed: Vec<Dec10> = p.installments.iter().map(|i| i.billed_cost).collect();
        let mut want = vec![d("177.56"); 11];
        want.push(d("177.53"));
        assert_eq!(billed, want);
        assert_eq!(
            strings(p.installments.iter().map(|i| i.date)),
            [
                "2026-01-31",
                "2026-02-28",
                "2026-03-31",
                "2026-04-30",
                "2026-05-31",
                "2026-06-30",
                "2026-07-31",
                "2026-08-31",
                "2026-09-30",
                "2026-10-31",
                "2026-11-30",
                "2026-12-31"
            ]
        );
        assert_eq!(
            from_micros(p.expiration_utc).to_rfc3339(),
            "2027-01-31T10:00:00+00:00"
        );
        // ListCost: 645.66 * 3 = 1936.98 split the same way (sample_data README §E.4).
        let list: Vec<Dec10> = p.installments.iter().map(|i| i.list_cost).collect();
        let mut want = vec![d("161.42"); 11];
        want.push(d("161.36"));
        assert_eq!(list, want);
        // x_ListCostUsd: 700.80 * 3 = 2102.40 in 12 cents-exact parts.
        assert!(p.installments.iter().all(|i| i.list_cost_usd == d("175.2")));
        assert_eq!(
            strings(p.installments.iter().map(|i| i.index)),
            strings(0..12)
        );
        assert_eq!(p.frequency.charge_frequency(), "Recurring");
    }

    #[test]
    fn three_year_monthly_jpy_has_36_installments_summing_to_the_total() {
        let o = order(&[
            ("customer_tenant_id", T_JPY),
            ("sku_id", SKU_3Y),
            ("term", "P3Y"),
            ("quantity", "1"),
            ("purchase_date_utc", "2026-01-12T08:30:00Z"),
        ]);
        let p = priced(&o, &sheet(), &reference());
        // JPY has no minor unit: round0(1503.72 / 0.0064 = 234956.25) = 234956.
        assert_eq!(p.purchase_unit_price, d("234956"));
        // round0(234956 * 1.08 = 253752.48) = 253752.
        assert_eq!(p.sell_unit_price, d("253752"));
        assert_eq!(p.total, d("253752"));
        assert_eq!(p.installments.len(), 36);
        assert!(p.installments[..35]
            .iter()
            .all(|i| i.billed_cost == d("7049")));
        assert_eq!(p.installments[35].billed_cost, d("7037"));
        let sum: i128 = p.installments.iter().map(|i| i.billed_cost.0).sum();
        assert_eq!(Dec10(sum), p.total);
        let list: i128 = p.installments.iter().map(|i| i.list_cost.0).sum();
        assert_eq!(Dec10(list), d("234956"));
        assert_eq!(p.installments[0].list_cost, d("6527"));
        assert_eq!(p.installments[35].list_cost, d("6511"));
        let usd: i128 = p.installments.iter().map(|i| i.list_cost_usd.0).sum();
        assert_eq!(Dec10(usd), d("1503.72"));
        assert_eq!(p.installments[35].date, day("2028-12-12"));
        assert_eq!(
            from_micros(p.expiration_utc).to_rfc3339(),
            "2029-01-12T08:30:00+00:00"
        );
    }

    #[test]
    fn purchase_on_the_31st_clamps_each_month_from_the_purchase_date() {
        // Months are added to the purchase date, not to the previous installment: after
        // 30 April comes 31 May, and February of a leap year gets the 29th.
        let o = order(&[
            ("term", "3 Years"),
            ("sku_id", SKU_3Y),
            ("purchase_date_utc", "2027-08-31T23:59:59Z"),
        ]);
        let p = priced(&o, &sheet(), &reference());
        let dates = strings(p.installments.iter().map(|i| i.date));
        assert_eq!(dates[0], "2027-08-31");
        assert_eq!(dates[1], "2027-09-30");
        assert_eq!(dates[2], "2027-10-31");
        assert_eq!(dates[6], "2028-02-29");
        assert_eq!(dates[7], "2028-03-31");
        assert_eq!(dates[35], "2030-07-31");
        assert_eq!(
            from_micros(p.expiration_utc).to_rfc3339(),
            "2030-08-31T23:59:59+00:00"
        );
        assert_eq!(p.fx_rate_date, day("2027-08-01"));
    }

    #[test]
    fn one_time_with_a_price_captured_on_the_order() {
        let o = order(&[
            ("order_id", "ord-0004"),
            ("sku_id", "DZH318Z0BPVW/00QK"),
            ("quantity", "1"),
            ("billing_frequency", "OneTime"),
            ("purchase_date_utc", "2026-02-09T16:45:00Z"),
            ("original_unit_price_usd", "1234.56"),
        ]);
        let p = priced(&o, &sheet(), &reference());
        assert_eq!(p.price_source, PriceSource::Order);
        assert_eq!(p.fx_usd_per_unit, d("1.079"));
        assert_eq!(p.fx_rate_date, day("2026-02-01"));
        assert_eq!(p.purchase_unit_price, d("1144.17"));
        assert_eq!(p.sell_unit_price, d("1258.59"));
        assert_eq!(p.installments.len(), 1);
        let only = &p.installments[0];
        assert_eq!(
            (
                only.index,
                only.date,
                only.billed_cost,
                only.list_cost,
                only.list_cost_usd
            ),
            (
                0,
                day("2026-02-09"),
                d("1258.59"),
                d("1144.17"),
                d("1234.56")
            )
        );
        assert_eq!(p.frequency.charge_frequency(), "One-Time");
        // A captured price wins over the sheet even when the sheet has the SKU.
        let o = order(&[("original_unit_price_usd", "600")]);
        assert_eq!(
            priced(&o, &sheet(), &reference()).original_unit_price_usd,
            d("600")
        );
    }

    #[test]
    fn usd_organization_uses_rate_one_and_empty_markup() {
        let o = order(&[
            ("customer_tenant_id", T_USD),
            ("term", "1 year"),
            ("quantity", "2"),
            ("billing_frequency", "onetime"),
            ("scope", "shared"),
            ("purchase_date_utc", "2026-02-03T14:20:00Z"),
        ]);
        let p = priced(&o, &sheet(), &reference());
        assert_eq!(p.fx_usd_per_unit, Dec10::ONE);
        assert_eq!(
            (p.purchase_unit_price, p.sell_unit_price, p.total),
            (d("700.8"), d("700.8"), d("1401.6"))
        );
    }

    #[test]
    fn latest_sheet_version_on_or_before_the_purchase_date() {
        let mut rows = sheet();
        rows.push(price_row(SKU_1Y, "1 Year", "800", "2026-02-01", "USD"));
        let before = priced(&order(&[]), &rows, &reference());
        assert_eq!(before.original_unit_price_usd, d("700.8"));
        let on = priced(
            &order(&[("purchase_date_utc", "2026-02-01T00:00:00Z")]),
            &rows,
            &reference(),
        );
        assert_eq!(on.original_unit_price_usd, d("800"));
        assert_eq!(
            on.price_source.effective_start(),
            Some(date_to_days(day("2026-02-01")))
        );
    }

    #[test]
    fn status_and_installments_billed_as_of_a_date() {
        let p = priced(&order(&[]), &sheet(), &reference());
        assert_eq!(p.billed_by(day("2026-01-30")), (0, Dec10::ZERO));
        assert_eq!(p.billed_by(day("2026-02-28")), (2, d("355.12")));
        assert_eq!(p.billed_by(day("2030-01-01")), (12, d("2130.69")));
        assert!(!p.is_expired(day("2027-01-30")));
        assert!(p.is_expired(day("2027-01-31")));
    }

    #[test]
    fn every_rejection_with_the_order_id_in_the_detail() {
        // (changes to the worked example's order, reason, text the detail must contain)
        type Case<'a> = (&'a [(&'a str, &'a str)], ReasonCode, &'a str);
        let cases: [Case; 11] = [
            (
                &[("scope", "Single")],
                ReasonCode::ScopeNotShared,
                "scope 'Single'",
            ),
            (&[("term", "P2Y")], ReasonCode::BadTerm, "term 'P2Y'"),
            (
                &[("quantity", "0")],
                ReasonCode::BadQuantity,
                "quantity '0'",
            ),
            (
                &[("quantity", "1.5")],
                ReasonCode::BadQuantity,
                "quantity '1.5'",
            ),
            (
                &[("quantity", "-2")],
                ReasonCode::BadQuantity,
                "quantity '-2'",
            ),
            (
                &[("billing_frequency", "Weekly")],
                ReasonCode::BadBillingFrequency,
                "billing_frequency 'Weekly'",
            ),
            (
                &[("customer_tenant_id", T_UNMAPPED)],
                ReasonCode::UnmappedTenant,
                T_UNMAPPED,
            ),
            (
                &[("sku_id", "DZH318Z0BPS6/003F")],
                ReasonCode::NoPrice,
                "sku_id 'DZH318Z0BPS6/003F', term 1 Year",
            ),
            (
                // the only USD row takes effect after the purchase
                &[("purchase_date_utc", "2023-12-31T00:00:00Z")],
                ReasonCode::NoPrice,
                "effective on or before 2023-12-31",
            ),
            (
                &[("original_unit_price_usd", "-1")],
                ReasonCode::NoPrice,
                "original_unit_price_usd '-1'",
            ),
            (
                &[("purchase_date_utc", "2026-04-02T00:00:00Z")],
                ReasonCode::NoFxRate,
                "no FX rate for EUR in 2026-04",
            ),
        ];
        for (changes, reason, what) in cases {
            let r = rejected(&order(changes), &sheet());
            assert_eq!(r.reason, reason, "{changes:?}: {}", r.detail);
            assert!(
                r.detail.starts_with("order ord-0001: ") && r.detail.contains(what),
                "{}",
                r.detail
            );
        }
    }

    #[test]
    fn the_first_rejection_that_applies_wins() {
        let all_wrong = [
            ("scope", "Single"),
            ("term", "P2Y"),
            ("quantity", "0"),
            ("billing_frequency", "Weekly"),
            ("customer_tenant_id", T_UNMAPPED),
            ("sku_id", "nothing"),
            ("purchase_date_utc", "2026-04-02T00:00:00Z"),
        ];
        let order_of = [
            ReasonCode::ScopeNotShared,
            ReasonCode::BadTerm,
            ReasonCode::BadQuantity,
            ReasonCode::BadBillingFrequency,
            ReasonCode::UnmappedTenant,
            ReasonCode::NoPrice,
            ReasonCode::NoFxRate,
        ];
        for k in 0..all_wrong.len() {
            let r = rejected(&order(&all_wrong[k..]), &sheet());
            assert_eq!(r.reason, order_of[k], "{}", r.detail);
        }
    }

    #[test]
    fn two_prices_in_the_latest_version_are_a_conflict() {
        let mut rows = sheet();
        rows.push(price_row(SKU_1Y, "1 Year", "701", "2024-01-01", "USD"));
        let r = rejected(&order(&[]), &rows);
        assert_eq!(r.reason, ReasonCode::PriceConflict);
        assert!(r.detail.contains("(700.8, 701)"), "{}", r.detail);
        // the same price twice (two regions) is not a conflict
        let mut rows = sheet();
        rows.push(price_row(SKU_1Y, "1 Year", "700.80", "2024-01-01", "USD"));
        assert_eq!(priced(&order(&[]), &rows, &reference()).total, d("2130.69"));
    }

    #[test]
    fn same_order_id_with_other_content_is_a_duplicate() {
        let first = order(&[("quantity", "2"), ("order_id", "ord-0002")]);
        let mut later = order(&[("quantity", "5"), ("order_id", "ord-0002")]);
        later.source_file = "orders_more.json".into();
        later.source_row = 1;
        let other = order(&[("order_id", "ord-0003")]);
        let verdicts = occurrences(&[first.clone(), later, other, first]);
        assert_eq!(verdicts[0], Occurrence::First);
        let Occurrence::Conflict(r) = &verdicts[1] else {
            panic!("{:?}", verdicts[1]);
        };
        assert_eq!(r.reason, ReasonCode::DuplicateOrder);
        assert_eq!(
            r.detail,
            "order ord-0002: order_id was first seen in row 2 of orders.csv with different content (quantity '2' vs '5'); the first order is kept"
        );
        assert_eq!(verdicts[2], Occurrence::First);
        assert_eq!(verdicts[3], Occurrence::Repeat);
    }

    #[test]
    fn terms_and_frequencies_parse_case_insensitively() {
        for t in ["P1Y", "p1y", "1 Year", "1 YEAR", " 1 year "] {
            assert_eq!(Term::parse(t), Some(Term::OneYear), "{t}");
        }
        for t in ["P3Y", "3 Years", "3 years"] {
            assert_eq!(Term::parse(t), Some(Term::ThreeYears), "{t}");
        }
        for t in ["P2Y", "1 Years", "P1M", ""] {
            assert_eq!(Term::parse(t), None, "{t}");
        }
        assert_eq!(
            BillingFrequency::parse("MONTHLY"),
            Some(BillingFrequency::Monthly)
        );
        assert_eq!(BillingFrequency::parse("One Time"), None);
        assert_eq!(whole_quantity("3.0"), Some(3));
        assert_eq!(whole_quantity("1e2"), Some(100));
        assert_eq!(whole_quantity("abc"), None);
    }

    #[test]
    fn installments_always_sum_to_the_total() {
        for (total, n, digits) in [
            ("2130.69", 12, 2),
            ("0.05", 36, 2),
            ("100", 36, 0),
            ("1", 1, 2),
        ] {
            let parts = split_installments(d(total), n, digits).unwrap();
            assert_eq!(parts.len(), n as usize);
            assert_eq!(Dec10(parts.iter().map(|p| p.0).sum()), d(total));
        }
        assert_eq!(split_installments(d("1"), 0, 2), None);
    }

    #[test]
    fn rejections_become_quarantine_records_with_the_order_keys() {
        let o = order(&[("scope", "Single")]);
        let q = rejected(&o, &sheet()).into_quarantine(&o);
        assert_eq!(q.reason, ReasonCode::ScopeNotShared);
        assert_eq!((q.source_file.as_str(), q.source_row), ("orders.csv", 2));
        assert_eq!(q.customer_tenant_id.as_deref(), Some(T_EUR));
        assert_eq!(
            q.subscription_id.as_deref(),
            Some("fbfcd135-847c-436c-ac68-265a0737f7fd")
        );
        assert_eq!(q.usage_date, Some(day("2026-01-31")));
    }
}
