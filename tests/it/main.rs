//! The one integration-test binary (ripgrep style): each module covers a stage end to end
//! through the `cspcost` binary and the library.

mod bench_check;
mod cli;
mod common;
mod crash;
mod deploy;
mod hostile;
mod ingest;
mod interop;
mod object_store;
mod parse_window;
mod pipeline;
mod props;
mod rating;
mod reconcile;
mod reserve;
mod shard;
