//! The `wxauth` binary: parse the command line and run it; any failure is one line on stderr and
//! a non-zero exit.

use std::process::ExitCode;

/// mimalloc instead of the system allocator: a request allocates and frees many small buffers
/// across threads, where glibc's malloc cost ~14 % of a Mini Program login's CPU (perf, README
/// Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    wxauth::cli::main()
}
