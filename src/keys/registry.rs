//! The in-memory key table the request path reads.
//!
//! The store is the source of truth; every admin change writes the store first
//! and then replaces the entry here before the admin call returns, so a revoked
//! key fails on the very next request (there is no cache to go stale).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::RwLock;
use rustc_hash::FxHashMap;

use super::{ApiKey, KeyHash};

#[derive(Default)]
pub struct KeyRegistry {
    // The keys are SHA-256 digests already: a cheap hasher is enough.
    by_hash: RwLock<FxHashMap<KeyHash, Arc<ApiKey>>>,
}

impl KeyRegistry {
    pub fn new(keys: Vec<ApiKey>) -> KeyRegistry {
        let map = keys.into_iter().map(|k| (k.hash, Arc::new(k))).collect();
        KeyRegistry {
            by_hash: RwLock::new(map),
        }
    }

    pub fn get(&self, hash: &KeyHash) -> Option<Arc<ApiKey>> {
        self.by_hash.read().get(hash).cloned()
    }

    /// Inserts or replaces a key, carrying over its last-used time.
    pub fn put(&self, key: ApiKey) {
        let mut map = self.by_hash.write();
        if let Some(old) = map.get(&key.hash) {
            let seen = old.last_used_at.load(Ordering::Relaxed);
            key.last_used_at.fetch_max(seen, Ordering::Relaxed);
        }
        map.insert(key.hash, Arc::new(key));
    }

    pub fn find_by_id(&self, id: &str) -> Option<Arc<ApiKey>> {
        self.by_hash.read().values().find(|k| k.id == id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<ApiKey>> {
        self.by_hash.read().values().cloned().collect()
    }

    /// Live keys (not revoked) whose expiry falls in `(now, now + within]`,
    /// soonest first.
    pub fn expiring(&self, now: i64, within: i64) -> Vec<Arc<ApiKey>> {
        let mut soon: Vec<Arc<ApiKey>> = self
            .by_hash
            .read()
            .values()
            .filter(|k| k.revoked_at.is_none())
            .filter(|k| k.expires_at.is_some_and(|t| t > now && t <= now + within))
            .cloned()
            .collect();
        soon.sort_by_key(|k| k.expires_at);
        soon
    }

    pub fn len(&self) -> usize {
        self.by_hash.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicI64;

    use super::*;

    fn key(n: u8, expires_at: Option<i64>, revoked_at: Option<i64>) -> ApiKey {
        ApiKey {
            id: format!("key_{n}"),
            name: format!("k{n}"),
            hash: [n; 32],
            prefix: "ask_".into(),
            environment: super::super::Environment::Dev,
            tier: "free".into(),
            models: vec![],
            allowed_domains: vec![],
            allowed_ips: vec![],
            overrides: Default::default(),
            replaced_by: None,
            created_at: 0,
            expires_at,
            revoked_at,
            last_used_at: AtomicI64::new(0),
            last_used_flushed: AtomicI64::new(0),
        }
    }

    #[test]
    fn expiring_lists_live_keys_due_soon_soonest_first() {
        let now = 1_000_000;
        let reg = KeyRegistry::new(vec![
            key(1, Some(now + 3_600), None),
            key(2, Some(now + 60), None),
            key(3, Some(now + 60), Some(now - 1)), // revoked
            key(4, Some(now - 1), None),           // already expired
            key(5, Some(now + 10 * 86_400), None), // not soon
            key(6, None, None),                    // never
        ]);
        let ids: Vec<String> = reg
            .expiring(now, 3 * 86_400)
            .iter()
            .map(|k| k.id.clone())
            .collect();
        assert_eq!(ids, ["key_2", "key_1"]);
    }
}
