//! Progress for long work: an indicatif bar (bytes, rate, ETA) on a terminal, plain log
//! lines otherwise, nothing with `--quiet`.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silence progress and summaries (`--quiet`).
pub fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

/// Whether `--quiet` is on.
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Print an operator log line to stderr (unless quiet).
pub fn log(line: &str) {
    if !is_quiet() {
        eprintln!("cspcost: {line}");
    }
}

/// Progress over a known total (bytes or items).
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    done: u64,
    last_log: Instant,
    bytes: bool,
}

impl Progress {
    /// Progress over `total` bytes (`bytes = true`) or items.
    pub fn new(label: &str, total: u64, bytes: bool) -> Progress {
        let bar = (!is_quiet() && std::io::stderr().is_terminal()).then(|| {
            let pb = ProgressBar::new(total);
            let tmpl = if bytes {
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}"
            } else {
                "{msg} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}"
            };
            pb.set_style(
                ProgressStyle::with_template(tmpl)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            pb.set_message(label.to_string());
            pb
        });
        Progress {
            bar,
            label: label.to_string(),
            total,
            done: 0,
            last_log: Instant::now(),
            bytes,
        }
    }

    /// Advance by `n`.
    pub fn inc(&mut self, n: u64) {
        self.done += n;
        if let Some(b) = &self.bar {
            b.inc(n);
        } else if !is_quiet() && self.last_log.elapsed().as_secs() >= 5 {
            self.last_log = Instant::now();
            let unit = if self.bytes { " bytes" } else { "" };
            log(&format!(
                "{}: {}/{}{unit}",
                self.label, self.done, self.total
            ));
        }
    }

    /// Done.
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
