//! `Dec10`: an exact decimal with 10 fractional digits held as `i128`, the in-memory twin of
//! the Parquet `DECIMAL(38,10)` columns. Parsing reads a number's *text* (JSON token or CSV
//! cell), including exponents like `1.5E-7`; nothing ever passes through a float.

use crate::model::half_away_from_zero::{div_round, pow10};
use std::fmt;

/// Fractional digits of every stored amount and quantity.
pub const SCALE: u32 = 10;
/// `10^SCALE`, the raw value of `1`.
pub const ONE_RAW: i128 = 10_000_000_000;
/// Precision of the Parquet/Arrow decimal columns.
pub const PRECISION: u8 = 38;
const MAX_ABS_RAW: i128 = 99_999_999_999_999_999_999_999_999_999_999_999_999; // 38 nines

/// An exact decimal at scale 10 (`raw / 10^10`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dec10(pub i128);

/// Why a text is not a decimal number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Empty text.
    #[error("empty number")]
    Empty,
    /// Not of the form `[+-]digits[.digits][e[+-]digits]`.
    #[error("'{0}' is not a decimal number")]
    Syntax(String),
    /// Too large for DECIMAL(38,10).
    #[error("'{0}' does not fit DECIMAL(38,10)")]
    Overflow(String),
}

impl Dec10 {
    /// Zero.
    pub const ZERO: Dec10 = Dec10(0);
    /// One.
    pub const ONE: Dec10 = Dec10(ONE_RAW);

    /// From a whole number.
    pub fn from_int(v: i64) -> Dec10 {
        Dec10(v as i128 * ONE_RAW)
    }

    /// Parse a decimal from its text, rounding half away from zero to 10 decimals when the
    /// text has more (rating.md §1). Accepts a leading sign and an `e`/`E` exponent.
    pub fn parse(text: &str) -> Result<Dec10, DecimalError> {
        let s = text.trim();
        if s.is_empty() {
            return Err(DecimalError::Empty);
        }
        let bad = || DecimalError::Syntax(text.to_string());
        let over = || DecimalError::Overflow(text.to_string());
        let (mantissa, exp) = match s.find(['e', 'E']) {
            Some(i) => {
                let e: i32 = s[i + 1..].parse().map_err(|_| bad())?;
                (&s[..i], e)
            }
            None => (s, 0),
        };
        let (neg, digits) = match mantissa.as_bytes().first() {
            Some(b'-') => (true, &mantissa[1..]),
            Some(b'+') => (false, &mantissa[1..]),
            _ => (false, mantissa),
        };
        let (int_part, frac_part) = match digits.find('.') {
            Some(i) => (&digits[..i], &digits[i + 1..]),
            None => (digits, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        if !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        // value = digits(int_part ++ frac_part) * 10^(exp - frac_len); target raw = value * 10^10.
        let all = int_part.bytes().chain(frac_part.bytes());
        let mut acc: i128 = 0;
        let mut leading = true;
        let mut sig = 0u32;
        for b in all {
            let d = (b - b'0') as i128;
            if leading && d == 0 {
                continue;
            }
            leading = false;
            sig += 1;
            if sig > 38 {
                return Err(over());
            }
            acc = acc * 10 + d;
        }
        let shift = exp as i64 - frac_part.len() as i64 + SCALE as i64;
        let raw = if acc == 0 {
            0
        } else if shift >= 0 {
            if shift > 38 {
                return Err(over());
            }
            acc.checked_mul(pow10(shift as u32)).ok_or_else(over)?
        } else if -shift > 38 {
            0
        } else {
            div_round(acc, pow10((-shift) as u32))
        };
        if raw > MAX_ABS_RAW {
            return Err(over());
        }
        Ok(Dec10(if neg { -raw } else { raw }))
    }

    /// The raw scaled integer.
    pub fn raw(self) -> i128 {
        self.0
    }

    /// Checked sum.
    pub fn checked_add(self, o: Dec10) -> Option<Dec10> {
        self.0
            .checked_add(o.0)
            .filter(|v| v.abs() <= MAX_ABS_RAW)
            .map(Dec10)
    }

    /// Checked difference.
    pub fn checked_sub(self, o: Dec10) -> Option<Dec10> {
        self.0
            .checked_sub(o.0)
            .filter(|v| v.abs() <= MAX_ABS_RAW)
            .map(Dec10)
    }

    /// `true` when below zero.
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Plain text with trailing zeros trimmed (`8.57625`, `0`, `-1.5`).
    pub fn to_plain(self) -> String {
        let s = self.to_string();
        let s = s.trim_end_matches('0');
        s.trim_end_matches('.').to_string()
    }

    /// Text with exactly `digits` decimals (`digits <= 10`), for values already rounded.
    pub fn to_fixed(self, digits: u32) -> String {
        let full = self.to_string();
        if digits >= SCALE {
            return full;
        }
        let cut = full.len() - (SCALE - digits) as usize;
        let s = &full[..cut];
        s.trim_end_matches('.').to_string()
    }
}

impl fmt::Display for Dec10 {
    /// Always 10 decimals: `8.5762500000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let neg = self.0 < 0;
        let abs = self.0.unsigned_abs();
        let int = abs / ONE_RAW as u128;
        let frac = abs % ONE_RAW as u128;
        write!(f, "{}{}.{:010}", if neg { "-" } else { "" }, int, frac)
    }
}

impl std::str::FromStr for Dec10 {
    type Err = DecimalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dec10::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        Dec10::parse(s).unwrap().to_string()
    }

    #[test]
    fn parses_plain_and_exponent_forms() {
        assert_eq!(p("12.3456"), "12.3456000000");
        assert_eq!(p("1.5E-7"), "0.0000001500");
        assert_eq!(p("1e-3"), "0.0010000000");
        assert_eq!(p("-2"), "-2.0000000000");
        assert_eq!(p("+0.5"), "0.5000000000");
        assert_eq!(p("1.25e2"), "125.0000000000");
        assert_eq!(p(".5"), "0.5000000000");
        assert_eq!(p("5."), "5.0000000000");
        assert_eq!(p("0.0"), "0.0000000000");
    }

    #[test]
    fn rounds_extra_digits_half_away_from_zero() {
        assert_eq!(p("0.217790327034891"), "0.2177903270");
        assert_eq!(p("0.00000000005"), "0.0000000001");
        assert_eq!(p("-0.00000000005"), "-0.0000000001");
        assert_eq!(p("0.00000000004999"), "0.0000000000");
        assert_eq!(p("1e-40"), "0.0000000000");
    }

    #[test]
    fn rejects_non_numbers() {
        for bad in [
            "abc", "1,5", "1.2.3", "--1", "e5", "1e", "0x10", "NaN", "-", ".",
        ] {
            assert!(Dec10::parse(bad).is_err(), "{bad} should be rejected");
        }
        assert_eq!(Dec10::parse(""), Err(DecimalError::Empty));
        assert!(matches!(
            Dec10::parse("1e40"),
            Err(DecimalError::Overflow(_))
        ));
    }

    #[test]
    fn formats() {
        assert_eq!(Dec10::parse("8.57625").unwrap().to_plain(), "8.57625");
        assert_eq!(Dec10::ZERO.to_plain(), "0");
        assert_eq!(Dec10::parse("177.56").unwrap().to_fixed(2), "177.56");
        assert_eq!(Dec10::parse("2130").unwrap().to_fixed(0), "2130");
        assert_eq!(Dec10::parse("-0.5").unwrap().to_string(), "-0.5000000000");
    }
}
