//! The one integration-test binary (ripgrep style): each module covers a stage end to end
//! through the `cspcost` binary and the library.

mod bench_check;
mod bill;
mod cli;
mod common;
mod crash;
mod deploy;
mod engines;
mod fake_ms;
mod focus;
mod hostile;
mod ingest;
mod interop;
mod layering;
mod object_store;
mod parse_window;
mod pipeline;
mod props;
mod pull;
mod rating;
mod reconcile;
mod reserve;
mod s3;
mod shard;
mod source_copies;
mod stream;
mod writers;
