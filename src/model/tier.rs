//! The tier options of rating.md §6: what accumulates on one ladder ([`TierScope`]) and over
//! which period ([`TierPeriod`]). Every stage that rates, re-tiers or labels rows reads them.

use crate::model::choice::OptionEnum;
use chrono::{Datelike, NaiveDate};

/// What accumulates on one ladder (rating.md §6).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum TierScope {
    /// `(subscription, meter, period)`, the default.
    #[default]
    Subscription,
    /// `(customer tenant, meter, period)`.
    Customer,
    /// `(organization, meter, period)`.
    Organization,
}

impl TierScope {
    /// Name as written in `x_TierScope` and options.
    pub fn as_str(self) -> &'static str {
        match self {
            TierScope::Subscription => "subscription",
            TierScope::Customer => "customer",
            TierScope::Organization => "organization",
        }
    }

    /// Parse an option value (or an `x_TierScope` cell).
    pub fn parse(s: &str) -> Option<TierScope> {
        <TierScope as OptionEnum>::from_text(s)
    }
}

impl OptionEnum for TierScope {}

/// Over which period tiers accumulate (rating.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TierPeriod {
    /// The calendar month, the default.
    #[default]
    CalendarMonth,
    /// The partner's billing cycle starting on this day (1..=28) of each month.
    BillingCycle(u32),
}

impl TierPeriod {
    /// Parse `calendar_month` or `billing_cycle:<day>`.
    pub fn parse(s: &str) -> Option<TierPeriod> {
        if s == "calendar_month" {
            return Some(TierPeriod::CalendarMonth);
        }
        let day: u32 = s.strip_prefix("billing_cycle:")?.parse().ok()?;
        (1..=28)
            .contains(&day)
            .then_some(TierPeriod::BillingCycle(day))
    }

    /// Written form.
    pub fn as_string(self) -> String {
        match self {
            TierPeriod::CalendarMonth => "calendar_month".into(),
            TierPeriod::BillingCycle(d) => format!("billing_cycle:{d}"),
        }
    }

    /// First day of the period containing `day`.
    pub fn period_start(self, day: NaiveDate) -> NaiveDate {
        match self {
            TierPeriod::CalendarMonth => day.with_day(1).unwrap_or(day),
            TierPeriod::BillingCycle(d) if day.day() >= d => day.with_day(d).unwrap_or(day),
            TierPeriod::BillingCycle(d) => {
                let prev = day.with_day(1).and_then(|f| f.pred_opt()).unwrap_or(day);
                prev.with_day(d).unwrap_or(prev)
            }
        }
    }
}
