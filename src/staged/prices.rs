//! Staged prices: every price row ingested (`staged/prices/prices.parquet`, all types and
//! currencies) and the rows rejected at ingest whose price version they poison
//! (`staged/prices/rejected.parquet`). Schemas and conversions are in [`crate::model::price`].

use crate::error::Result;
use crate::model::price::{prices_from_batch, rejected_from_batch, PriceRow, RejectedPrice};
use crate::store::Lake;

/// Lake-relative path of the staged price table.
pub const PRICES_FILE: &str = "staged/prices/prices.parquet";

/// Lake-relative path of the staged table of rejected price rows (poisoned versions).
pub const REJECTED_FILE: &str = "staged/prices/rejected.parquet";

/// Read the staged rejected price rows (none when the table was never written).
pub fn load_rejected_prices(lake: &Lake) -> Result<Vec<RejectedPrice>> {
    let mut rows = Vec::new();
    for b in lake.get_parquet(REJECTED_FILE)?.unwrap_or_default() {
        rejected_from_batch(&b, &mut rows)?;
    }
    Ok(rows)
}

/// Read the staged price table.
pub fn load_prices(lake: &Lake) -> Result<Vec<PriceRow>> {
    let mut rows = Vec::new();
    for b in lake.get_parquet(PRICES_FILE)?.unwrap_or_default() {
        prices_from_batch(&b, &mut rows)?;
    }
    Ok(rows)
}
