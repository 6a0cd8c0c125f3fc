//! Where the master key versions live: `ASSISTERS_MASTER_KEY`, the 0600
//! `master.key` file in the data dir, or an operating-system secret store
//! (Secret Service, Keychain, Credential Manager) that an embedding app
//! provides through [`SecretStore`].
//!
//! The text kept is the same everywhere: one `version base64` line per key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Serialize;

use super::CryptoError;

pub(super) const KEY_FILE: &str = "master.key";
/// Left in the data dir when the key moved to an OS secret store, so a
/// server started on the same folder refuses to mint a fresh key (which
/// would leave every sealed value unreadable) and says where the key is.
pub const MARKER_FILE: &str = "master.key.location";

/// An operating system's secret store, as the desktop app reaches it.
pub trait SecretStore: Send + Sync {
    /// What the store is called, for people ("Secret Service").
    fn name(&self) -> String;
    /// The stored text, `None` if there is no entry yet; `Err` when the
    /// store cannot be reached.
    fn load(&self) -> Result<Option<String>, String>;
    fn save(&self, text: &str) -> Result<(), String>;
}

/// Where this keyring's versions are written on rotation.
pub(super) enum Backing {
    Env,
    File(PathBuf),
    Os(Arc<dyn SecretStore>),
}

/// Where the master key is kept, as the admin API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct KeyStorage {
    /// `env`, `file` or `os_secret_store`.
    pub kind: &'static str,
    /// The variable, the file's path, or the secret store's name.
    pub location: String,
    /// Set when the key is less protected than it should be, saying why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

pub(super) type Versions = Vec<(u32, [u8; 32])>;

/// Reads the versions from `store`, moving a `master.key` file into it
/// first (the file is deleted once the store holds the same text), or
/// creating a first key there. `Ok(None)` when the store cannot be reached
/// and the key has never been in it: the caller falls back to the file.
pub(super) fn from_secret_store(
    data_dir: &Path,
    store: &dyn SecretStore,
) -> Result<Option<Versions>, CryptoError> {
    let file = data_dir.join(KEY_FILE);
    let marker = data_dir.join(MARKER_FILE);
    let stored = match store.load() {
        Ok(s) => s,
        Err(e) if marker.exists() => {
            return Err(CryptoError::Key(format!(
                "this data folder's master key is in the {}, which cannot be reached: {e}",
                store.name()
            )))
        }
        Err(e) => {
            tracing::warn!(store = %store.name(), error = %e, "no OS secret store; the master key stays in {KEY_FILE}");
            return Ok(None);
        }
    };
    // Written (and read back) only when the store gets something new: a
    // moved file or a first key. A normal start is one read.
    let (text, fresh) = match stored {
        Some(text) => (text, false),
        None if file.exists() => (std::fs::read_to_string(&file)?, true),
        None if marker.exists() => {
            return Err(CryptoError::Key(format!(
                "this data folder's master key was in the {}, which no longer holds it; \
                 restore it there (or put its `version base64` lines in {KEY_FILE})",
                store.name()
            )))
        }
        None => (format_versions(&[(1, super::new_key())]), true),
    };
    let versions = parse_versions(&text, &store.name())?;
    if fresh {
        store.save(&text).map_err(CryptoError::Key)?;
        // Only forget the file once the store gives back exactly what it holds.
        if store.load().map_err(CryptoError::Key)?.as_deref() != Some(text.as_str()) {
            return Err(CryptoError::Key(format!(
                "the {} did not keep the master key",
                store.name()
            )));
        }
    }
    if !marker.exists() {
        crate::fsutil::write_private(&marker, format!("{}\n", store.name()).as_bytes())?;
    }
    if file.exists() {
        std::fs::remove_file(&file)?;
        tracing::info!(store = %store.name(), "master key moved from {KEY_FILE} to the OS secret store");
    }
    Ok(Some(versions))
}

/// What the marker says when the key came from `ASSISTERS_MASTER_KEY`.
const ENV_MARK: &str = "environment";

/// Notes that this data folder's key comes from the environment, unless it
/// is kept somewhere already: started once without the variable, the
/// gateway had made a new `master.key` and could no longer read what was
/// sealed under the old one.
pub(super) fn mark_env(data_dir: &Path) -> Result<(), CryptoError> {
    let marker = data_dir.join(MARKER_FILE);
    if !marker.exists() && !data_dir.join(KEY_FILE).exists() {
        crate::fsutil::write_private(&marker, format!("{ENV_MARK}\n").as_bytes())?;
    }
    Ok(())
}

/// The `master.key` file's versions, created on first start, unless the
/// key lives in an OS secret store (then starting without it is an error).
pub(super) fn from_file(path: &Path) -> Result<Versions, CryptoError> {
    if !path.exists() {
        let marker = path.with_file_name(MARKER_FILE);
        if let Ok(name) = std::fs::read_to_string(&marker) {
            if name.trim() == ENV_MARK {
                return Err(CryptoError::Key(format!(
                    "this data folder's master key came from the ASSISTERS_MASTER_KEY environment \
                     variable, which is not set; set it again (a new key would leave everything \
                     sealed so far unreadable), or put the key into {} and delete {}",
                    path.display(),
                    marker.display()
                )));
            }
            return Err(CryptoError::Key(format!(
                "this data folder's master key is kept in the desktop app's OS secret store ({}), \
                 not in {KEY_FILE}; run the desktop app, or restore the key into {} and delete {}",
                name.trim(),
                path.display(),
                marker.display()
            )));
        }
        write_file(path, &[(1, super::new_key())])?;
    }
    read_file(path)
}

/// The versions in an existing key file (never creates one).
fn read_file(path: &Path) -> Result<Versions, CryptoError> {
    parse_versions(&std::fs::read_to_string(path)?, &path.display().to_string())
}

pub(super) fn write_file(path: &Path, versions: &[(u32, [u8; 32])]) -> Result<(), CryptoError> {
    Ok(crate::fsutil::write_private(
        path,
        format_versions(versions).as_bytes(),
    )?)
}

impl Backing {
    /// The versions as they are kept now (rotation adds to these, not to
    /// the ones in memory, so nothing written elsewhere is lost).
    pub(super) fn read(&self) -> Result<Versions, CryptoError> {
        match self {
            Backing::Env => Err(CryptoError::NotRotatable),
            // Never `from_file`: a key file gone while running must fail
            // the rotation, not be replaced by a fresh version 1.
            Backing::File(path) => read_file(path),
            Backing::Os(store) => {
                let text = store.load().map_err(CryptoError::Key)?.ok_or_else(|| {
                    CryptoError::Key(format!("the {} lost the key", store.name()))
                })?;
                parse_versions(&text, &store.name())
            }
        }
    }

    pub(super) fn write(&self, versions: &[(u32, [u8; 32])]) -> Result<(), CryptoError> {
        match self {
            Backing::Env => Err(CryptoError::NotRotatable),
            Backing::File(path) => write_file(path, versions),
            Backing::Os(store) => store
                .save(&format_versions(versions))
                .map_err(CryptoError::Key),
        }
    }

    pub(super) fn describe(&self, warning: Option<String>) -> KeyStorage {
        let (kind, location) = match self {
            Backing::Env => ("env", "ASSISTERS_MASTER_KEY".to_owned()),
            Backing::File(p) => ("file", p.display().to_string()),
            Backing::Os(s) => ("os_secret_store", s.name()),
        };
        KeyStorage {
            kind,
            location,
            warning,
        }
    }
}

fn format_versions(versions: &[(u32, [u8; 32])]) -> String {
    versions
        .iter()
        .map(|(v, k)| format!("{v} {}\n", B64.encode(k)))
        .collect()
}

/// `version base64` per line; `source` names where it came from in errors.
fn parse_versions(text: &str, source: &str) -> Result<Versions, CryptoError> {
    let mut versions = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (v, k) = line
            .split_once(' ')
            .ok_or_else(|| CryptoError::Key(format!("{source} is malformed")))?;
        let v: u32 = v
            .parse()
            .map_err(|_| CryptoError::Key(format!("{source} has a bad version")))?;
        versions.push((v, super::decode_key(k)?));
    }
    if versions.is_empty() {
        return Err(CryptoError::Key(format!("{source} holds no key")));
    }
    Ok(versions)
}
