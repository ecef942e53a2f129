//! The price book: staged price rows turned into per-meter price versions with tier ladders
//! (rating.md §3). Only USD `Consumption` rows rate usage; a version whose tiers disagree and
//! cannot be settled by `isPrimaryMeterRegion` is kept as a conflict.

use crate::model::decimal::Dec10;
use crate::model::price::{PriceRow, RejectedPrice};
use crate::model::units::Unit;
use crate::pricing::tiers::{PriceTier, TierLadder};
use std::collections::{BTreeMap, HashMap};

/// Descriptive fields of a version, from its representative row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriceMeta {
    /// `meterName`.
    pub meter_name: Option<String>,
    /// `serviceName`.
    pub service_name: Option<String>,
    /// `serviceFamily`.
    pub service_family: Option<String>,
    /// Meter category.
    pub meter_category: Option<String>,
    /// Meter subcategory.
    pub meter_subcategory: Option<String>,
    /// `skuId`.
    pub sku_id: String,
    /// `armRegionName`.
    pub arm_region_name: String,
    /// `location`.
    pub location: Option<String>,
}

/// One price version of a meter: all rows sharing `(meterId, effectiveStartDate)`.
#[derive(Clone, Debug)]
pub struct PriceVersion {
    /// Effective start, days since epoch.
    pub effective_start: i32,
    /// The ladder, or why the version is ambiguous.
    pub ladder: Result<TierLadder, String>,
    /// Price unit as written.
    pub unit_text: String,
    /// Price unit parsed.
    pub unit: Unit,
    /// Descriptive fields.
    pub meta: PriceMeta,
}

/// Versions per meter, sorted by effective start.
#[derive(Clone, Debug, Default)]
pub struct PriceBook {
    meters: HashMap<String, Vec<PriceVersion>>,
}

/// Whether a row can rate usage: USD pay-as-you-go consumption.
pub fn rates_usage(r: &PriceRow) -> bool {
    r.price_type.eq_ignore_ascii_case("Consumption") && r.currency_code.eq_ignore_ascii_case("USD")
}

impl PriceBook {
    /// Build from staged rows.
    pub fn build(rows: &[PriceRow]) -> PriceBook {
        let mut groups: BTreeMap<(&str, i32), Vec<&PriceRow>> = BTreeMap::new();
        for r in rows.iter().filter(|r| rates_usage(r)) {
            groups
                .entry((r.meter_id.as_str(), r.effective_start))
                .or_default()
                .push(r);
        }
        let mut meters: HashMap<String, Vec<PriceVersion>> = HashMap::new();
        for ((meter, eff), mut rows) in groups {
            // Representative row: primary first, then by SKU for a stable choice.
            rows.sort_by_key(|r| {
                (
                    r.is_primary_meter_region != Some(true),
                    r.sku_id.clone(),
                    r.arm_region_name.clone(),
                    r.tier_minimum,
                )
            });
            let rep = rows[0];
            let meta = PriceMeta {
                meter_name: rep.meter_name.clone(),
                service_name: rep.service_name.clone(),
                service_family: rep.service_family.clone(),
                meter_category: rep.meter_category.clone(),
                meter_subcategory: rep.meter_subcategory.clone(),
                sku_id: rep.sku_id.clone(),
                arm_region_name: rep.arm_region_name.clone(),
                location: rep.location.clone(),
            };
            meters
                .entry(meter.to_string())
                .or_default()
                .push(PriceVersion {
                    effective_start: eff,
                    ladder: ladder_of(&rows),
                    unit_text: rep.unit_of_measure.clone(),
                    unit: Unit::parse(&rep.unit_of_measure),
                    meta,
                });
        }
        PriceBook { meters }
    }

    /// Mark the versions that lost a row at price ingest as unusable: their records are
    /// `PRICE_CONFLICT` naming the rejected row, never rated on the remaining tiers. A version
    /// whose every row was rejected still exists, so that its dates do not fall back to the
    /// previous version.
    pub fn poison(mut self, rejected: &[RejectedPrice]) -> PriceBook {
        let mut by_version: BTreeMap<(&str, i32), Vec<&RejectedPrice>> = BTreeMap::new();
        for r in rejected {
            by_version
                .entry((r.meter_id.as_str(), r.effective_start))
                .or_default()
                .push(r);
        }
        for ((meter, eff), rows) in by_version {
            let first = rows[0];
            let more = match rows.len() - 1 {
                0 => String::new(),
                1 => " (and 1 more rejected row)".to_string(),
                n => format!(" (and {n} more rejected rows)"),
            };
            let why = format!(
                "row {} of {} was rejected at price ingest ({}: {}){more}, so this version is incomplete and rates nothing",
                first.source_row, first.source_file, first.reason, first.detail
            );
            let versions = self.meters.entry(meter.to_string()).or_default();
            let i = versions.partition_point(|v| v.effective_start < eff);
            match versions.get_mut(i).filter(|v| v.effective_start == eff) {
                Some(v) => v.ladder = Err(why),
                None => versions.insert(
                    i,
                    PriceVersion {
                        effective_start: eff,
                        ladder: Err(why),
                        unit_text: String::new(),
                        unit: Unit::parse(""),
                        meta: PriceMeta::default(),
                    },
                ),
            }
        }
        self
    }

    /// The version of `meter` in effect on `day` (latest start on or before it).
    pub fn version_at(&self, meter: &str, day: i32) -> Option<&PriceVersion> {
        let versions = self.meters.get(meter)?;
        let i = versions.partition_point(|v| v.effective_start <= day);
        (i > 0).then(|| &versions[i - 1])
    }

    /// Number of meters with a usable price.
    pub fn meter_count(&self) -> usize {
        self.meters.len()
    }
}

/// Tiers of one version; duplicates with one price merge, disagreements go to the primary row.
fn ladder_of(rows: &[&PriceRow]) -> Result<TierLadder, String> {
    let mut by_min: BTreeMap<Dec10, Vec<&PriceRow>> = BTreeMap::new();
    for r in rows {
        by_min.entry(r.tier_minimum).or_default().push(r);
    }
    let mut tiers = Vec::new();
    for (min, rows) in by_min {
        let mut prices: Vec<Dec10> = rows.iter().map(|r| r.unit_price).collect();
        prices.sort();
        prices.dedup();
        let price = if prices.len() == 1 {
            prices[0]
        } else {
            let mut primary: Vec<Dec10> = rows
                .iter()
                .filter(|r| r.is_primary_meter_region == Some(true))
                .map(|r| r.unit_price)
                .collect();
            primary.sort();
            primary.dedup();
            if primary.len() == 1 {
                primary[0]
            } else {
                // Name every disagreeing row, so the price sheet can be fixed.
                let shown: Vec<String> = rows
                    .iter()
                    .map(|r| {
                        format!(
                            "{} at row {} of {}",
                            r.unit_price.to_plain(),
                            r.source_row,
                            r.source_file
                        )
                    })
                    .collect();
                return Err(format!(
                    "tier {} has {} different prices ({}) and {} primary-region rows settle it",
                    min.to_plain(),
                    prices.len(),
                    shown.join(", "),
                    if primary.is_empty() {
                        "no".to_string()
                    } else {
                        format!("{} disagreeing", primary.len())
                    }
                ));
            }
        };
        tiers.push(PriceTier {
            minimum: min,
            unit_price: price,
        });
    }
    Ok(TierLadder::new(tiers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        meter: &str,
        eff: i32,
        min: &str,
        price: &str,
        primary: Option<bool>,
        ty: &str,
        cur: &str,
    ) -> PriceRow {
        PriceRow {
            sku_id: format!("sku-{price}"),
            price_type: ty.into(),
            currency_code: cur.into(),
            is_primary_meter_region: primary,
            ..PriceRow::usd_consumption(
                meter,
                "1 GB",
                eff,
                Dec10::parse(min).unwrap(),
                Dec10::parse(price).unwrap(),
            )
        }
    }

    fn rejected(meter: &str, eff: i32, row: i64) -> RejectedPrice {
        RejectedPrice {
            meter_id: meter.into(),
            effective_start: eff,
            source_file: "sheet.csv".into(),
            source_row: row,
            reason: "BAD_NUMBER".into(),
            detail: "tierMinimumUnits \"five\" is not a decimal number".into(),
        }
    }

    #[test]
    fn a_rejected_row_poisons_its_version_even_without_other_rows() {
        let b = PriceBook::build(&[
            row("m", 10, "0", "1", None, "Consumption", "USD"),
            row("m", 20, "0", "2", None, "Consumption", "USD"),
        ])
        .poison(&[
            rejected("m", 20, 7),
            rejected("m", 20, 9),
            rejected("m", 30, 4),
        ]);
        assert!(b.version_at("m", 15).unwrap().ladder.is_ok());
        assert_eq!(
            b.version_at("m", 25).unwrap().ladder.clone().unwrap_err(),
            "row 7 of sheet.csv was rejected at price ingest (BAD_NUMBER: tierMinimumUnits \"five\" is not a decimal number) (and 1 more rejected row), so this version is incomplete and rates nothing"
        );
        // Version 30 had no usable row: it still exists, so day 31 does not fall back to 20.
        let v = b.version_at("m", 31).unwrap();
        assert_eq!(v.effective_start, 30);
        assert!(v
            .ladder
            .clone()
            .unwrap_err()
            .starts_with("row 4 of sheet.csv"));
    }

    #[test]
    fn latest_version_on_or_before_the_day() {
        let b = PriceBook::build(&[
            row("m", 10, "0", "1", None, "Consumption", "USD"),
            row("m", 20, "0", "2", None, "Consumption", "USD"),
        ]);
        assert!(b.version_at("m", 9).is_none());
        assert_eq!(b.version_at("m", 10).unwrap().effective_start, 10);
        assert_eq!(b.version_at("m", 19).unwrap().effective_start, 10);
        assert_eq!(b.version_at("m", 25).unwrap().effective_start, 20);
    }

    #[test]
    fn only_usd_consumption_rates() {
        let b = PriceBook::build(&[
            row("m", 10, "0", "2377", None, "Reservation", "USD"),
            row("e", 10, "0", "1", None, "Consumption", "EUR"),
            row("d", 10, "0", "1", None, "DevTestConsumption", "USD"),
        ]);
        assert_eq!(b.meter_count(), 0);
    }

    #[test]
    fn primary_row_settles_a_disagreement_and_otherwise_conflict() {
        let ok = PriceBook::build(&[
            row("m", 1, "0", "0.5", Some(false), "Consumption", "USD"),
            row("m", 1, "0", "0.4", Some(true), "Consumption", "USD"),
        ]);
        let l = ok.version_at("m", 1).unwrap().ladder.clone().unwrap();
        assert_eq!(l.tiers()[0].unit_price.to_plain(), "0.4");
        let bad = PriceBook::build(&[
            row("m", 1, "0", "0.5", Some(false), "Consumption", "USD"),
            row("m", 1, "0", "0.4", Some(false), "Consumption", "USD"),
        ]);
        assert!(bad.version_at("m", 1).unwrap().ladder.is_err());
        let same = PriceBook::build(&[
            row("m", 1, "0", "0.5", Some(false), "Consumption", "USD"),
            row("m", 1, "0", "0.5", None, "Consumption", "USD"),
        ]);
        assert_eq!(
            same.version_at("m", 1)
                .unwrap()
                .ladder
                .clone()
                .unwrap()
                .tiers()
                .len(),
            1
        );
    }
}
