//! The desktop shell of Assisters Gateway: runs the gateway engine
//! in-process (the same code as `assisters serve`) on Tauri's tokio runtime,
//! shows the dashboard (the same `ui/` build) in a window, and keeps the
//! gateway running in the tray when the window is closed.
//!
//! The Tauri commands are only for desktop concerns: `gateway_status`,
//! `start`/`stop` (resume/pause), `admin_session` (how the dashboard gets the
//! admin token — never through a URL or web storage) and `open_data_folder`.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod boot;
mod engine;
mod notify;
mod prefs;
mod secrets;
mod tray;
mod window;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use tauri::{AppHandle, Manager, RunEvent, WindowEvent};
use tauri_plugin_opener::OpenerExt;

use engine::{Engine, Phase};

/// What the app holds: filled in as the gateway comes up.
#[derive(Default)]
pub struct Shell {
    pub engine: OnceLock<Arc<Engine>>,
    pub mode: OnceLock<window::Mode>,
    tray: OnceLock<tray::Tray>,
    /// Set by the first [`quit`]; later asks (a second close) wait for it.
    quitting: AtomicBool,
}

impl Shell {
    fn engine(&self) -> Result<Arc<Engine>, String> {
        self.engine
            .get()
            .cloned()
            .ok_or_else(|| "The gateway is still starting.".to_owned())
    }
}

#[derive(Serialize)]
struct Status {
    #[serde(flatten)]
    phase: Phase,
    /// The OpenAI-compatible endpoint, e.g. `http://127.0.0.1:8787/v1`.
    endpoint: Option<String>,
    listen: Option<String>,
    admin_listen: Option<String>,
    data_dir: Option<String>,
    /// How the window shows the dashboard: `bundled` or `listener`.
    ui: Option<&'static str>,
    /// API requests answered in the last minute (while serving).
    requests_per_minute: Option<u64>,
}

fn status_of(shell: &Shell) -> Status {
    match shell.engine.get() {
        Some(e) => Status {
            phase: e.phase(),
            endpoint: Some(e.endpoint()),
            listen: Some(e.listen.to_string()),
            admin_listen: Some(e.admin_listen.to_string()),
            data_dir: Some(e.data_dir.display().to_string()),
            ui: shell.mode.get().map(|m| m.name()),
            requests_per_minute: e.per_minute(),
        },
        None => Status {
            phase: Phase::Starting,
            endpoint: None,
            listen: None,
            admin_listen: None,
            data_dir: None,
            ui: None,
            requests_per_minute: None,
        },
    }
}

/// The gateway's state and addresses.
#[tauri::command]
fn gateway_status(shell: tauri::State<'_, Shell>) -> Status {
    status_of(&shell)
}

/// Resumes serving on the same ports.
#[tauri::command]
async fn start(shell: tauri::State<'_, Shell>) -> Result<Status, String> {
    shell.engine()?.start().await?;
    Ok(status_of(&shell))
}

/// Pauses serving (in-flight requests finish first).
#[tauri::command]
async fn stop(shell: tauri::State<'_, Shell>) -> Result<Status, String> {
    shell.engine()?.stop().await;
    Ok(status_of(&shell))
}

#[derive(Serialize)]
struct AdminSession {
    token: String,
    /// `http://127.0.0.1:PORT`: where the dashboard sends admin calls.
    base_url: String,
}

/// The admin token and the admin API's address, for the dashboard.
#[tauri::command]
fn admin_session(shell: tauri::State<'_, Shell>) -> Result<AdminSession, String> {
    let engine = shell.engine()?;
    let token = engine
        .admin_token()
        .map_err(|e| format!("cannot read the admin token: {e}"))?;
    Ok(AdminSession {
        token,
        base_url: engine.admin_base_url(),
    })
}

/// Opens the data folder in the file manager.
#[tauri::command]
fn open_data_folder(app: AppHandle) -> Result<(), String> {
    let dir = app.state::<Shell>().engine()?.data_dir.clone();
    app.opener()
        .open_path(dir.display().to_string(), None::<&str>)
        .map_err(|e| e.to_string())
}

pub fn open_data_folder_now(app: &AppHandle) {
    if let Err(e) = open_data_folder(app.clone()) {
        tracing::warn!(error = %e, "cannot open the data folder");
    }
}

/// Pause when serving, resume otherwise (the tray's toggle).
pub async fn toggle(app: &AppHandle) {
    let Ok(engine) = app.state::<Shell>().engine() else {
        return;
    };
    if engine.phase().is_serving() {
        engine.stop().await;
    } else if let Err(e) = engine.start().await {
        tracing::error!(error = %e, "cannot resume the gateway");
    }
}

/// Brings the gateway up, then the window (unless started hidden at login).
async fn boot(app: AppHandle, hidden: bool) {
    let handle = app.clone();
    let prepared = tauri::async_runtime::spawn_blocking(move || {
        let config = boot::resolve_config(&handle)?;
        let embedding = assisters::Embedding {
            secret_store: Some(std::sync::Arc::new(secrets::OsSecretStore::for_data_dir(
                &config.data_dir(),
            ))),
        };
        assisters::AppState::embedded(config, embedding)
            .map_err(|e| boot::Fatal(format!("The gateway's data could not be opened.\n\n{e}")))
    })
    .await;
    let state = match prepared {
        Ok(Ok(state)) => state,
        Ok(Err(fatal)) => return fail(&app, fatal).await,
        Err(e) => return fail(&app, boot::Fatal(e.to_string())).await,
    };
    let engine = Engine::new(state);
    let shell = app.state::<Shell>();
    let _ = shell.engine.set(engine.clone());

    // The tray follows the gateway's state and request rate.
    let mut phases = engine.subscribe();
    let mut rates = engine.subscribe_rate();
    let tray_app = app.clone();
    let endpoint = engine.endpoint();
    tauri::async_runtime::spawn(async move {
        loop {
            let phase = phases.borrow_and_update().clone();
            let rate = *rates.borrow_and_update();
            // Tray calls made off the main thread wait for it; queued
            // instead, they never hold a runtime worker (the main thread
            // may itself be waiting on the runtime, at exit).
            let (handle, endpoint) = (tray_app.clone(), endpoint.clone());
            let _ = tray_app.run_on_main_thread(move || {
                if let Some(tray) = handle.state::<Shell>().tray.get() {
                    tray.show(&phase, rate, Some(&endpoint));
                }
            });
            let changed = tokio::select! {
                r = phases.changed() => r,
                r = rates.changed() => r,
            };
            if changed.is_err() {
                return;
            }
        }
    });

    if let Err(e) = engine.start().await {
        if shell.quitting.load(Ordering::SeqCst) {
            return;
        }
        return fail(
            &app,
            boot::Fatal(format!("The gateway could not start.\n\n{e}")),
        )
        .await;
    }
    tauri::async_runtime::spawn(engine.clone().watch_health());
    notify::spawn(&app, &engine);
    let mode = window::choose_mode(&engine).await;
    tracing::info!(?mode, endpoint = %engine.endpoint(), data_dir = %engine.data_dir.display(), "desktop app ready");
    let _ = shell.mode.set(mode);
    if !hidden {
        window::show(&app);
    }
}

async fn fail(app: &AppHandle, fatal: boot::Fatal) {
    let handle = app.clone();
    let _ = tauri::async_runtime::spawn_blocking(move || boot::show_fatal(&handle, &fatal)).await;
    app.exit(1);
}

/// Quits the app: the gateway shuts down gracefully first (in-flight
/// requests and streams, queued records; bounded by its grace period), on
/// the runtime, while the main thread keeps running the window and the tray.
/// Shut down from `RunEvent::Exit` instead, the main thread waited on the
/// runtime while runtime tasks (tray updates) waited on the main thread, and
/// the app could hang at exit.
pub fn quit(app: &AppHandle, code: i32) {
    if app.state::<Shell>().quitting.swap(true, Ordering::SeqCst) {
        return;
    }
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Some(engine) = app.state::<Shell>().engine.get().cloned() {
            engine.shutdown().await;
        }
        app.exit(code);
    });
}

/// SIGTERM (logout, `systemctl stop`, `kill`) and SIGINT quit like the tray's
/// Quit: the gateway shuts down gracefully.
async fn quit_on_signal(app: AppHandle) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("quitting on a signal");
        quit(&app, 0);
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_ok() {
            quit(&app, 0);
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() {
    init_tracing();
    // Started at login: stay in the tray until asked.
    let hidden = std::env::args().any(|a| a == "--hidden");
    let result = tauri::Builder::default()
        // First, so a second launch only focuses the first one.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            window::show(app);
        }))
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec!["--hidden"]),
        ))
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_clipboard_manager::init())
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_notification::init())
        .manage(Shell::default())
        .setup(move |app| {
            app.manage(prefs::Prefs::load(app.handle()));
            match tray::create(app.handle()) {
                Ok(t) => {
                    let _ = app.state::<Shell>().tray.set(t);
                }
                Err(e) => tracing::warn!(error = %e, "no tray icon"),
            }
            tauri::async_runtime::spawn(boot(app.handle().clone(), hidden));
            tauri::async_runtime::spawn(quit_on_signal(app.handle().clone()));
            Ok(())
        })
        .on_window_event(|window, event| {
            // Closing the window keeps the gateway running in the tray,
            // unless the tray's "Keep running when closed" is off.
            if let WindowEvent::CloseRequested { api, .. } = event {
                if window.label() == window::MAIN {
                    api.prevent_close();
                    let app = window.app_handle();
                    if app.state::<prefs::Prefs>().keep_running_on_close() {
                        let _ = window.hide();
                    } else {
                        quit(app, 0);
                    }
                }
            }
        })
        .invoke_handler(tauri::generate_handler![
            gateway_status,
            start,
            stop,
            admin_session,
            open_data_folder
        ])
        .build(tauri::generate_context!());
    let app = match result {
        Ok(app) => app,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "Assisters Gateway could not start: {e}");
            std::process::exit(1);
        }
    };
    app.run(|handle, event| match event {
        // No window left is no reason to stop: the tray keeps the app.
        RunEvent::ExitRequested {
            code: None, api, ..
        } => api.prevent_exit(),
        // Normally [`quit`] has shut the gateway down already; this covers
        // an exit that did not go through it.
        RunEvent::Exit => {
            if let Some(engine) = handle.state::<Shell>().engine.get() {
                tauri::async_runtime::block_on(engine.shutdown());
            }
        }
        _ => {}
    });
}
