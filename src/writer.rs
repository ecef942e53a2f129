//! What every lake-writing command does first: take the writer lease (waiting up to
//! `--wait`), then turn the intent journals of crashed ingests into their manifests
//! ([`crate::emit::journal`]), so that the new run starts from an accounted lake.

use crate::error::{Error, Result};
use crate::store::lease::{parse_duration, Lease, LeaseRequest};
use crate::store::Lake;
use std::time::Duration;

/// `--wait DURATION` as given: `30s`, `5m`, `500ms`, `1h` or seconds.
pub fn parse_wait(text: Option<&str>) -> Result<Option<Duration>> {
    text.map(|t| {
        parse_duration(t).ok_or_else(|| {
            Error::config(format!(
                "--wait '{t}': expected a duration such as 30s, 5m or 500ms"
            ))
        })
    })
    .transpose()
}

/// Take the lake's writer lease for `command` (shared with the other shards when
/// `shard_count` is given) and recover what crashed runs left.
pub fn begin(
    lake: &Lake,
    run_id: &str,
    command: &str,
    shard_count: Option<u32>,
    wait: Option<Duration>,
) -> Result<Lease> {
    let lease = Lease::acquire(
        lake,
        &LeaseRequest {
            run_id: run_id.to_string(),
            command: command.to_string(),
            shard_count,
            wait,
        },
    )?;
    crate::emit::journal::recover(lake, run_id)?;
    Ok(lease)
}
