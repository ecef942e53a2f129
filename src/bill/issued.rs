//! `bills/_issued.json` (billing.md): the months whose statements were issued, with each
//! statement's SHA-256 and line amounts. An issued statement never changes; what was billed
//! for a line of an issued month is its issued amount plus the adjustments issued since.

use crate::bill::statement::{HolderKind, Line, LineKind};
use crate::error::{Error, Result};
use crate::model::decimal::Dec10;
use crate::store::Lake;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Lake-relative path of the registry.
pub const ISSUED_PATH: &str = "bills/_issued.json";

/// One issued statement.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IssuedStatement {
    /// Holder kind.
    pub holder_kind: HolderKind,
    /// Holder ID.
    pub holder_id: String,
    /// Invoice ID.
    pub invoice_id: String,
    /// Currency.
    pub currency: String,
    /// Total, as text.
    pub total: String,
    /// `statement.json`, lake-relative.
    pub json_path: String,
    /// Its SHA-256, hex.
    pub json_sha256: String,
    /// `statement.csv`, lake-relative.
    pub csv_path: String,
    /// Its SHA-256, hex.
    pub csv_sha256: String,
    /// Its lines (with keys), so that later statements can adjust them.
    pub lines: Vec<Line>,
}

/// One issued month.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct IssuedMonth {
    /// Run that issued it.
    pub run_id: String,
    /// When, RFC 3339.
    pub issued_at: String,
    /// Its statements.
    pub statements: Vec<IssuedStatement>,
}

/// The registry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Issued {
    /// `YYYY-MM` -> issued month.
    pub months: BTreeMap<String, IssuedMonth>,
}

/// What has been billed for each line key of one month: amount and a line describing it.
pub type Billed = BTreeMap<String, (Dec10, Line)>;

impl Issued {
    /// Load the registry (empty when nothing was issued).
    pub fn load(lake: &Lake) -> Result<Issued> {
        Ok(lake.get_json(ISSUED_PATH)?.unwrap_or_default())
    }

    /// Write the registry atomically.
    pub fn save(&self, lake: &Lake) -> Result<()> {
        lake.put_json(ISSUED_PATH, self)
    }

    /// Whether `month` is issued.
    pub fn is_issued(&self, month: &str) -> bool {
        self.months.contains_key(month)
    }

    /// Issued months before `month`, oldest first.
    pub fn issued_before<'a>(&'a self, month: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.months
            .keys()
            .map(String::as_str)
            .filter(move |m| *m < month)
    }

    /// Holders with an issued statement in any month, sorted.
    pub fn holders(&self) -> Vec<(HolderKind, String)> {
        let mut out: Vec<(HolderKind, String)> = self
            .months
            .values()
            .flat_map(|m| m.statements.iter())
            .map(|s| (s.holder_kind, s.holder_id.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// What the holder has been billed for each line of `month`: its issued statement of
    /// that month (adjustment lines excluded) plus every issued adjustment of that month.
    pub fn billed_for(&self, kind: HolderKind, holder: &str, month: &str) -> Result<Billed> {
        let mut out: Billed = BTreeMap::new();
        let mut add = |key: &str, line: &Line, amount: Dec10| -> Result<()> {
            let e = out
                .entry(key.to_string())
                .or_insert((Dec10::ZERO, line.clone()));
            e.0 = e.0.checked_add(amount).ok_or_else(|| Error::Overflow {
                context: format!("summing issued amounts of {holder} {month}"),
            })?;
            Ok(())
        };
        for (m, issued) in &self.months {
            for s in issued
                .statements
                .iter()
                .filter(|s| s.holder_kind == kind && s.holder_id == holder)
            {
                for l in &s.lines {
                    match (&l.adjusts, l.kind) {
                        (Some((am, key)), LineKind::Adjustment) if am == month => {
                            add(key, &adjusted_line(l, key, month), l.amount)?
                        }
                        (None, k) if k != LineKind::Adjustment && m == month => {
                            add(&l.key, l, l.amount)?
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The line an adjustment line corrects, as far as it can be rebuilt from the adjustment
/// (for describing a line that no longer exists when it is adjusted again).
fn adjusted_line(adjustment: &Line, key: &str, month: &str) -> Line {
    let prefix = format!("Adjustment for {month}: ");
    let kind = if key == "rounding" {
        LineKind::Rounding
    } else if key.starts_with("reservation|") {
        LineKind::Reservation
    } else {
        LineKind::Usage
    };
    Line {
        kind,
        key: key.to_string(),
        description: adjustment
            .description
            .strip_prefix(&prefix)
            .unwrap_or(&adjustment.description)
            .to_string(),
        adjusts: None,
        ..adjustment.clone()
    }
}
