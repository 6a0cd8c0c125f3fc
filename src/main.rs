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
    let cli = assisters::cli::Cli::parse();
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: cannot start the async runtime: {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(assisters::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`assisters logs list | head`): not an error.
        Err(e)
            if e.root_cause()
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One worker per CPU the process may run on (tokio's default, which
/// `TOKIO_WORKER_THREADS` overrides). With a single worker the
/// single-threaded scheduler runs the same tasks in the same order without
/// the work-stealing machinery's cross-thread wake-ups: about a fifth more
/// requests per second on one CPU (BENCHMARKS.md). Blocking work (SQLite)
/// still goes to the blocking pool either way.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let workers = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1);
    let mut builder = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}
