//! The dashboard window.
//!
//! Two ways to show the same `ui/` build:
//! - `bundled`: the app's own copy of `ui/dist` (origin `tauri://localhost`,
//!   or `http://tauri.localhost` on Windows), calling the admin API across
//!   origins with the bearer token from `admin_session`. The CSP lets the page
//!   connect to the embedded admin listener only.
//! - `listener`: the dashboard served by the embedded admin listener itself
//!   (same origin as the admin API); `admin_session` is still how it gets the
//!   token, through a capability granted to that exact origin at run time.
//!
//! `bundled` needs the admin API to answer CORS preflights for the webview's
//! origin; the app checks that at start and uses `listener` otherwise.
//! `GATEWAY_DESKTOP_UI=bundled|listener` forces one.

use std::sync::Arc;

use tauri::ipc::CapabilityBuilder;
use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindowBuilder};

use crate::engine::{self, Engine};

pub const MAIN: &str = "main";

/// The origin of pages the app serves itself.
#[cfg(windows)]
pub const APP_ORIGIN: &str = "http://tauri.localhost";
#[cfg(not(windows))]
pub const APP_ORIGIN: &str = "tauri://localhost";

/// The CSP source in `tauri.conf.json` that stands for the admin listener;
/// narrowed to its exact address when each page is served.
const CSP_ADMIN_PLACEHOLDER: &str = "http://127.0.0.1:*";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bundled,
    Listener,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Bundled => "bundled",
            Mode::Listener => "listener",
        }
    }
}

/// Picks how to show the dashboard (see the module docs).
pub async fn choose_mode(engine: &Engine) -> Mode {
    match std::env::var("GATEWAY_DESKTOP_UI").as_deref() {
        Ok("bundled") => return Mode::Bundled,
        Ok("listener") => return Mode::Listener,
        _ => {}
    }
    let admin = engine.admin_listen;
    // The preflight exactly as WebKitGTK sends it from the app's pages
    // (it marks them `Sec-Fetch-Site: cross-site`).
    let preflight = format!(
        "OPTIONS /admin/keys HTTP/1.1\r\nHost: {admin}\r\nOrigin: {APP_ORIGIN}\r\n\
         Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: authorization\r\n\
         Sec-Fetch-Mode: cors\r\nSec-Fetch-Dest: empty\r\nSec-Fetch-Site: cross-site\r\n\
         Connection: close\r\n\r\n"
    );
    let allowed = engine::raw_head(admin, preflight)
        .await
        .is_some_and(|head| {
            head.starts_with("http/1.1 2")
                && head.lines().any(|l| {
                    l.strip_prefix("access-control-allow-origin:")
                        .is_some_and(|v| v.trim() == APP_ORIGIN)
                })
        });
    if allowed {
        Mode::Bundled
    } else {
        tracing::info!("the admin API does not allow the app's origin (CORS); showing the dashboard from the admin listener");
        Mode::Listener
    }
}

/// Shows the dashboard window, creating it if needed.
pub fn show(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(MAIN) {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
        return;
    }
    let Some(shell) = app.try_state::<crate::Shell>() else {
        return;
    };
    let (Some(engine), Some(mode)) = (shell.engine.get(), shell.mode.get()) else {
        return; // still starting; the window opens when the gateway is up
    };
    if let Err(e) = create(app, engine.clone(), *mode) {
        tracing::error!(error = %e, "cannot open the dashboard window");
    }
}

fn create(app: &AppHandle, engine: Arc<Engine>, mode: Mode) -> anyhow::Result<()> {
    let admin_origin = engine.admin_base_url();
    let url = match mode {
        Mode::Bundled => WebviewUrl::App("index.html".into()),
        Mode::Listener => {
            // The page comes from the admin listener: let that exact origin
            // (and no other remote one) call the app's commands. A script
            // there could already use the admin API, so this grants nothing
            // more; the plugins' commands stay out of its reach.
            app.add_capability(
                CapabilityBuilder::new("dashboard-from-admin-listener")
                    .remote(format!("{admin_origin}/*"))
                    .window(MAIN)
                    .permission("allow-gateway-status")
                    .permission("allow-start")
                    .permission("allow-stop")
                    .permission("allow-admin-session")
                    .permission("allow-open-data-folder"),
            )?;
            WebviewUrl::External(format!("{admin_origin}/").parse()?)
        }
    };
    let nav_origin = admin_origin.clone();
    let opener = app.clone();
    let csp_admin = admin_origin.clone();
    let new_window_app = app.clone();
    let new_window_admin = admin_origin.clone();
    WebviewWindowBuilder::new(app, MAIN, url)
        .title("Assisters Gateway")
        .inner_size(1200.0, 800.0)
        .min_inner_size(640.0, 480.0)
        .on_web_resource_request(move |_req, resp| {
            if let Some(v) = resp.headers().get("content-security-policy") {
                if let Ok(csp) = v.to_str() {
                    let narrowed = csp.replace(CSP_ADMIN_PLACEHOLDER, &csp_admin);
                    if let Ok(v) = tauri::http::HeaderValue::from_str(&narrowed) {
                        resp.headers_mut().insert("content-security-policy", v);
                    }
                }
            }
        })
        .on_navigation(move |url| {
            let origin = url.origin().ascii_serialization();
            let inside = origin == nav_origin
                || url.as_str().starts_with(APP_ORIGIN)
                || url.scheme() == "about";
            if !inside && matches!(url.scheme(), "http" | "https" | "mailto") {
                // Links out of the dashboard open in the system browser.
                use tauri_plugin_opener::OpenerExt;
                let _ = opener.opener().open_url(url.as_str(), None::<&str>);
            }
            inside
        })
        // `target="_blank"` links (e.g. the admin API document) open in the
        // system browser; the app's own paths there mean the admin listener.
        .on_new_window(move |url, _features| {
            let target = if url.as_str().starts_with(APP_ORIGIN) {
                let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
                format!("{new_window_admin}{}{query}", url.path())
            } else {
                url.to_string()
            };
            if matches!(url.scheme(), "http" | "https" | "tauri" | "mailto") {
                use tauri_plugin_opener::OpenerExt;
                let _ = new_window_app.opener().open_url(target, None::<&str>);
            }
            tauri::webview::NewWindowResponse::Deny
        })
        .build()?;
    Ok(())
}
