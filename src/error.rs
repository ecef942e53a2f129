//! The crate's error type: every variant says which file or record and what was expected,
//! and maps to the exit code users script against (2 bad input/config, 1 I/O, 3 an internal
//! invariant that failed).

use std::path::PathBuf;

/// Result alias with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that stops a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments or configuration; every problem listed.
    #[error("{}", format_problems(.problems))]
    Config {
        /// One sentence per problem.
        problems: Vec<String>,
    },
    /// Input files that cannot be read as given (a directory walk that loops back, a broken
    /// link); every problem listed.
    #[error("{}", format_problems(.problems))]
    BadInput {
        /// One sentence per problem, naming the file.
        problems: Vec<String>,
    },
    /// The worker thread pool could not be started (the system refused threads).
    #[error("starting {threads} worker threads: {detail}")]
    ThreadPool {
        /// Threads asked for (0: one per core).
        threads: usize,
        /// The system's reason.
        detail: String,
    },
    /// A whole input file that cannot be read as its kind.
    #[error("{path}: {expected}")]
    InputFormat {
        /// The file.
        path: String,
        /// What was expected.
        expected: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Parquet encoding or decoding failed.
    #[error("{path}: parquet: {source}")]
    Parquet {
        /// The file.
        path: String,
        /// The cause.
        source: parquet::errors::ParquetError,
    },
    /// Building an Arrow batch failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A staged table lacks a column or has the wrong type (a lake written by another version).
    #[error("staged table column '{column}' is missing or not {expected}")]
    Schema {
        /// The column.
        column: String,
        /// The expected type.
        expected: String,
    },
    /// A JSON document of our own (manifest, ledger) could not be read or written.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// Arithmetic left DECIMAL(38,10).
    #[error("decimal overflow while {context}")]
    Overflow {
        /// What was being computed.
        context: String,
    },
    /// A reconciliation's input (invoice, subscription map) or lake state is not usable.
    #[error(transparent)]
    Reconcile(#[from] crate::reconcile::ReconcileError),
    /// An object-store request failed (after the store's own retries).
    #[error("{location}: {source}")]
    ObjectStore {
        /// The object (URL without credentials).
        location: String,
        /// The cause.
        source: object_store::Error,
    },
    /// A pull from Microsoft's APIs failed (credentials, requests, subscriptions).
    #[error(transparent)]
    Pull(#[from] crate::pull::PullError),
    /// A run's counts did not balance: a bug, reported instead of writing a wrong manifest.
    #[error("counts do not balance for {stage}: {detail}")]
    Unbalanced {
        /// The stage.
        stage: String,
        /// The equation that failed.
        detail: String,
    },
    /// A reading command was pointed at a path that holds no lake (a typo, an unmounted
    /// volume): refused instead of reporting an empty lake as up to date.
    #[error("no cspcost lake at {location} (no staged/ or _runs/ there; `cspcost ingest` creates a lake)")]
    NoLake {
        /// The path or URL (without credentials).
        location: String,
    },
    /// Another run holds the lake's writer lease (`_lock/writer.json`).
    #[error("{location}: {detail}")]
    LeaseHeld {
        /// The lease file.
        location: String,
        /// Who holds it, since when, until when, and what to do.
        detail: String,
    },
}

fn format_problems(problems: &[String]) -> String {
    match problems {
        [one] => one.clone(),
        many => {
            let mut s = format!("{} problems:", many.len());
            for p in many {
                s.push_str("\n  - ");
                s.push_str(p);
            }
            s
        }
    }
}

impl Error {
    /// The process exit code for this error (README: 2 bad input or config, 3 an internal
    /// invariant (counts that do not balance, arithmetic beyond DECIMAL(38,10)), 1 otherwise).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Unbalanced { .. } | Error::Overflow { .. } => 3,
            Error::Config { .. }
            | Error::BadInput { .. }
            | Error::InputFormat { .. }
            | Error::Reconcile(_)
            | Error::NoLake { .. }
            | Error::LeaseHeld { .. } => 2,
            Error::Pull(e) => e.exit_code(),
            _ => 1,
        }
    }

    /// A configuration error with one problem.
    pub fn config(problem: impl Into<String>) -> Error {
        Error::Config {
            problems: vec![problem.into()],
        }
    }

    /// An I/O error on `path`; a `.gz` whose data does not decompress is bad input instead.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        let path = path.into();
        if let Some(bad) = source
            .get_ref()
            .and_then(|e| e.downcast_ref::<crate::store::input::BadGzip>())
        {
            return Error::InputFormat {
                path: path.display().to_string(),
                expected: bad.to_string(),
            };
        }
        Error::Io { path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_tell_input_io_and_bugs_apart() {
        let unbalanced = Error::Unbalanced {
            stage: "rate".into(),
            detail: "staged 3 != rated 2".into(),
        };
        let overflow = Error::Overflow {
            context: "summing BilledCost of organization contoso, month 2026-01".into(),
        };
        assert_eq!(unbalanced.exit_code(), 3);
        assert_eq!(overflow.exit_code(), 3);
        let bad = Error::BadInput {
            problems: vec!["d/loop: symbolic link loop".into()],
        };
        assert_eq!(bad.exit_code(), 2);
        assert_eq!(bad.to_string(), "d/loop: symbolic link loop");
        let pool = Error::ThreadPool {
            threads: 4,
            detail: "resource temporarily unavailable".into(),
        };
        assert_eq!(pool.exit_code(), 1);
        assert_eq!(
            pool.to_string(),
            "starting 4 worker threads: resource temporarily unavailable"
        );
        assert_eq!(
            Error::config("--month '2026-13' is not YYYY-MM").exit_code(),
            2
        );
        assert_eq!(
            Error::io("/x", std::io::Error::other("disk full")).exit_code(),
            1
        );
    }
}
