//! Stage 2, rate: the one rounding module, pure tier math, and the parallel engine that turns
//! staged usage into `costs/` partitions (rating.md).

pub mod engine;
pub mod half_away_from_zero;
pub mod price_book;
pub mod run;
pub mod tiers;
