//! Units of measure (rating.md §3): a unit string is read as `(multiplier, base)` so that a
//! usage quantity can be converted into the price's unit before it climbs the tier ladder.

use crate::model::decimal::Dec10;
use crate::model::half_away_from_zero::div_round;

/// A parsed unit: `multiplier` of `base` (e.g. `100 Hours` is 100 of `hour`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Unit {
    /// How many base units one unit holds.
    pub multiplier: Dec10,
    /// Lowercase base without plural `s` (`hour`, `gb/month`, `unit`), or the whole lowercase
    /// string when it does not parse.
    pub base: String,
}

impl Unit {
    /// Read a unit string. Case, spaces, a trailing plural `s` and thousands separators are
    /// ignored; `K`/`M` after the number multiply by 10^3/10^6. Text that does not parse
    /// becomes an opaque unit (multiplier 1, the lowercase string as base).
    pub fn parse(text: &str) -> Unit {
        let lower: String = text
            .to_lowercase()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        parse_lower(&lower).unwrap_or(Unit {
            multiplier: Dec10::ONE,
            base: lower,
        })
    }

    /// Convert `quantity` in this unit into `to`'s unit (`q * m_self / m_to`, rounded to 10
    /// decimals). `None` when the bases differ.
    pub fn convert(&self, quantity: Dec10, to: &Unit) -> Option<Dec10> {
        if self.base != to.base {
            return None;
        }
        if self.multiplier == to.multiplier {
            return Some(quantity);
        }
        let num = quantity.0.checked_mul(self.multiplier.0)?;
        Some(Dec10(div_round(num, to.multiplier.0)))
    }
}

fn parse_lower(s: &str) -> Option<Unit> {
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == ',' || c == '.'))
        .unwrap_or(s.len());
    let (num_text, mut rest) = s.split_at(num_end);
    let mut multiplier = if num_text.is_empty() {
        Dec10::ONE
    } else {
        let digits: String = num_text.chars().filter(|c| *c != ',').collect();
        Dec10::parse(&digits).ok()?
    };
    if !num_text.is_empty() {
        if let Some(r) = rest
            .strip_prefix('k')
            .filter(|r| r.is_empty() || !r.starts_with(char::is_alphabetic))
        {
            multiplier = Dec10(multiplier.0.checked_mul(1000)?);
            rest = r;
        } else if let Some(r) = rest
            .strip_prefix('m')
            .filter(|r| r.is_empty() || r.starts_with('/'))
        {
            multiplier = Dec10(multiplier.0.checked_mul(1_000_000)?);
            rest = r;
        }
    }
    let rest = rest
        .strip_prefix('/')
        .filter(|_| !num_text.is_empty())
        .unwrap_or(rest);
    if rest.chars().any(|c| c.is_ascii_digit()) || multiplier.0 <= 0 {
        return None;
    }
    let base = match rest {
        "" | "s" => "unit".to_string(),
        r if r.len() > 1 && r.ends_with('s') && !r.ends_with("ss") => r[..r.len() - 1].to_string(),
        r => r.to_string(),
    };
    Some(Unit { multiplier, base })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> (String, String) {
        let unit = Unit::parse(s);
        (unit.multiplier.to_plain(), unit.base)
    }

    #[test]
    fn spec_unit_table() {
        assert_eq!(u("1 Hour"), ("1".into(), "hour".into()));
        assert_eq!(u("Hours"), ("1".into(), "hour".into()));
        assert_eq!(u("1 Hours"), ("1".into(), "hour".into()));
        assert_eq!(u("100 Hours"), ("100".into(), "hour".into()));
        assert_eq!(u("10K"), ("10000".into(), "unit".into()));
        assert_eq!(u("10,000s"), ("10000".into(), "unit".into()));
        assert_eq!(u("10000"), ("10000".into(), "unit".into()));
        assert_eq!(u("1 GB/Month"), ("1".into(), "gb/month".into()));
        assert_eq!(u("1/Month"), ("1".into(), "month".into()));
        assert_eq!(u("1 GB/Hr"), ("1".into(), "gb/hr".into()));
        assert_eq!(u("Connections"), ("1".into(), "connection".into()));
        assert_eq!(u("1 GB"), ("1".into(), "gb".into()));
    }

    #[test]
    fn opaque_units_compare_as_lowercase_text() {
        let a = Unit::parse("1 GB/10 Hours");
        assert_eq!(a.base, "1gb/10hours");
        assert_eq!(a.multiplier, Dec10::ONE);
    }

    #[test]
    fn converts_hours_into_hundreds_of_hours() {
        // rating.md §7 Units: 36 Hours at a price per 100 Hours is 0.36 price units.
        let q = Unit::parse("Hours").convert(Dec10::from_int(36), &Unit::parse("100 Hours"));
        assert_eq!(q.unwrap().to_plain(), "0.36");
        assert_eq!(
            Unit::parse("1 GB").convert(Dec10::ONE, &Unit::parse("1 Hour")),
            None
        );
    }
}
