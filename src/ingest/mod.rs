//! Stage 1, ingest: raw Microsoft and reference files into staged Parquet under the lake,
//! every bad record quarantined with a reason (inputs.md).

pub mod json_text;
pub mod orders;
pub mod prices;
pub mod reference;
pub mod source;
pub mod usage;
pub mod utilization;
