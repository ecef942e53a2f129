//! Pure tier math (rating.md §3-4): price ladders, the cost function `C_v(x)`, and the
//! telescoping allocation `round10(C(after)) - round10(C(before))`. No I/O here.

use crate::model::decimal::{Dec10, ONE_RAW};
use crate::model::half_away_from_zero::div_round;

/// One tier: from `minimum` (price units) up to the next tier's minimum, at `unit_price` USD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PriceTier {
    /// First quantity of the tier (inclusive).
    pub minimum: Dec10,
    /// Price per price unit.
    pub unit_price: Dec10,
}

/// The tiers of one price version, sorted by minimum. Below the lowest minimum usage is free.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierLadder {
    tiers: Vec<PriceTier>,
}

/// Arithmetic left the 38-digit range (never with realistic data; reported, not wrapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("tier arithmetic overflowed 38 digits")]
pub struct TierOverflow;

/// Where one record sits on a ladder and what it costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TierAllocation {
    /// `round10(C(after)) - round10(C(before))`, USD.
    pub cost: Dec10,
    /// Unit price of the tier where `after` falls.
    pub unit_price: Dec10,
    /// Minimum of the tier where the record starts.
    pub first_minimum: Dec10,
    /// Minimum of the tier where the record ends.
    pub last_minimum: Dec10,
}

impl TierLadder {
    /// A ladder from tiers in any order. Callers resolve duplicates and conflicts first.
    pub fn new(mut tiers: Vec<PriceTier>) -> TierLadder {
        tiers.sort_by_key(|t| t.minimum);
        TierLadder { tiers }
    }

    /// The tiers, lowest first.
    pub fn tiers(&self) -> &[PriceTier] {
        &self.tiers
    }

    /// `C(x)` at scale 20 (exact: products of two scale-10 numbers, summed).
    pub fn cost_scale20(&self, x: Dec10) -> Result<i128, TierOverflow> {
        let mut total: i128 = 0;
        for (i, tier) in self.tiers.iter().enumerate() {
            if tier.minimum >= x {
                break;
            }
            let upper = match self.tiers.get(i + 1) {
                Some(next) if next.minimum < x => next.minimum,
                _ => x,
            };
            let band = upper.0 - tier.minimum.0;
            let part = band.checked_mul(tier.unit_price.0).ok_or(TierOverflow)?;
            total = total.checked_add(part).ok_or(TierOverflow)?;
        }
        Ok(total)
    }

    /// `round10(C(x))`.
    pub fn cost(&self, x: Dec10) -> Result<Dec10, TierOverflow> {
        Ok(Dec10(div_round(self.cost_scale20(x)?, ONE_RAW)))
    }

    /// Telescoped cost of the quantity between `before` and `after` (`before <= after`).
    pub fn allocate(&self, before: Dec10, after: Dec10) -> Result<TierAllocation, TierOverflow> {
        let cost = Dec10(
            self.cost(after)?
                .0
                .checked_sub(self.cost(before)?.0)
                .ok_or(TierOverflow)?,
        );
        let last = if after > before {
            self.tier_below(after)
        } else {
            self.tier_at(after)
        };
        Ok(TierAllocation {
            cost,
            unit_price: last.unit_price,
            first_minimum: self.tier_at(before).minimum,
            last_minimum: last.minimum,
        })
    }

    /// The tier containing `x` as `[minimum, next)`; the free band below the ladder is tier 0.
    fn tier_at(&self, x: Dec10) -> PriceTier {
        self.tiers
            .iter()
            .rev()
            .find(|t| t.minimum <= x)
            .copied()
            .unwrap_or(FREE_BAND)
    }

    /// The tier containing the last unit before `x`: `minimum < x <= next`.
    fn tier_below(&self, x: Dec10) -> PriceTier {
        self.tiers
            .iter()
            .rev()
            .find(|t| t.minimum < x)
            .copied()
            .unwrap_or(FREE_BAND)
    }
}

const FREE_BAND: PriceTier = PriceTier {
    minimum: Dec10::ZERO,
    unit_price: Dec10::ZERO,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dec10 {
        Dec10::parse(s).unwrap()
    }

    fn ladder(t: &[(&str, &str)]) -> TierLadder {
        TierLadder::new(
            t.iter()
                .map(|(m, p)| PriceTier {
                    minimum: d(m),
                    unit_price: d(p),
                })
                .collect(),
        )
    }

    /// rating.md §7, ladder L1 and the four January days.
    #[test]
    fn worked_example_l1() {
        let l1 = ladder(&[("0", "0"), ("5", "0.087"), ("100", "0.083")]);
        let steps = [
            ("0", "3", "0.0000000000"),
            ("3", "7", "0.1740000000"),
            ("7", "102.5", "8.2985000000"),
            ("102.5", "103.75", "0.1037500000"),
        ];
        let mut sum = Dec10::ZERO;
        for (b, a, cost) in steps {
            let alloc = l1.allocate(d(b), d(a)).unwrap();
            assert_eq!(alloc.cost.to_string(), cost);
            sum = sum.checked_add(alloc.cost).unwrap();
        }
        assert_eq!(sum.to_plain(), "8.57625");
        assert_eq!(l1.cost(d("103.75")).unwrap(), sum);
    }

    #[test]
    fn worked_example_price_change() {
        let l2 = ladder(&[("0", "0"), ("5", "0.08"), ("100", "0.075")]);
        assert_eq!(
            l2.allocate(d("7"), d("102.5")).unwrap().cost.to_string(),
            "7.6275000000"
        );
        assert_eq!(
            l2.allocate(d("102.5"), d("103.75"))
                .unwrap()
                .cost
                .to_string(),
            "0.0937500000"
        );
    }

    #[test]
    fn worked_example_telescoping_rounding() {
        let l = ladder(&[("0", "0.0000271")]);
        let a = l.allocate(d("0"), d("1.00000185")).unwrap().cost;
        let b = l.allocate(d("1.00000185"), d("3.0000037")).unwrap().cost;
        let c = l.allocate(d("3.0000037"), d("6.00000555")).unwrap().cost;
        assert_eq!(
            (a.to_string(), b.to_string(), c.to_string()),
            (
                "0.0000271001".into(),
                "0.0000542000".into(),
                "0.0000813001".into()
            )
        );
        assert_eq!(a.0 + b.0 + c.0, d("0.0001626002").0);
    }

    #[test]
    fn tier_positions() {
        let l1 = ladder(&[("0", "0"), ("5", "0.087"), ("100", "0.083")]);
        let a = l1.allocate(d("3"), d("7")).unwrap();
        assert_eq!(
            (a.first_minimum, a.last_minimum, a.unit_price),
            (d("0"), d("5"), d("0.087"))
        );
        let b = l1.allocate(d("0"), d("5")).unwrap();
        assert_eq!(
            (b.first_minimum, b.last_minimum, b.unit_price),
            (d("0"), d("0"), d("0"))
        );
        let z = l1.allocate(d("5"), d("5")).unwrap();
        assert_eq!((z.cost, z.last_minimum), (Dec10::ZERO, d("5")));
    }

    #[test]
    fn free_band_below_lowest_minimum() {
        // A rate card's includedQuantity 10 shifts `0 -> 1.0` up to `10 -> 1.0`.
        let l = ladder(&[("10", "1")]);
        assert_eq!(l.cost(d("4")).unwrap(), Dec10::ZERO);
        assert_eq!(l.cost(d("12.5")).unwrap().to_plain(), "2.5");
        assert_eq!(
            l.allocate(d("4"), d("12")).unwrap().first_minimum,
            Dec10::ZERO
        );
    }

    /// Headroom (issue 4): 1e9 price units with 10 decimals times an 8-decimal price, all in
    /// the top tier, stays exact in i128.
    #[test]
    fn headroom_of_largest_realistic_quantity() {
        let l = ladder(&[("0", "99999.12345678")]);
        let q = d("999999999.9999999999");
        let c = l.cost_scale20(q).unwrap();
        // 999999999.9999999999 * 99999.12345678 = 99999123456779.999990000087654322 exactly.
        assert_eq!(c, 9_999_912_345_677_999_999_000_008_765_432_200i128);
        assert_eq!(l.cost(q).unwrap().to_string(), "99999123456779.9999900001");
    }
}
