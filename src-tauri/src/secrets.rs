//! The master key in the operating system's secret store (Secret Service on
//! Linux, Keychain on macOS, Credential Manager on Windows) through the
//! `keyring` crate; one entry per data folder.

use std::path::Path;

/// The entry for one data folder.
pub struct OsSecretStore {
    user: String,
}

const SERVICE: &str = "assisters-gateway-master-key";

impl OsSecretStore {
    pub fn for_data_dir(dir: &Path) -> OsSecretStore {
        OsSecretStore {
            user: dir.display().to_string(),
        }
    }

    /// Each call on a thread of its own: the Linux backend drives D-Bus with
    /// its own blocking runtime, which must not run on a Tokio worker.
    fn with_entry<T: Send + 'static>(
        &self,
        f: impl FnOnce(keyring::Entry) -> keyring::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let user = self.user.clone();
        std::thread::spawn(move || keyring::Entry::new(SERVICE, &user).and_then(f))
            .join()
            .map_err(|_| "the secret store client panicked".to_owned())?
            .map_err(|e| e.to_string())
    }
}

impl assisters::crypto::SecretStore for OsSecretStore {
    fn name(&self) -> String {
        let os = if cfg!(target_os = "macos") {
            "macOS Keychain"
        } else if cfg!(windows) {
            "Windows Credential Manager"
        } else {
            "Secret Service"
        };
        format!("{os}, entry {SERVICE}")
    }

    fn load(&self) -> Result<Option<String>, String> {
        self.with_entry(|e| match e.get_password() {
            Ok(text) => Ok(Some(text)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e),
        })
    }

    fn save(&self, text: &str) -> Result<(), String> {
        let text = text.to_owned();
        self.with_entry(move |e| e.set_password(&text))
    }
}
