//! The master keyring and AES-256-GCM sealing of secrets at rest.
//!
//! Sealed format: `version (u32 BE) || nonce (12 bytes) || ciphertext+tag`.
//! Every seal takes associated data naming what the secret belongs to, so a
//! ciphertext copied to another row fails to open.

mod storage;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;

use storage::Backing;
pub use storage::{KeyStorage, SecretStore, MARKER_FILE};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("master key: {0}")]
    Key(String),
    #[error("sealed value is truncated")]
    Truncated,
    #[error("sealed value uses key version {0}, which this keyring does not hold")]
    UnknownVersion(u32),
    #[error("decryption failed: the value was altered or belongs elsewhere")]
    Tampered,
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "the master key comes from ASSISTERS_MASTER_KEY; rotate it by moving to a key file \
         (unset the variable, put `1 <old key>` in master.key) or by managing versions yourself"
    )]
    NotRotatable,
}

/// All master key versions; the newest seals, any of them opens. Rotation
/// adds a version at runtime, so the map sits behind a lock that is only
/// ever held for the length of one seal or open.
pub struct Keyring {
    keys: RwLock<BTreeMap<u32, Aes256Gcm>>,
    current: AtomicU32,
    /// Where rotation writes the versions.
    backing: Backing,
    /// Why the key is less protected than it should be, if it is.
    warning: Option<String>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("versions", &self.versions())
            .finish()
    }
}

impl Keyring {
    /// Uses `ASSISTERS_MASTER_KEY` (base64 or hex of 32 bytes) when set, else the
    /// `master.key` file in the data dir, creating it (mode 0600) on first start.
    pub fn load_or_create(data_dir: &Path, env_key: Option<&str>) -> Result<Keyring, CryptoError> {
        if let Some(raw) = env_key {
            let bytes = decode_key(raw.trim())?;
            storage::mark_env(data_dir)?;
            return Ok(Keyring::from_versions([(1, bytes)], Backing::Env));
        }
        let path = data_dir.join(storage::KEY_FILE);
        Ok(Keyring::from_versions(
            storage::from_file(&path)?,
            Backing::File(path),
        ))
    }

    /// As [`Keyring::load_or_create`], but keeps the key in an OS secret
    /// store (moving an existing `master.key` there). When the store cannot
    /// be reached and never held this folder's key, the file is used and
    /// [`Keyring::storage`] carries a warning.
    pub fn load_with_secret_store(
        data_dir: &Path,
        env_key: Option<&str>,
        store: Arc<dyn SecretStore>,
    ) -> Result<Keyring, CryptoError> {
        if env_key.is_some() {
            return Keyring::load_or_create(data_dir, env_key);
        }
        match storage::from_secret_store(data_dir, store.as_ref())? {
            Some(versions) => Ok(Keyring::from_versions(versions, Backing::Os(store))),
            None => {
                let mut ring = Keyring::load_or_create(data_dir, None)?;
                ring.warning = Some(format!(
                    "No OS secret store ({}) could be reached, so the master key is kept in a file \
                     readable only by your user (master.key, mode 0600). Anyone who can read your \
                     files can read it.",
                    store.name()
                ));
                Ok(ring)
            }
        }
    }

    fn from_versions(
        versions: impl IntoIterator<Item = (u32, [u8; 32])>,
        backing: Backing,
    ) -> Keyring {
        let keys: BTreeMap<u32, Aes256Gcm> = versions
            .into_iter()
            .map(|(v, k)| (v, Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&k))))
            .collect();
        let current = keys.keys().next_back().copied().unwrap_or(1);
        Keyring {
            keys: RwLock::new(keys),
            current: AtomicU32::new(current),
            backing,
            warning: None,
        }
    }

    /// Where the key is kept, and whether that deserves a warning.
    pub fn storage(&self) -> KeyStorage {
        self.backing.describe(self.warning.clone())
    }

    pub fn current_version(&self) -> u32 {
        self.current.load(Ordering::Acquire)
    }

    pub fn versions(&self) -> Vec<u32> {
        self.keys.read().keys().copied().collect()
    }

    /// Adds a new version and makes it current. The key file is rewritten
    /// atomically (old versions kept, so everything sealed stays readable)
    /// before the new key is used, so no value is ever sealed under a key
    /// that a restart would not find.
    pub fn rotate(&self) -> Result<u32, CryptoError> {
        let mut keys = self.keys.write();
        let mut kept = self.backing.read()?;
        let next = kept.iter().map(|(v, _)| *v).max().unwrap_or(0) + 1;
        let key = new_key();
        kept.push((next, key));
        self.backing.write(&kept)?;
        keys.insert(next, Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)));
        self.current.store(next, Ordering::Release);
        Ok(next)
    }

    /// The key version a sealed value names.
    pub fn version_of(sealed: &[u8]) -> Option<u32> {
        let v: [u8; 4] = sealed.get(..4)?.try_into().ok()?;
        Some(u32::from_be_bytes(v))
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let keys = self.keys.read();
        let version = self.current_version();
        let cipher = keys
            .get(&version)
            .ok_or(CryptoError::UnknownVersion(version))?;
        // A random 96-bit nonce per seal. The thread's CSPRNG (ChaCha,
        // reseeded from the OS) is as unpredictable as `OsRng` without a
        // syscall per request log record.
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Tampered)?;
        let mut out = Vec::with_capacity(16 + ct.len());
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 4 + 12 + 16 {
            return Err(CryptoError::Truncated);
        }
        let (v, rest) = sealed.split_at(4);
        let version = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
        let (nonce, ct) = rest.split_at(12);
        let keys = self.keys.read();
        let cipher = keys
            .get(&version)
            .ok_or(CryptoError::UnknownVersion(version))?;
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| CryptoError::Tampered)
    }
}

fn new_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

fn decode_key(raw: &str) -> Result<[u8; 32], CryptoError> {
    let bytes = if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(raw).map_err(|e| CryptoError::Key(e.to_string()))?
    } else {
        B64.decode(raw)
            .map_err(|_| CryptoError::Key("expected 32 bytes in base64 or hex".into()))?
    };
    bytes
        .try_into()
        .map_err(|_| CryptoError::Key("a master key must be exactly 32 bytes".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let ring = Keyring::from_versions([(1, [7u8; 32])], Backing::Env);
        let sealed = ring.seal(b"sk-secret", b"ups_1").unwrap_or_default();
        assert_eq!(
            ring.open(&sealed, b"ups_1").ok(),
            Some(b"sk-secret".to_vec())
        );
        assert!(matches!(
            ring.open(&sealed, b"ups_2"),
            Err(CryptoError::Tampered)
        ));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            ring.open(&flipped, b"ups_1"),
            Err(CryptoError::Tampered)
        ));
        assert!(matches!(
            ring.open(&sealed[..10], b"ups_1"),
            Err(CryptoError::Truncated)
        ));
    }

    #[test]
    fn newest_version_seals_and_old_ones_open() {
        let old = Keyring::from_versions([(1, [1u8; 32])], Backing::Env);
        let sealed_old = old.seal(b"a", b"x").unwrap_or_default();
        let ring = Keyring::from_versions([(1, [1u8; 32]), (2, [2u8; 32])], Backing::Env);
        assert_eq!(ring.current_version(), 2);
        assert_eq!(Keyring::version_of(&sealed_old), Some(1));
        assert_eq!(ring.open(&sealed_old, b"x").ok(), Some(b"a".to_vec()));
        let sealed_new = ring.seal(b"b", b"x").unwrap_or_default();
        assert_eq!(&sealed_new[..4], &2u32.to_be_bytes());
    }
}

#[cfg(test)]
mod rotation {
    use super::*;

    #[test]
    fn rotate_persists_and_keeps_old_versions() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ring = Keyring::load_or_create(dir.path(), None).unwrap_or_else(|e| panic!("{e}"));
        let old = ring.seal(b"body", b"req_1").unwrap_or_default();
        assert_eq!(ring.rotate().ok(), Some(2));
        let new = ring.seal(b"body", b"req_2").unwrap_or_default();
        assert_eq!(Keyring::version_of(&new), Some(2));
        let again = Keyring::load_or_create(dir.path(), None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.versions(), vec![1, 2]);
        assert_eq!(again.open(&old, b"req_1").ok(), Some(b"body".to_vec()));
        assert_eq!(again.open(&new, b"req_2").ok(), Some(b"body".to_vec()));
        let env = Keyring::load_or_create(dir.path(), Some(&"00".repeat(32)))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(env.rotate(), Err(CryptoError::NotRotatable)));
    }

    #[test]
    fn rotation_fails_when_the_key_file_is_gone() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ring = Keyring::load_or_create(dir.path(), None).unwrap_or_else(|e| panic!("{e}"));
        std::fs::remove_file(dir.path().join("master.key")).unwrap_or_else(|e| panic!("{e}"));
        assert!(ring.rotate().is_err());
        // No fresh version 1 written in the old one's place.
        assert!(!dir.path().join("master.key").exists());
        assert_eq!(ring.current_version(), 1);
    }
}

#[cfg(test)]
mod secret_store {
    use super::*;
    use parking_lot::Mutex;

    /// Stands in for the OS store (an external system): it holds text or
    /// is unreachable.
    #[derive(Default)]
    struct Vault {
        text: Mutex<Option<String>>,
        down: std::sync::atomic::AtomicBool,
    }

    impl SecretStore for Vault {
        fn name(&self) -> String {
            "test vault".into()
        }
        fn load(&self) -> Result<Option<String>, String> {
            if self.down.load(Ordering::Relaxed) {
                return Err("no such service".into());
            }
            Ok(self.text.lock().clone())
        }
        fn save(&self, text: &str) -> Result<(), String> {
            *self.text.lock() = Some(text.to_owned());
            Ok(())
        }
    }

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn moves_the_file_into_the_store_and_rotates_there() {
        let d = dir();
        let file_ring = Keyring::load_or_create(d.path(), None).unwrap_or_else(|e| panic!("{e}"));
        let sealed = file_ring.seal(b"x", b"a").unwrap_or_default();
        let vault = Arc::new(Vault::default());
        let ring = Keyring::load_with_secret_store(d.path(), None, vault.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ring.open(&sealed, b"a").ok(), Some(b"x".to_vec()));
        assert!(!d.path().join("master.key").exists());
        assert!(d.path().join(MARKER_FILE).exists());
        let s = ring.storage();
        assert_eq!((s.kind, s.warning), ("os_secret_store", None));
        assert_eq!(ring.rotate().ok(), Some(2));
        assert!(vault
            .text
            .lock()
            .as_deref()
            .is_some_and(|t| t.starts_with("1 ") && t.contains("\n2 ")));
        // A headless server on the same folder says where the key is instead
        // of minting a new one.
        let err = Keyring::load_or_create(d.path(), None)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.is_some_and(|e| e.contains("secret store")),
            "headless start must refuse"
        );
        // Unreachable after the move: an error, never a fresh key.
        vault.down.store(true, Ordering::Relaxed);
        assert!(Keyring::load_with_secret_store(d.path(), None, vault).is_err());
        assert!(!d.path().join("master.key").exists());
    }

    #[test]
    fn falls_back_to_the_file_with_a_warning() {
        let d = dir();
        let vault = Arc::new(Vault::default());
        vault.down.store(true, Ordering::Relaxed);
        let ring = Keyring::load_with_secret_store(d.path(), None, vault)
            .unwrap_or_else(|e| panic!("{e}"));
        let s = ring.storage();
        assert_eq!(s.kind, "file");
        assert!(s.warning.is_some_and(|w| w.contains("test vault")));
        assert!(d.path().join("master.key").exists());
        assert!(!d.path().join(MARKER_FILE).exists());
    }
}
