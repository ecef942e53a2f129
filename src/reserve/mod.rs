//! Stage 3, reserve: Azure Plan reservation orders priced with Microsoft's FX rates and the
//! organization's markup, billed one-time or monthly, and kept as assets with their
//! expiration (reservations.md). [`pricing`] is the pure part.

pub mod pricing;
