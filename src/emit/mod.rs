//! What users read: cost partitions, quarantine files and run manifests.

pub mod costs;
pub mod focus;
pub mod journal;
pub mod manifest;
pub mod quarantine;
