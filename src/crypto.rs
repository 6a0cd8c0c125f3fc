//! The master keyring and AES-256-GCM sealing of secrets at rest.
//!
//! Sealed format: `version (u32 BE) || nonce (12 bytes) || ciphertext+tag`.
//! Every seal takes associated data naming what the secret belongs to, so a
//! ciphertext copied to another row fails to open.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::RwLock;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;

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
    /// The key file, or `None` when the key came from the environment.
    file: Option<PathBuf>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("versions", &self.versions())
            .finish()
    }
}

const KEY_FILE: &str = "master.key";

impl Keyring {
    /// Uses `ASSISTERS_MASTER_KEY` (base64 or hex of 32 bytes) when set, else the
    /// `master.key` file in the data dir, creating it (mode 0600) on first start.
    pub fn load_or_create(data_dir: &Path, env_key: Option<&str>) -> Result<Keyring, CryptoError> {
        if let Some(raw) = env_key {
            let bytes = decode_key(raw.trim())?;
            return Ok(Keyring::from_versions([(1, bytes)]));
        }
        let path = data_dir.join(KEY_FILE);
        if !path.exists() {
            write_key_file(&path, &[(1, new_key())])?;
        }
        let mut ring = Keyring::from_versions(read_key_file(&path)?);
        ring.file = Some(path);
        Ok(ring)
    }

    fn from_versions(versions: impl IntoIterator<Item = (u32, [u8; 32])>) -> Keyring {
        let keys: BTreeMap<u32, Aes256Gcm> = versions
            .into_iter()
            .map(|(v, k)| (v, Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&k))))
            .collect();
        let current = keys.keys().next_back().copied().unwrap_or(1);
        Keyring {
            keys: RwLock::new(keys),
            current: AtomicU32::new(current),
            file: None,
        }
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
        let path = self.file.as_ref().ok_or(CryptoError::NotRotatable)?;
        let mut keys = self.keys.write();
        let mut on_disk = read_key_file(path)?;
        let next = on_disk.iter().map(|(v, _)| *v).max().unwrap_or(0) + 1;
        let key = new_key();
        on_disk.push((next, key));
        write_key_file(path, &on_disk)?;
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
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
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

/// `version base64` per line.
fn read_key_file(path: &Path) -> Result<Vec<(u32, [u8; 32])>, CryptoError> {
    let text = std::fs::read_to_string(path)?;
    let mut versions = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (v, k) = line
            .split_once(' ')
            .ok_or_else(|| CryptoError::Key(format!("{} is malformed", path.display())))?;
        let v: u32 = v
            .parse()
            .map_err(|_| CryptoError::Key(format!("{} has a bad version", path.display())))?;
        versions.push((v, decode_key(k)?));
    }
    if versions.is_empty() {
        return Err(CryptoError::Key(format!("{} holds no key", path.display())));
    }
    Ok(versions)
}

fn write_key_file(path: &Path, versions: &[(u32, [u8; 32])]) -> Result<(), CryptoError> {
    let text: String = versions
        .iter()
        .map(|(v, k)| format!("{v} {}\n", B64.encode(k)))
        .collect();
    Ok(crate::fsutil::write_private(path, text.as_bytes())?)
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
        let ring = Keyring::from_versions([(1, [7u8; 32])]);
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
        let old = Keyring::from_versions([(1, [1u8; 32])]);
        let sealed_old = old.seal(b"a", b"x").unwrap_or_default();
        let ring = Keyring::from_versions([(1, [1u8; 32]), (2, [2u8; 32])]);
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
}
