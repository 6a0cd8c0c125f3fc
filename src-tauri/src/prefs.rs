//! The desktop app's own preferences (not the gateway's settings), kept in
//! `desktop.json` in the app's config folder.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Manager};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
struct Stored {
    /// Closing the window hides it and the gateway keeps serving from the
    /// tray; off, closing the window quits the app.
    keep_running_on_close: bool,
}

impl Default for Stored {
    fn default() -> Self {
        Stored {
            keep_running_on_close: true,
        }
    }
}

pub struct Prefs {
    path: Option<PathBuf>,
    keep_running_on_close: AtomicBool,
}

impl Prefs {
    pub fn load(app: &AppHandle) -> Prefs {
        let path = app
            .path()
            .app_config_dir()
            .ok()
            .map(|d| d.join("desktop.json"));
        let stored: Stored = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Prefs {
            path,
            keep_running_on_close: AtomicBool::new(stored.keep_running_on_close),
        }
    }

    pub fn keep_running_on_close(&self) -> bool {
        self.keep_running_on_close.load(Ordering::Relaxed)
    }

    pub fn set_keep_running_on_close(&self, on: bool) {
        self.keep_running_on_close.store(on, Ordering::Relaxed);
        let Some(path) = &self.path else { return };
        let stored = Stored {
            keep_running_on_close: on,
        };
        let saved = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                std::fs::write(path, serde_json::to_vec_pretty(&stored).unwrap_or_default())
            });
        if let Err(e) = saved {
            tracing::warn!(error = %e, path = %path.display(), "cannot save the desktop preferences");
        }
    }
}
