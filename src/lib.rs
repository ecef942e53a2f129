//! cspcost rates Microsoft Azure CSP utilization against pay-as-you-go price sheets with
//! graduated tiers per calendar month, bills each customer organization in its currency,
//! prices Azure Plan reservations, and reconciles with Microsoft's invoices.
//!
//! Stages (spec README): [`ingest`] raw files into staged Parquet; [`rate`] usage into
//! `costs/` partitions; [`reserve`] reservation orders; [`reconcile`] any billing period
//! against an invoice. [`store`] is the lake, [`emit`] writes what users read.

pub mod cli;
pub mod emit;
pub mod error;
pub mod faults;
pub mod ingest;
pub mod model;
pub mod pipeline;
pub mod pricing;
pub mod progress;
pub mod rate;
pub mod reconcile;
pub mod report;
pub mod reserve;
pub mod staged;
pub mod store;

pub use error::{Error, Result};
