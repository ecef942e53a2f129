//! An inclusive range of usage dates: the period a reconciliation cuts (`--from`..`--to`) and
//! the charge period of each invoice line (a partner billing cycle, reconciliation.md).

use crate::model::time::{date_to_days, month_of, next_month_start};
use chrono::NaiveDate;
use std::fmt;

/// Usage dates `start..=end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    /// First usage date (inclusive).
    pub start: NaiveDate,
    /// Last usage date (inclusive).
    pub end: NaiveDate,
}

impl Period {
    /// `start..=end`; `None` when `end` is before `start`.
    pub fn new(start: NaiveDate, end: NaiveDate) -> Option<Period> {
        (start <= end).then_some(Period { start, end })
    }

    /// Whether the Arrow `Date32` day `days` lies in the period.
    pub fn contains_days(&self, days: i32) -> bool {
        date_to_days(self.start) <= days && days <= date_to_days(self.end)
    }

    /// `YYYY-MM` of every calendar month the period touches, in order: the only `costs/`
    /// partitions a reconciliation has to read.
    pub fn months(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut first = self.start;
        while first <= self.end {
            out.push(month_of(first));
            first = next_month_start(first);
        }
        out
    }

    /// `YYYY-MM` of the first day: whose FX rate converts the period's USD cost.
    pub fn start_month(&self) -> String {
        month_of(self.start)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn months_across_a_year_boundary() {
        let p = Period::new(d("2025-12-15"), d("2026-02-14")).unwrap();
        assert_eq!(p.months(), vec!["2025-12", "2026-01", "2026-02"]);
        assert_eq!(p.start_month(), "2025-12");
        assert_eq!(p.to_string(), "2025-12-15..2026-02-14");
        let one_day = Period::new(d("2026-01-31"), d("2026-01-31")).unwrap();
        assert_eq!(one_day.months(), vec!["2026-01"]);
        assert!(Period::new(d("2026-02-01"), d("2026-01-31")).is_none());
    }

    #[test]
    fn bounds_are_inclusive() {
        let p = Period::new(d("2026-01-15"), d("2026-02-14")).unwrap();
        assert!(p.contains_days(date_to_days(d("2026-01-15"))));
        assert!(p.contains_days(date_to_days(d("2026-02-14"))));
        assert!(!p.contains_days(date_to_days(d("2026-01-14"))));
        assert!(!p.contains_days(date_to_days(d("2026-02-15"))));
    }
}
