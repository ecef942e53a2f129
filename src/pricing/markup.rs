//! Markup and adjustment (rating.md §5, reservations.md): `cost * (1 + percent/100)`,
//! exactly, rounded once.

use crate::error::{Error, Result};
use crate::model::decimal::{Dec10, ONE_RAW, SCALE};
use crate::model::half_away_from_zero::div_round_to;

/// `round10(cost * (1 + percent/100))`, exact.
pub fn apply_percent(cost: Dec10, percent: Dec10) -> Result<Dec10> {
    apply_percent_rounded(cost, percent, SCALE)
}

/// `round_digits(cost * (1 + percent/100))`, exact, rounded once to `digits` decimals.
pub fn apply_percent_rounded(cost: Dec10, percent: Dec10, digits: u32) -> Result<Dec10> {
    let overflow = || Error::Overflow {
        context: "applying the adjustment percent".into(),
    };
    let hundred = 100 * ONE_RAW;
    let factor = hundred.checked_add(percent.0).ok_or_else(overflow)?;
    let num = cost.0.checked_mul(factor).ok_or_else(overflow)?;
    div_round_to(num, hundred, digits)
        .map(Dec10)
        .ok_or_else(overflow)
}
