//! The `assisters` binary: parse the command line and hand over to the engine.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

// mimalloc: measurably cheaper than glibc malloc for the many small,
// short-lived allocations of request handling (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc reads its options from the environment once, before `main`
/// runs. Two defaults keep freed memory resident: arenas committed up front
/// (so freed pages are only reset, and stay counted) and a one-second purge
/// delay. Together they held ~40 MB of start-up and per-request garbage in
/// RSS (BENCHMARKS.md), so the process sets them and re-executes itself once,
/// before anything else has happened. Values the operator set are kept.
#[cfg(target_os = "linux")]
fn tune_allocator() {
    use std::os::unix::process::CommandExt;
    const OPTIONS: [(&str, &str); 2] = [
        ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
        ("MIMALLOC_PURGE_DELAY", "10"),
    ];
    if OPTIONS.iter().any(|(k, _)| std::env::var_os(k).is_some()) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    // `exec` only returns on failure; the process then runs untuned.
    let _ = std::process::Command::new(exe)
        .arg0(argv0)
        .args(args)
        .envs(OPTIONS)
        .exec();
}

fn main() -> ExitCode {
    #[cfg(target_os = "linux")]
    tune_allocator();
    run()
}

#[tokio::main]
async fn run() -> ExitCode {
    let cli = assisters::cli::Cli::parse();
    match assisters::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
