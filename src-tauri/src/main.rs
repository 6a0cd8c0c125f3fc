//! The desktop shell: starts the gateway engine in-process (the same code as
//! `assisters serve`) with its data in the platform's app data folder, and
//! shows the dashboard served by the embedded admin listener.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use std::io::Write;

use assisters::config::{Config, Overrides};
use assisters::{AppState, Server};
use tauri::{Manager, WebviewUrl, WebviewWindowBuilder};

/// The running engine, owned by the app so it can be shut down on exit.
struct Engine(tokio::sync::Mutex<Option<Server>>);

/// Where the embedded gateway listens, for the page and the tray.
#[tauri::command]
async fn gateway_status(engine: tauri::State<'_, Engine>) -> Result<serde_json::Value, String> {
    let guard = engine.0.lock().await;
    match guard.as_ref() {
        Some(s) => Ok(serde_json::json!({
            "running": true,
            "listen": s.bound.listen.to_string(),
            "admin_listen": s.bound.admin_listen.to_string(),
        })),
        None => Ok(serde_json::json!({"running": false})),
    }
}

fn start_engine(app: &tauri::App) -> Result<Server, Box<dyn std::error::Error>> {
    let data_dir = app.path().app_data_dir()?;
    let overrides = Overrides {
        data_dir: Some(data_dir),
        ..Overrides::default()
    };
    let config = Config::load(None, &overrides)?;
    let state = AppState::new(config)?;
    Ok(tauri::async_runtime::block_on(Server::start(state))?)
}

fn main() {
    let result = tauri::Builder::default()
        .setup(|app| {
            let server = start_engine(app)?;
            let url = format!("http://{}/", server.bound.admin_listen);
            app.manage(Engine(tokio::sync::Mutex::new(Some(server))));
            WebviewWindowBuilder::new(app, "main", WebviewUrl::External(url.parse()?))
                .title("Assisters Gateway")
                .inner_size(1200.0, 800.0)
                .build()?;
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![gateway_status])
        .build(tauri::generate_context!());
    let app = match result {
        Ok(app) => app,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "Assisters Gateway could not start: {e}");
            std::process::exit(1);
        }
    };
    app.run(|handle, event| {
        if let tauri::RunEvent::Exit = event {
            let engine = handle.state::<Engine>();
            tauri::async_runtime::block_on(async {
                if let Some(server) = engine.0.lock().await.take() {
                    server.shutdown().await;
                }
            });
        }
    });
}
