//! The one integration-test binary (ripgrep style): each module covers a stage end to end
//! through the `cspcost` binary and the library.

mod common;
mod ingest;
mod rating;
mod reconcile;
