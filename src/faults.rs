//! Fault injection for the crash-safety tests: `CSPCOST_CRASH_AT=<point>:<n>` aborts the
//! process the n-th time execution passes `<point>` (e.g. `before-rename:3`). Unset, this
//! costs one environment lookup per call site and does nothing.

use std::sync::atomic::{AtomicU64, Ordering};

static PASSES: AtomicU64 = AtomicU64::new(0);

/// Abort the process here if the environment asks for a crash at this point and count.
pub fn maybe_crash(point: &str) {
    let Ok(spec) = std::env::var("CSPCOST_CRASH_AT") else {
        return;
    };
    let Some((p, n)) = spec.split_once(':') else {
        return;
    };
    if p != point {
        return;
    }
    let seen = PASSES.fetch_add(1, Ordering::SeqCst) + 1;
    if n.parse::<u64>().ok() == Some(seen) {
        eprintln!("cspcost: injected crash at {point} #{seen}");
        std::process::abort();
    }
}
