//! Stage 2, rate: the parallel engine that turns staged usage into `costs/` partitions
//! (rating.md), using the shared pure rules of [`crate::pricing`], and its spill-and-merge of
//! sorted runs ([`runs`]).

pub mod engine;
pub mod run;
pub mod runs;

// Former locations, kept while branches written against them are merged.
pub use crate::model::half_away_from_zero;
pub use crate::pricing::{price_book, tiers};
