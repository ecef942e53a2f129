//! Standard output for every printing command, in one place. A closed stdout (`cspcost
//! quarantine --lake L | head -1`) is not an error: as ripgrep does, further output is
//! dropped quietly and the command ends with its usual exit code, instead of the panic of
//! `println!` ("failed printing to stdout: Broken pipe"). The command still finishes its
//! work (and releases the lake's writer lease) because nothing exits early here.
//! Every line passes through [`crate::redact::redact`].

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Write formatted text to stdout; after a broken pipe, nothing.
pub fn write(args: std::fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let text = args.to_string();
    let shown = crate::redact::redact(&text);
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(shown.as_bytes())
        .and_then(|_| stdout.flush());
    if written.is_err() {
        // Broken pipe, or any other failure of stdout: the reader is gone, so there is
        // nobody to tell; stop writing.
        CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Whether stdout was found closed.
pub fn is_closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// `print!` to stdout, quiet on a closed pipe.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::write(format_args!($($arg)*)) };
}

/// `println!` to stdout, quiet on a closed pipe.
#[macro_export]
macro_rules! outln {
    () => { $crate::out::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::write(format_args!("{}\n", format_args!($($arg)*))) };
}
