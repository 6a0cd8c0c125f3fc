//! `assisters serve`: load the config, start the server, wait for SIGINT or
//! SIGTERM, shut down gracefully.

use std::io::Write;
use std::path::PathBuf;

use super::ServeArgs;
use crate::app::AppState;
use crate::config::{Config, Overrides};
use crate::server::Server;

pub async fn run(args: ServeArgs, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let overrides = Overrides {
        data_dir,
        listen: args.listen,
        admin_listen: args.admin_listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        tls_self_signed: args.tls_self_signed,
    };
    let config = Config::load(args.config.as_deref(), &overrides)?;
    init_tracing(&config.log_level);
    let state = AppState::new(config)?;
    let server = Server::start(state.clone()).await?;
    let b = &server.bound;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Assisters Gateway {} is running.", b.version)?;
    writeln!(out, "  gateway API:  {}://{}/v1", b.scheme(), b.listen)?;
    if let Some(fp) = &b.tls_fingerprint_sha256 {
        writeln!(out, "  TLS SHA-256:  {fp}")?;
    }
    writeln!(out, "  admin API:    http://{}/admin/", b.admin_listen)?;
    writeln!(out, "  data dir:     {}", state.data_dir.display())?;
    writeln!(
        out,
        "  admin token:  {}",
        state.data_dir.join("admin-token").display()
    )?;
    if let Some(url) = crate::admin::session::login_url(&state) {
        writeln!(
            out,
            "  dashboard:    {url}  (sign-in link: works once, for ten minutes)"
        )?;
    }
    writeln!(
        out,
        "Create a key with: assisters --data-dir {} keys create --name my-app",
        state.data_dir.display()
    )?;
    drop(out);
    wait_for_signal().await;
    server.shutdown().await;
    Ok(())
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
