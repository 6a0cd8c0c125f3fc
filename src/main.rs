//! The `assisters` binary: parse the command line and hand over to the engine.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

// mimalloc: measurably cheaper than glibc malloc for the many small,
// short-lived allocations of request handling (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = assisters::cli::Cli::parse();
    match assisters::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
