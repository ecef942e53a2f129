//! The `cspcost` binary: parse, run, map errors to exit codes (0 ok, 2 bad arguments,
//! configuration or input format, 1 I/O, 3 an internal invariant failed).

use clap::Parser;

fn main() {
    let cli = cspcost::cli::Cli::parse();
    if let Err(e) = cspcost::cli::run(cli) {
        cspcost::progress::log_error(&e.to_string(), e.exit_code());
        std::process::exit(e.exit_code());
    }
}
