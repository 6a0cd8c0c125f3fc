//! The tray icon: the gateway's state at a glance (icon, and the first menu
//! line with the requests of the last minute) and the everyday actions.

use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager, Wry};
use tauri_plugin_autostart::ManagerExt as _;
use tauri_plugin_clipboard_manager::ClipboardExt;

use crate::engine::Phase;

const ICON_RUNNING: &[u8] = include_bytes!("../../icons/tray-running.png");
const ICON_PAUSED: &[u8] = include_bytes!("../../icons/tray-paused.png");
const ICON_DEGRADED: &[u8] = include_bytes!("../../icons/tray-degraded.png");

/// The parts of the tray that change with the gateway's state.
pub struct Tray {
    icon: TrayIcon,
    status: MenuItem<Wry>,
    endpoint: MenuItem<Wry>,
    toggle: MenuItem<Wry>,
}

pub fn create(app: &AppHandle) -> tauri::Result<Tray> {
    let status = MenuItem::with_id(app, "status", "Gateway: starting…", false, None::<&str>)?;
    let endpoint = MenuItem::with_id(app, "endpoint", "Endpoint: —", false, None::<&str>)?;
    let open = MenuItem::with_id(app, "open", "Open dashboard", true, None::<&str>)?;
    let copy_url = MenuItem::with_id(app, "copy-url", "Copy endpoint URL", true, None::<&str>)?;
    let copy_export = MenuItem::with_id(
        app,
        "copy-export",
        "Copy export OPENAI_BASE_URL=… line",
        true,
        None::<&str>,
    )?;
    let toggle = MenuItem::with_id(app, "toggle", "Pause gateway", false, None::<&str>)?;
    let autostart_on = app.autolaunch().is_enabled().unwrap_or(false);
    let autostart = CheckMenuItem::with_id(
        app,
        "autostart",
        "Start at login",
        true,
        autostart_on,
        None::<&str>,
    )?;
    let keep = CheckMenuItem::with_id(
        app,
        "keep-running",
        "Keep running when the window closes",
        true,
        app.state::<crate::prefs::Prefs>().keep_running_on_close(),
        None::<&str>,
    )?;
    let folder = MenuItem::with_id(app, "folder", "Open data folder", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit Assisters Gateway", true, None::<&str>)?;
    let menu = Menu::with_items(
        app,
        &[
            &status,
            &endpoint,
            &PredefinedMenuItem::separator(app)?,
            &open,
            &copy_url,
            &copy_export,
            &PredefinedMenuItem::separator(app)?,
            &toggle,
            &autostart,
            &keep,
            &folder,
            &PredefinedMenuItem::separator(app)?,
            &quit,
        ],
    )?;
    let autostart_item = autostart.clone();
    let keep_item = keep.clone();
    let icon = TrayIconBuilder::with_id("main")
        .icon(Image::from_bytes(ICON_PAUSED)?)
        .tooltip("Assisters Gateway")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(move |app, event| match event.id().as_ref() {
            "open" => crate::window::show(app),
            "copy-url" => copy(app, |e| e.endpoint()),
            "copy-export" => copy(app, |e| format!("export OPENAI_BASE_URL={}", e.endpoint())),
            "toggle" => {
                let app = app.clone();
                tauri::async_runtime::spawn(async move { crate::toggle(&app).await });
            }
            "autostart" => {
                let launcher = app.autolaunch();
                let want = !launcher.is_enabled().unwrap_or(false);
                let done = if want {
                    launcher.enable()
                } else {
                    launcher.disable()
                };
                if let Err(e) = done {
                    tracing::warn!(error = %e, "cannot change start at login");
                }
                let _ = autostart_item.set_checked(launcher.is_enabled().unwrap_or(false));
            }
            "keep-running" => {
                let prefs = app.state::<crate::prefs::Prefs>();
                let on = !prefs.keep_running_on_close();
                prefs.set_keep_running_on_close(on);
                let _ = keep_item.set_checked(on);
            }
            "folder" => crate::open_data_folder_now(app),
            "quit" => crate::quit(app, 0),
            _ => {}
        })
        .build(app)?;
    Ok(Tray {
        icon,
        status,
        endpoint,
        toggle,
    })
}

fn copy(app: &AppHandle, text: impl Fn(&crate::engine::Engine) -> String) {
    let Some(engine) = app.state::<crate::Shell>().engine.get().cloned() else {
        return;
    };
    if let Err(e) = app.clipboard().write_text(text(&engine)) {
        tracing::warn!(error = %e, "cannot write to the clipboard");
    }
}

impl Tray {
    /// Shows `phase`, the request rate, and where the gateway listens.
    pub fn show(&self, phase: &Phase, per_minute: Option<u64>, endpoint: Option<&str>) {
        let bytes = match phase {
            Phase::Running => ICON_RUNNING,
            Phase::Degraded(_) | Phase::Failed(_) => ICON_DEGRADED,
            Phase::Starting | Phase::Paused => ICON_PAUSED,
        };
        if let Ok(img) = Image::from_bytes(bytes) {
            let _ = self.icon.set_icon(Some(img));
        }
        let label = match (phase.is_serving(), per_minute) {
            (true, Some(1)) => format!("{} · 1 request/min", phase.label()),
            (true, Some(n)) => format!("{} · {n} requests/min", phase.label()),
            _ => phase.label(),
        };
        let _ = self.status.set_text(format!("Gateway: {label}"));
        let _ = self
            .icon
            .set_tooltip(Some(format!("Assisters Gateway — {label}")));
        if let Some(url) = endpoint {
            let _ = self.endpoint.set_text(format!("Endpoint: {url}"));
        }
        let (text, enabled) = match phase {
            Phase::Running | Phase::Degraded(_) => ("Pause gateway", true),
            Phase::Paused | Phase::Failed(_) => ("Resume gateway", true),
            Phase::Starting => ("Pause gateway", false),
        };
        let _ = self.toggle.set_text(text);
        let _ = self.toggle.set_enabled(enabled);
    }
}
