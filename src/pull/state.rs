//! `DIR/_pull/state.json`: how far each subscription's utilization has been pulled
//! (pull.md, utilization). `start_time`/`end_time` select when usage was *reported*, so each
//! run starts at the end of the subscription's last complete window minus the overlap; a
//! subscription never pulled starts at `--from`; windows longer than 31 days are split.
//!
//! A run first records the windows it plans as `pending`; each completed window leaves
//! `pending` and advances `complete_until`. A run killed in the middle thus leaves the rest
//! of its plan in the state, and the next run pulls exactly those windows first (and nothing
//! new for that subscription), so that it ends with the same files an uninterrupted run
//! writes. A subscription already complete up to `--to` is not pulled again.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest window (pull.md).
pub const MAX_WINDOW_DAYS: i64 = 31;

/// A reporting-time window `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
}

impl Window {
    /// `20260101T000000Z_20260201T000000Z`: the window's file-name stem.
    pub fn name(&self) -> String {
        format!(
            "{}_{}",
            self.start.format("%Y%m%dT%H%M%SZ"),
            self.end.format("%Y%m%dT%H%M%SZ")
        )
    }

    /// Parse [`Window::name`] back.
    pub fn parse_name(stem: &str) -> Option<Window> {
        let (a, b) = stem.split_once('_')?;
        Some(Window {
            start: super::parse_time(a)?,
            end: super::parse_time(b)?,
        })
    }

    /// `start_time` / `end_time` query values.
    pub fn query_times(&self) -> (String, String) {
        (
            self.start.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            self.end.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
    }
}

/// One subscription's progress.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionState {
    /// End of the last complete window.
    #[serde(default)]
    pub complete_until: Option<DateTime<Utc>>,
    /// Windows planned by a run and not completed yet (a killed run's rest).
    #[serde(default)]
    pub pending: Vec<Window>,
}

/// The whole state file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullState {
    /// Format version.
    #[serde(default)]
    pub version: u32,
    /// `tenant/subscription` (lowercase GUIDs) -> progress.
    #[serde(default)]
    pub subscriptions: BTreeMap<String, SubscriptionState>,
}

/// The state key of a subscription.
pub fn key(tenant: &str, subscription: &str) -> String {
    format!("{tenant}/{subscription}")
}

/// Split `[start, end)` into windows of at most 31 days.
pub fn split(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<Window> {
    let mut out = Vec::new();
    let mut s = start;
    while s < end {
        let e = (s + Duration::days(MAX_WINDOW_DAYS)).min(end);
        out.push(Window { start: s, end: e });
        s = e;
    }
    out
}

/// The windows a run pulls for a subscription: a killed run's pending windows if any,
/// else from `complete_until - overlap` (or `from` for a new subscription) to `to`.
pub fn plan(
    state: Option<&SubscriptionState>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    overlap: Duration,
) -> Vec<Window> {
    match state {
        Some(s) if !s.pending.is_empty() => s.pending.clone(),
        // Up to date with this `--to`: pulling the overlap again would only repeat what the
        // last run fetched for the same reporting times.
        Some(SubscriptionState {
            complete_until: Some(done),
            ..
        }) if *done >= to => Vec::new(),
        Some(SubscriptionState {
            complete_until: Some(done),
            ..
        }) => split(*done - overlap, to),
        _ => split(from, to),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        crate::pull::parse_time(s).unwrap()
    }

    #[test]
    fn windows_split_at_31_days_and_name_in_utc() {
        let w = split(t("2026-01-01"), t("2026-03-15"));
        let names: Vec<String> = w.iter().map(Window::name).collect();
        assert_eq!(
            names,
            [
                "20260101T000000Z_20260201T000000Z",
                "20260201T000000Z_20260304T000000Z",
                "20260304T000000Z_20260315T000000Z"
            ]
        );
        assert_eq!(Window::parse_name(&names[1]), Some(w[1]));
        assert!(split(t("2026-01-02"), t("2026-01-01")).is_empty());
    }

    #[test]
    fn plan_resumes_pending_then_overlaps() {
        let (from, to, ov) = (t("2026-01-01"), t("2026-02-10"), Duration::days(3));
        assert_eq!(plan(None, from, to, ov).len(), 2);
        let pending = SubscriptionState {
            complete_until: Some(t("2026-02-01")),
            pending: vec![Window {
                start: t("2026-02-01"),
                end: t("2026-02-05"),
            }],
        };
        assert_eq!(plan(Some(&pending), from, to, ov), pending.pending);
        let done = SubscriptionState {
            complete_until: Some(t("2026-02-05")),
            pending: vec![],
        };
        assert_eq!(
            plan(Some(&done), from, to, ov),
            vec![Window {
                start: t("2026-02-02"),
                end: t("2026-02-10")
            }]
        );
        // Up to date with the same --to (or a later one): nothing to pull.
        assert!(plan(Some(&done), from, t("2026-02-05"), ov).is_empty());
        assert!(plan(Some(&done), from, t("2026-02-04"), ov).is_empty());
    }
}
