//! `bill` (billing.md "Statements"): what a customer organization, or a reseller, receives
//! for a billing month. Statements are built from the `costs/` partitions (usage and
//! reservation charges alike, through their `BilledCost` or `x_ResellerCost`), each line
//! rounded to the currency's minor unit once, with an explicit rounding line. Issued
//! statements never change: later restatements of an issued month are carried as adjustment
//! lines on the next open month's statement.

pub mod issued;
pub mod rows;
pub mod run;
pub mod statement;

pub use run::{bill, BillOptions, BillReport, BillRequest};
