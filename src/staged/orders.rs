//! Staged reservation orders (`staged/reservations/orders.parquet`), written by `ingest
//! reservations` and read by `reserve`. The schema and conversions are in
//! [`crate::model::order`].

use crate::error::Result;
use crate::model::order::{orders_from_batch, ReservationOrder};
use crate::store::Lake;

/// Lake-relative path of the staged orders.
pub const ORDERS_FILE: &str = "staged/reservations/orders.parquet";

/// Read staged orders, in staging order.
pub fn load_orders(lake: &Lake) -> Result<Vec<ReservationOrder>> {
    let mut rows = Vec::new();
    for b in lake.get_parquet(ORDERS_FILE)?.unwrap_or_default() {
        orders_from_batch(&b, &mut rows)?;
    }
    Ok(rows)
}
