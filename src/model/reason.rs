//! Quarantine reason codes (spec README.md), in precedence order within each stage.

use std::fmt;

/// Why a record was quarantined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReasonCode {
    /// Not valid JSON/CSV, or a required field missing.
    Malformed,
    /// A quantity or price that is not a decimal number.
    BadNumber,
    /// Unparseable time, or end before start.
    BadTimestamp,
    /// A tenant/subscription/meter ID that is not a GUID.
    BadId,
    /// Same natural key twice in one ingest run (first kept).
    DuplicateRecord,
    /// Quantity below zero.
    NegativeQuantity,
    /// Customer tenant not registered to an organization.
    UnmappedTenant,
    /// Usage dated before the subscription's transfer into the partnership.
    BeforeTransfer,
    /// No USD pay-as-you-go price (or reservation price) in effect.
    NoPrice,
    /// The price version has two prices for one tier.
    PriceConflict,
    /// Usage unit and price unit have different bases.
    UnitMismatch,
    /// No FX rate for the organization's currency and month.
    NoFxRate,
    /// Reservation scope other than `Shared`.
    ScopeNotShared,
    /// Reservation term other than 1 or 3 years.
    BadTerm,
    /// Reservation quantity not a whole number >= 1.
    BadQuantity,
    /// Billing frequency other than `OneTime`/`Monthly`.
    BadBillingFrequency,
    /// Same order ID seen with different content.
    DuplicateOrder,
    /// A `Monthly` reservation order while monthly billing is disabled (billing.md).
    MonthlyBillingDisabled,
    /// The order's billing frequency is not one of its SKU's supported billing cycles.
    BillingFrequencyNotSupported,
    /// The order's SKU is not on the holder's (or its reseller's) price list.
    NotInPriceList,
}

impl ReasonCode {
    /// Every code, in the spec's order.
    pub const ALL: [ReasonCode; 20] = [
        ReasonCode::Malformed,
        ReasonCode::BadNumber,
        ReasonCode::BadTimestamp,
        ReasonCode::BadId,
        ReasonCode::DuplicateRecord,
        ReasonCode::NegativeQuantity,
        ReasonCode::UnmappedTenant,
        ReasonCode::BeforeTransfer,
        ReasonCode::NoPrice,
        ReasonCode::PriceConflict,
        ReasonCode::UnitMismatch,
        ReasonCode::NoFxRate,
        ReasonCode::ScopeNotShared,
        ReasonCode::BadTerm,
        ReasonCode::BadQuantity,
        ReasonCode::BadBillingFrequency,
        ReasonCode::DuplicateOrder,
        ReasonCode::MonthlyBillingDisabled,
        ReasonCode::BillingFrequencyNotSupported,
        ReasonCode::NotInPriceList,
    ];

    /// The code as written in files (`NO_PRICE`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::Malformed => "MALFORMED",
            ReasonCode::BadNumber => "BAD_NUMBER",
            ReasonCode::BadTimestamp => "BAD_TIMESTAMP",
            ReasonCode::BadId => "BAD_ID",
            ReasonCode::DuplicateRecord => "DUPLICATE_RECORD",
            ReasonCode::NegativeQuantity => "NEGATIVE_QUANTITY",
            ReasonCode::UnmappedTenant => "UNMAPPED_TENANT",
            ReasonCode::BeforeTransfer => "BEFORE_TRANSFER",
            ReasonCode::NoPrice => "NO_PRICE",
            ReasonCode::PriceConflict => "PRICE_CONFLICT",
            ReasonCode::UnitMismatch => "UNIT_MISMATCH",
            ReasonCode::NoFxRate => "NO_FX_RATE",
            ReasonCode::ScopeNotShared => "SCOPE_NOT_SHARED",
            ReasonCode::BadTerm => "BAD_TERM",
            ReasonCode::BadQuantity => "BAD_QUANTITY",
            ReasonCode::BadBillingFrequency => "BAD_BILLING_FREQUENCY",
            ReasonCode::DuplicateOrder => "DUPLICATE_ORDER",
            ReasonCode::MonthlyBillingDisabled => "MONTHLY_BILLING_DISABLED",
            ReasonCode::BillingFrequencyNotSupported => "BILLING_FREQUENCY_NOT_SUPPORTED",
            ReasonCode::NotInPriceList => "NOT_IN_PRICE_LIST",
        }
    }

    /// Parse the written form.
    pub fn parse(text: &str) -> Option<ReasonCode> {
        ReasonCode::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A quarantined record: what was wrong, where it came from, and its original text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuarantineRecord {
    /// The reason.
    pub reason: ReasonCode,
    /// A sentence naming the field and the value.
    pub detail: String,
    /// File the record came from.
    pub source_file: String,
    /// 1-based row, line or item index in that file.
    pub source_row: i64,
    /// The original record text.
    pub raw: String,
    /// Customer tenant, when it could be read.
    pub customer_tenant_id: Option<String>,
    /// Subscription, when it could be read.
    pub subscription_id: Option<String>,
    /// Meter, when it could be read.
    pub meter_id: Option<String>,
    /// Usage date, when it could be read.
    pub usage_date: Option<chrono::NaiveDate>,
}

impl QuarantineRecord {
    /// A record of a file whose keys (tenant, subscription, meter, date) were not read.
    pub fn of_row(
        reason: ReasonCode,
        detail: String,
        source_file: &str,
        source_row: i64,
        raw: String,
    ) -> QuarantineRecord {
        QuarantineRecord {
            reason,
            detail,
            source_file: source_file.to_string(),
            source_row,
            raw,
            customer_tenant_id: None,
            subscription_id: None,
            meter_id: None,
            usage_date: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for c in ReasonCode::ALL {
            assert_eq!(ReasonCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(ReasonCode::NoFxRate.to_string(), "NO_FX_RATE");
        assert!(ReasonCode::Malformed < ReasonCode::DuplicateRecord);
    }
}
