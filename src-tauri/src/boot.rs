//! Getting to a running gateway: the data folder, the config, and ports that
//! are free — asking the person, in plain words, when one is taken.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use assisters::config::{Config, Overrides};
use assisters::server::{Bound, RUNTIME_FILE};
use tauri::AppHandle;
use tauri_plugin_dialog::{DialogExt, MessageDialogButtons, MessageDialogKind};

/// The data folder: `ASSISTERS_DATA_DIR` if set, else the platform's data
/// folder (`~/.local/share/assisters` on Linux) — the same one the
/// `assisters` CLI uses, so `assisters keys list` works against the app.
pub fn data_dir() -> PathBuf {
    std::env::var_os("ASSISTERS_DATA_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(assisters::config::default_data_dir)
}

/// The config file: `ASSISTERS_CONFIG` if set, else `config.toml` in the
/// data folder when it exists, else none (defaults and `ASSISTERS_*` vars).
pub fn config_file(data_dir: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ASSISTERS_CONFIG").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let p = data_dir.join("config.toml");
    p.exists().then_some(p)
}

/// Why the app cannot go on; shown to the person before quitting.
pub struct Fatal(pub String);

/// Loads the config and settles both listen addresses on free ports,
/// asking before moving off a configured port.
pub fn resolve_config(app: &AppHandle) -> Result<Config, Fatal> {
    let data_dir = data_dir();
    let file = config_file(&data_dir);
    let base = Overrides {
        data_dir: Some(data_dir.clone()),
        ..Overrides::default()
    };
    let config = Config::load(file.as_deref(), &base).map_err(|e| {
        Fatal(format!(
            "The configuration could not be read.\n\n{e}{}",
            file.as_ref()
                .map(|f| format!("\n\nConfig file: {}", f.display()))
                .unwrap_or_default()
        ))
    })?;

    if let Some(pid) = other_gateway(&data_dir) {
        return Err(Fatal(format!(
            "Another Assisters Gateway (process {pid}, for example `assisters serve`) is already \
             running with this data folder:\n{}\n\nStop it first, then open the app again.",
            data_dir.display()
        )));
    }

    // Neither listener may be offered the port the other one is configured on.
    let mut reserved: Vec<u16> = [config.listen.port(), config.admin_listen.port()]
        .into_iter()
        .filter(|p| *p != 0)
        .collect();
    let listen = settle(app, config.listen, "gateway API", &mut reserved)?;
    let admin_listen = settle(
        app,
        config.admin_listen,
        "dashboard and admin API",
        &mut reserved,
    )?;
    let overrides = Overrides {
        data_dir: Some(data_dir),
        listen: Some(listen),
        admin_listen: Some(admin_listen),
        ..Overrides::default()
    };
    Config::load(file.as_deref(), &overrides)
        .map_err(|e| Fatal(format!("The configuration could not be read.\n\n{e}")))
}

/// A free address for `want`: itself if free, a concrete free port if it
/// asks for port 0, or — after asking — another port on the same interface.
fn settle(
    app: &AppHandle,
    want: SocketAddr,
    what: &str,
    reserved: &mut Vec<u16>,
) -> Result<SocketAddr, Fatal> {
    if want.port() == 0 {
        let a = free_port_near(want, reserved)
            .ok_or_else(|| Fatal(format!("No free port for the {what} on {}.", want.ip())))?;
        reserved.push(a.port());
        return Ok(a);
    }
    match TcpListener::bind(want) {
        Ok(_) => return Ok(want),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
        Err(e) => {
            return Err(Fatal(format!(
                "The {what} cannot listen on {want}: {e}.\n\nChange `listen`/`admin_listen` in the config file."
            )))
        }
    }
    let other = free_port_near(want, reserved).ok_or_else(|| {
        Fatal(format!(
            "Port {} is taken and no other port is free.",
            want.port()
        ))
    })?;
    let url = if what == "gateway API" {
        format!("http://{other}/v1")
    } else {
        format!("http://{other}/")
    };
    let message = format!(
        "Port {port} on {ip} is already used by another program, so the {what} cannot listen there.\n\n\
         Assisters Gateway can use port {new} instead, for this session only. The address would be:\n\
         {url}\n\n\
         To keep a fixed port, stop the other program or set another port in the config file.",
        port = want.port(),
        ip = want.ip(),
        new = other.port(),
    );

    let ok = app
        .dialog()
        .message(message)
        .title("Port already in use")
        .kind(MessageDialogKind::Warning)
        .buttons(MessageDialogButtons::OkCancelCustom(
            format!("Use port {}", other.port()),
            "Quit".to_owned(),
        ))
        .blocking_show();
    if !ok {
        return Err(Fatal(String::new()));
    }
    tracing::warn!(%want, %other, "{what}: configured port is taken, using another");
    reserved.push(other.port());
    Ok(other)
}

/// The first free port after `near`'s (up to 50 further), else one the
/// system picks; never one already `reserved` for the other listener.
fn free_port_near(near: SocketAddr, reserved: &[u16]) -> Option<SocketAddr> {
    let start = near.port();
    let candidates = (1..=50u16)
        .filter_map(|d| start.checked_add(d))
        .filter(|p| start != 0 && !reserved.contains(p));
    for port in candidates {
        let a = SocketAddr::new(near.ip(), port);
        if TcpListener::bind(a).is_ok() {
            return Some(a);
        }
    }
    for _ in 0..10 {
        let l = TcpListener::bind(SocketAddr::new(near.ip(), 0)).ok()?;
        let a = l.local_addr().ok()?;
        if !reserved.contains(&a.port()) {
            return Some(a);
        }
    }
    None
}

/// Another live gateway process that published its ports in this data dir.
fn other_gateway(data_dir: &Path) -> Option<u32> {
    let text = std::fs::read(data_dir.join(RUNTIME_FILE)).ok()?;
    let bound: Bound = serde_json::from_slice(&text).ok()?;
    if bound.pid == std::process::id() {
        return None;
    }
    process_alive(bound.pid).then_some(bound.pid)
}

#[cfg(target_os = "linux")]
fn process_alive(pid: u32) -> bool {
    // A stale runtime.json from a crash names a pid that is gone (or reused
    // by something that is not a gateway).
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("assisters"))
        .unwrap_or(false)
}

#[cfg(not(target_os = "linux"))]
fn process_alive(_pid: u32) -> bool {
    false
}

/// Tells the person why the app stops (nothing when they chose to quit).
pub fn show_fatal(app: &AppHandle, fatal: &Fatal) {
    if fatal.0.is_empty() {
        return;
    }
    tracing::error!("{}", fatal.0);
    app.dialog()
        .message(&fatal.0)
        .title("Assisters Gateway cannot start")
        .kind(MessageDialogKind::Error)
        .buttons(MessageDialogButtons::OkCustom("Quit".to_owned()))
        .blocking_show();
}
