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

    pub fn len(&self) -> usize {
        self.by_hash.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
