//! `reserve` options as given, by flags or by a pipeline's `[reserve]` table, before
//! validation: both build a [`ReserveRequest`] and call [`ReserveRequest::validate`], so the
//! date rule, its message and the "today" default exist once.

use crate::reserve::run::ReserveOptions;
use chrono::NaiveDate;

/// `reserve` options as text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReserveRequest {
    /// `YYYY-MM-DD` (UTC) for asset status and installments billed so far; default today.
    pub as_of: Option<String>,
}

impl ReserveRequest {
    /// Validated options, or every problem at once; `name` says how a field is called where
    /// the user wrote it (`--as-of`, `bad.toml:4: reserve.as_of`).
    pub fn validate(
        &self,
        name: &dyn Fn(&str) -> String,
    ) -> std::result::Result<ReserveOptions, Vec<String>> {
        let as_of = match self.as_of.as_deref() {
            None => chrono::Utc::now().date_naive(),
            Some(text) => NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
                vec![format!(
                    "{} '{text}': expected a date YYYY-MM-DD",
                    name("as_of")
                )]
            })?,
        };
        Ok(ReserveOptions { as_of })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_or_today() {
        let name = |f: &str| format!("--{}", f.replace('_', "-"));
        let given = ReserveRequest {
            as_of: Some("2026-02-16".into()),
        };
        assert_eq!(
            given.validate(&name).unwrap().as_of,
            NaiveDate::from_ymd_opt(2026, 2, 16).unwrap()
        );
        // Today, read once: either side of a midnight passing during the call.
        let before = chrono::Utc::now().date_naive();
        let today = ReserveRequest::default().validate(&name).unwrap().as_of;
        let after = chrono::Utc::now().date_naive();
        assert!(today == before || today == after, "{today}");
        let bad = ReserveRequest {
            as_of: Some("2026-13-01".into()),
        };
        assert_eq!(
            bad.validate(&name).unwrap_err(),
            ["--as-of '2026-13-01': expected a date YYYY-MM-DD"]
        );
    }
}
