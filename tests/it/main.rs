//! The one integration-test binary (ripgrep style): each module covers a stage end to end
//! through the `cspcost` binary and the library.

mod bench_check;
mod cli;
mod common;
mod ingest;
mod interop;
mod props;
mod rating;
