//! FX conversion (rating.md §5, reservations.md): amounts in USD divided by Microsoft's
//! USD-per-unit rate of the billing currency, exactly, rounded once.

use crate::error::{Error, Result};
use crate::model::decimal::{Dec10, ONE_RAW, SCALE};
use crate::model::half_away_from_zero::div_round_to;

/// `ListCost = round10(usd / fx)`, exact.
pub fn to_billing_currency(usd: Dec10, fx_usd_per_unit: Dec10) -> Result<Dec10> {
    convert_from_usd(usd, fx_usd_per_unit, SCALE)
}

/// `round_digits(usd / fx)`, exact: the quotient is rounded once, half away from zero, to
/// `digits` decimals (10 for rated rows, the currency's minor unit for reservation prices).
pub fn convert_from_usd(usd: Dec10, fx_usd_per_unit: Dec10, digits: u32) -> Result<Dec10> {
    let num = usd.0.checked_mul(ONE_RAW);
    num.and_then(|n| div_round_to(n, fx_usd_per_unit.0, digits))
        .map(Dec10)
        .ok_or_else(|| Error::Overflow {
            context: "converting USD to the billing currency".into(),
        })
}
