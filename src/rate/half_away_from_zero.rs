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
}
