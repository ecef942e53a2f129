//! Stage 3, reserve: Azure Plan reservation orders priced with Microsoft's FX rates and the
//! organization's markup, billed one-time or monthly as `Purchase` rows in `costs/`, and kept
//! as assets with their expiration (reservations.md). The pure part is
//! [`crate::pricing::reservation`]; [`run`] reads the lake and writes the outputs; [`assets`]
//! is the assets table.

pub mod assets;
pub mod request;
pub mod run;
