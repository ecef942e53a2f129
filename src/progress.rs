//! Progress for long work and operator log lines on stderr: an indicatif bar (bytes, rate,
//! ETA) on a terminal, plain log lines otherwise, nothing but errors with `--quiet`.
//! `--log-format json` writes each log line as one JSON object (`ts`, `level`, `msg`, then
//! the line's fields) for log collectors, and never draws a bar.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Instant;

static QUIET: AtomicBool = AtomicBool::new(false);
static FORMAT: AtomicU8 = AtomicU8::new(LogFormat::Text as u8);

/// How log lines are written (`--log-format`; clap parses the word).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `cspcost: <message>`.
    Text = 0,
    /// `{"ts":"...","level":"info","msg":"...",<fields>}`, one object per line.
    Json = 1,
}

impl crate::model::choice::OptionEnum for LogFormat {}

/// Silence progress and summaries (`--quiet`).
pub fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

/// Whether `--quiet` is on.
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Choose the log line format (`--log-format`).
pub fn set_log_format(f: LogFormat) {
    FORMAT.store(f as u8, Ordering::Relaxed);
}

/// The log line format in force.
pub fn log_format() -> LogFormat {
    match FORMAT.load(Ordering::Relaxed) {
        1 => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// One log line as JSON: `ts` (UTC, microseconds), `level`, `msg`, then `fields` in order.
pub fn json_line(level: &str, msg: &str, fields: &[(&str, Value)]) -> String {
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut line = format!(
        "{{\"ts\":{},\"level\":{},\"msg\":{}",
        Value::from(ts),
        Value::from(level),
        Value::from(msg)
    );
    for (k, v) in fields {
        if matches!(*k, "ts" | "level" | "msg") {
            continue;
        }
        line.push_str(&format!(",{}:{v}", Value::from(*k)));
    }
    line.push('}');
    line
}

fn emit(level: &str, msg: &str, fields: &[(&str, Value)]) {
    let line = match log_format() {
        LogFormat::Text if level == "error" => format!("cspcost: error: {msg}\n"),
        LogFormat::Text => format!("cspcost: {msg}\n"),
        LogFormat::Json => format!("{}\n", json_line(level, msg, fields)),
    };
    // Every log line and error passes the redaction (a lake URL may carry a SAS token),
    // and a closed stderr is not worth a panic: the line is dropped.
    let shown = crate::redact::redact(&line);
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), shown.as_bytes());
}

/// Print an operator log line to stderr (unless quiet).
pub fn log(line: &str) {
    log_with(line, &[]);
}

/// Print an operator log line with structured fields (shown only in JSON) unless quiet.
pub fn log_with(msg: &str, fields: &[(&str, Value)]) {
    if !is_quiet() {
        emit("info", msg, fields);
    }
}

/// Print the error that ends the command (even with `--quiet`), with its exit code.
pub fn log_error(msg: &str, exit_code: i32) {
    emit("error", msg, &[("exit_code", Value::from(exit_code))]);
}

/// Progress over a known total (bytes or items).
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    done: u64,
    last_log: Instant,
    started: Instant,
    bytes: bool,
}

impl Progress {
    /// Progress over `total` bytes (`bytes = true`) or items.
    pub fn new(label: &str, total: u64, bytes: bool) -> Progress {
        let draw =
            !is_quiet() && log_format() == LogFormat::Text && std::io::stderr().is_terminal();
        let bar = draw.then(|| {
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
            started: Instant::now(),
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
            self.log_line("progress");
        }
    }

    fn log_line(&self, event: &str) {
        let unit = if self.bytes { "bytes" } else { "items" };
        let secs = self.started.elapsed().as_secs_f64();
        let per_sec = if secs > 0.0 {
            (self.done as f64 / secs).round() as u64
        } else {
            0
        };
        let eta = (per_sec > 0 && self.done < self.total)
            .then(|| (self.total - self.done).div_ceil(per_sec));
        let shown_unit = if self.bytes { " bytes" } else { "" };
        let mut msg = format!(
            "{}: {}/{}{shown_unit}, {per_sec}/s",
            self.label, self.done, self.total
        );
        if let Some(eta) = eta {
            msg.push_str(&format!(", ETA {eta} s"));
        }
        log_with(
            &msg,
            &[
                ("event", Value::from(event)),
                ("task", Value::from(self.label.as_str())),
                ("done", Value::from(self.done)),
                ("total", Value::from(self.total)),
                ("unit", Value::from(unit)),
                ("per_sec", Value::from(per_sec)),
                ("eta_s", eta.map(Value::from).unwrap_or(Value::Null)),
            ],
        );
    }

    /// Change the label (a running count, e.g. pages and records so far).
    pub fn set_label(&mut self, label: &str) {
        self.label = label.to_string();
        if let Some(b) = &self.bar {
            b.set_message(label.to_string());
        }
    }

    /// Done.
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        } else if log_format() == LogFormat::Json && !is_quiet() {
            self.log_line("done");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_one_object_with_ts_level_msg_first() {
        let line = json_line(
            "info",
            "rate 2026-01: \"never\" rated",
            &[
                ("month", Value::from("2026-01")),
                ("msg", Value::from("dropped")),
            ],
        );
        assert!(line.starts_with("{\"ts\":\""), "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "info");
        assert_eq!(v["msg"], "rate 2026-01: \"never\" rated");
        assert_eq!(v["month"], "2026-01");
        assert!(!line.contains('\n'));
        assert!(chrono::DateTime::parse_from_rfc3339(v["ts"].as_str().unwrap()).is_ok());
    }
}
