//! API keys: generation, hashing, the in-memory registry the hot path reads,
//! and the `Authorization` check on `/v1`.
//!
//! A key's secret exists only in the create (or rotate) response. At rest and
//! in memory the gateway keeps its SHA-256 and a short display prefix; lookups
//! are by hash, so no comparison ever touches the secret itself.

pub mod auth;
pub mod registry;

use std::sync::atomic::{AtomicI64, Ordering};

use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use registry::KeyRegistry;

pub const KEY_PREFIX: &str = "ask_";
/// 43 base62 characters carry 256 bits, the entropy of 32 random bytes.
const SECRET_CHARS: usize = 43;
const DISPLAY_CHARS: usize = 8;

pub type KeyHash = [u8; 32];

pub fn hash_secret(secret: &str) -> KeyHash {
    Sha256::digest(secret.as_bytes()).into()
}

/// A fresh secret and what may be stored of it.
pub struct NewSecret {
    pub secret: String,
    pub hash: KeyHash,
    pub prefix: String,
}

pub fn generate_secret() -> NewSecret {
    let body = Alphanumeric.sample_string(&mut rand::rngs::OsRng, SECRET_CHARS);
    let secret = format!("{KEY_PREFIX}{body}");
    let prefix = format!("{KEY_PREFIX}{}", &body[..DISPLAY_CHARS]);
    NewSecret {
        hash: hash_secret(&secret),
        secret,
        prefix,
    }
}

/// Random identifier with a type prefix, e.g. `key_3fZ…`. Ids are not
/// secrets, so they come from the thread's CSPRNG (ChaCha, seeded from the
/// OS) rather than `OsRng`, which made one `getrandom` call per character:
/// 4 % of a proxied request's CPU.
pub fn new_id(kind: &str) -> String {
    format!(
        "{kind}_{}",
        Alphanumeric.sample_string(&mut rand::thread_rng(), 16)
    )
}

/// A time-ordered id: `{kind}_`, the Unix milliseconds in 8 base62 digits,
/// then 12 random characters. Request logs are keyed by id; ids that grow
/// with time append to the primary-key index, where random ones dirtied a
/// different index page for almost every row of a batch.
pub fn new_sorted_id(kind: &str) -> String {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut ms = u64::try_from(crate::logs::unix_ms()).unwrap_or(0);
    let mut stamp = [b'0'; 8];
    for d in stamp.iter_mut().rev() {
        *d = DIGITS[(ms % 62) as usize];
        ms /= 62;
    }
    let mut id = String::with_capacity(kind.len() + 21);
    id.push_str(kind);
    id.push('_');
    id.extend(stamp.iter().map(|&b| char::from(b)));
    Alphanumeric.append_string(&mut rand::thread_rng(), &mut id, 12);
    id
}

/// Does `s` look like a key we could have issued? Checked before hashing so
/// junk never reaches the lookup.
pub fn well_formed(s: &str) -> bool {
    s.strip_prefix(KEY_PREFIX).is_some_and(|b| {
        b.len() >= 32 && b.len() <= 128 && b.bytes().all(|c| c.is_ascii_alphanumeric())
    })
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Dev,
    Staging,
    Prod,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Dev => "dev",
            Environment::Staging => "staging",
            Environment::Prod => "prod",
        }
    }

    pub fn parse(s: &str) -> Option<Environment> {
        match s {
            "dev" | "development" => Some(Environment::Dev),
            "staging" => Some(Environment::Staging),
            "prod" | "production" => Some(Environment::Prod),
            _ => None,
        }
    }
}

/// A key as the gateway holds it. Immutable except for `last_used_at`;
/// an update replaces the whole record in the registry.
#[derive(Debug)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub hash: KeyHash,
    pub prefix: String,
    pub environment: Environment,
    pub tier: String,
    /// Models this key may use; empty means all.
    pub models: Vec<String>,
    /// Browser origins allowed to use the key; empty means any.
    pub allowed_domains: Vec<crate::access::origin::Pattern>,
    /// Client addresses allowed to use the key; empty means any.
    pub allowed_ips: Vec<ipnet::IpNet>,
    /// Replacements for the tier's limits.
    pub overrides: crate::limits::Overrides,
    /// The key that succeeded this one in a rotation.
    pub replaced_by: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// Unix seconds, 0 for never; flushed to the store in the background.
    pub last_used_at: AtomicI64,
    /// The last value of `last_used_at` written to the store.
    pub last_used_flushed: AtomicI64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Revoked,
    Expired,
}

impl ApiKey {
    pub fn status(&self, now: i64) -> KeyStatus {
        if self.revoked_at.is_some_and(|t| t <= now) {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|t| t <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }

    pub fn may_use(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model)
    }

    pub fn last_used(&self) -> Option<i64> {
        match self.last_used_at.load(Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }

    /// A copy to edit into the record that replaces this one.
    pub fn duplicate(&self) -> ApiKey {
        ApiKey {
            id: self.id.clone(),
            name: self.name.clone(),
            hash: self.hash,
            prefix: self.prefix.clone(),
            environment: self.environment,
            tier: self.tier.clone(),
            models: self.models.clone(),
            allowed_domains: self.allowed_domains.clone(),
            allowed_ips: self.allowed_ips.clone(),
            overrides: self.overrides.clone(),
            replaced_by: self.replaced_by.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            last_used_at: AtomicI64::new(self.last_used().unwrap_or(0)),
            last_used_flushed: AtomicI64::new(0),
        }
    }

    pub fn view(&self, now: i64) -> KeyView {
        KeyView {
            id: self.id.clone(),
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            environment: self.environment,
            tier: self.tier.clone(),
            models: self.models.clone(),
            allowed_domains: self.allowed_domains.iter().map(|p| p.as_string()).collect(),
            allowed_ips: self.allowed_ips.iter().map(|n| n.to_string()).collect(),
            overrides: self.overrides.clone(),
            replaced_by: self.replaced_by.clone(),
            status: self.status(now),
            created_at: crate::timefmt::rfc3339(self.created_at),
            last_used_at: self.last_used().map(crate::timefmt::rfc3339),
            expires_at: self.expires_at.map(crate::timefmt::rfc3339),
            revoked_at: self.revoked_at.map(crate::timefmt::rfc3339),
        }
    }
}

/// What the admin API shows of a key: never the secret, never the hash.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    pub environment: Environment,
    pub tier: String,
    pub models: Vec<String>,
    pub allowed_domains: Vec<String>,
    pub allowed_ips: Vec<String>,
    pub overrides: crate::limits::Overrides,
    /// Set when the key was rotated: the id of its successor.
    pub replaced_by: Option<String>,
    pub status: KeyStatus,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// Writes changed last-used times to the store, off the request path.
pub async fn flush_last_used(state: &crate::app::AppState) -> Result<(), crate::store::StoreError> {
    let mut seen = Vec::new();
    for k in state.keys.all() {
        let t = k.last_used_at.load(Ordering::Relaxed);
        if t > k.last_used_flushed.swap(t, Ordering::Relaxed) {
            seen.push((k.id.clone(), t));
        }
    }
    if seen.is_empty() {
        return Ok(());
    }
    state
        .store
        .write(move |tx| crate::store::keys::touch_last_used(tx, &seen))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_ids_follow_time_and_differ() {
        let a = new_sorted_id("req");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_sorted_id("req");
        assert!(a.starts_with("req_") && a.len() == 24, "{a}");
        assert!(a[4..].bytes().all(|c| c.is_ascii_alphanumeric()));
        assert!(a[..12] < b[..12], "{a} then {b}");
        assert_ne!(new_sorted_id("req"), new_sorted_id("req"));
    }

    #[test]
    fn secrets_are_long_prefixed_and_unique() {
        let a = generate_secret();
        let b = generate_secret();
        assert!(a.secret.starts_with("ask_") && a.secret.len() == 4 + SECRET_CHARS);
        assert!(well_formed(&a.secret));
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with(&a.prefix));
        assert_eq!(a.hash, hash_secret(&a.secret));
    }

    #[test]
    fn junk_is_not_well_formed() {
        for s in [
            "",
            "ask_",
            "ask_short",
            "sk-abcdefabcdefabcdefabcdefabcdefabcdef",
            "ask_ abcdefghijabcdefghijabcdefghijabc",
        ] {
            assert!(!well_formed(s), "{s}");
        }
    }
}
