//! The one rounding module (rating.md §1): every rounding in cspcost, to 10 decimals or to a
//! currency's minor unit, goes through [`div_round`], which rounds **half away from zero**.
//!
//! All values are `i128` fixed point; rounding is exact integer division with the remainder
//! deciding, so no intermediate precision is ever lost.

/// `num / den` rounded half away from zero. `den` must not be zero.
pub fn div_round(num: i128, den: i128) -> i128 {
    debug_assert!(den != 0, "division by zero in div_round");
    let q = num / den;
    let r = num % den;
    // |r| * 2 >= |den|  <=>  the discarded part is at least one half.
    if r.unsigned_abs() * 2 >= den.unsigned_abs() {
        if (num < 0) != (den < 0) {
            q - 1
        } else {
            q + 1
        }
    } else {
        q
    }
}

/// Powers of ten as `i128`, `pow10(0..=38)`.
pub fn pow10(exp: u32) -> i128 {
    10i128.pow(exp)
}

/// Reduce a fixed-point integer from `from_scale` decimals to `to_scale` decimals
/// (`to_scale <= from_scale`), rounding half away from zero.
pub fn rescale_down(value: i128, from_scale: u32, to_scale: u32) -> i128 {
    debug_assert!(to_scale <= from_scale);
    div_round(value, pow10(from_scale - to_scale))
}

/// Round a scale-10 value to `digits` decimals, keeping scale 10 (e.g. to a currency's minor
/// unit: `round_scale10_to(1_775_575_000_000, 2)` is 177.56 at scale 10).
pub fn round_scale10_to(value: i128, digits: u32) -> i128 {
    if digits >= 10 {
        return value;
    }
    let step = pow10(10 - digits);
    div_round(value, step) * step
}

/// The scale-10 value `num / den` (e.g. an amount's raw integer divided by a count, or by
/// another raw amount times `10^10`) rounded half away from zero to `digits` decimals in one
/// step, returned at scale 10. Rounding once from the exact quotient avoids the double
/// rounding of `round10` followed by `round_scale10_to`. `None` when `den` is zero or the
/// intermediate product leaves `i128`.
pub fn div_round_to(num: i128, den: i128, digits: u32) -> Option<i128> {
    let step = pow10(10 - digits.min(10));
    let scaled_den = den.checked_mul(step)?;
    if scaled_den == 0 {
        return None;
    }
    div_round(num, scaled_den).checked_mul(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_go_away_from_zero() {
        assert_eq!(div_round(5, 10), 1);
        assert_eq!(div_round(-5, 10), -1);
        assert_eq!(div_round(5, -10), -1);
        assert_eq!(div_round(4, 10), 0);
        assert_eq!(div_round(-4, 10), 0);
        assert_eq!(div_round(15, 10), 2);
        assert_eq!(div_round(25, 10), 3);
        assert_eq!(div_round(-25, 10), -3);
        assert_eq!(div_round(14, 10), 1);
    }

    #[test]
    fn spec_examples_at_scale_10() {
        // 0.00000000005 -> 0.0000000001 (values at scale 11 reduced to scale 10)
        assert_eq!(rescale_down(5, 11, 10), 1);
        assert_eq!(rescale_down(-5, 11, 10), -1);
    }

    #[test]
    fn minor_units() {
        // 177.5575 -> 177.56 ; 645.6605 -> 645.66
        assert_eq!(round_scale10_to(1_775_575_000_000, 2), 1_775_600_000_000);
        assert_eq!(round_scale10_to(6_456_605_000_000, 2), 6_456_600_000_000);
        assert_eq!(round_scale10_to(-1_775_575_000_000, 2), -1_775_600_000_000);
        assert_eq!(round_scale10_to(5_000_000_000, 0), 10_000_000_000);
    }

    #[test]
    fn quotients_round_once_to_the_minor_unit() {
        // 2130.69 / 12 = 177.5575 -> 177.56
        assert_eq!(
            div_round_to(21_306_900_000_000, 12, 2),
            Some(1_775_600_000_000)
        );
        // 253752 / 36 = 7048.67 -> 7049 (JPY, 0 digits)
        assert_eq!(
            div_round_to(2_537_520_000_000_000, 36, 0),
            Some(70_490_000_000_000)
        );
        // 10 digits is plain div_round
        assert_eq!(div_round_to(5, 10, 10), Some(div_round(5, 10)));
        // a value just below a half stays below: no double rounding (0.004999999999|6 -> 0.00)
        assert_eq!(div_round_to(49_999_999_996, 1_000, 2), Some(0));
        assert_eq!(
            div_round_to(-1_775_575_000_000, 1, 2),
            Some(-1_775_600_000_000)
        );
        assert_eq!(div_round_to(1, 0, 2), None);
        assert_eq!(div_round_to(1, i128::MAX, 2), None);
    }
}
