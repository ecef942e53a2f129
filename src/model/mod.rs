//! Typed records, the decimal type and the one rounding module, units, identifiers, times, reason codes and the Arrow
//! schemas of every staged and published table.

pub mod billing;
pub mod choice;
pub mod currency;
pub mod decimal;
pub mod half_away_from_zero;
pub mod ids;
pub mod order;
pub mod price;
pub mod reason;
pub mod reference;
pub mod schema;
pub mod tier;
pub mod time;
pub mod units;
pub mod usage;

pub use decimal::Dec10;
pub use reason::{QuarantineRecord, ReasonCode};

/// The invoice ID of an organization's (or reseller's) statement for a `YYYY-MM` month, equal
/// to the FOCUS `InvoiceId` of its cost rows (billing.md): `<holder>-<YYYY-MM>`.
pub fn invoice_id(holder: &str, month: &str) -> String {
    format!("{holder}-{month}")
}
