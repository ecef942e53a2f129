//! The lake's staged tables, one file each: where `ingest` writes them and how every stage
//! reads them (layout constants, readers and writers). Stages meet here and in
//! [`crate::model`], never in each other's modules.

pub mod ledger;
pub mod orders;
pub mod prices;
pub mod reference;
pub mod sources;
pub mod usage;
