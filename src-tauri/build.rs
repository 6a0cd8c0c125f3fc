//! Generates the Tauri context, and permissions for the app's own commands
//! (so the dashboard window may call them only where a capability says so).

const COMMANDS: &[&str] = &[
    "gateway_status",
    "start",
    "stop",
    "admin_session",
    "open_data_folder",
];

fn main() {
    let attrs = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(e) = tauri_build::try_build(attrs) {
        panic!("tauri build step failed: {e:#}");
    }
}
