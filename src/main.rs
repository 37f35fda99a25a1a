//! The `wxauth` binary: parse the command line and run it; any failure is one line on stderr and
//! a non-zero exit.

use std::process::ExitCode;

fn main() -> ExitCode {
    wxauth::cli::main()
}
