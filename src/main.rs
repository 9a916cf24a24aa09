//! The `claimgate` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    match claimgate::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the error and its causes, no backtrace.
            eprintln!("claimgate: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
