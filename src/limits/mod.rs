//! Tiers and per-key rate limits: requests/min and tokens/min (two governor
//! quotas per key), concurrent streams and a daily token budget.
//!
//! A key's effective limits are its tier's numbers with the key's own
//! overrides on top. They are looked up on every request, so a changed tier
//! or key applies on the next one: the key's limiter is rebuilt when the
//! numbers it was built with differ.

mod headers;
mod quota;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

pub use headers::{apply_headers, openai_duration};
pub use quota::{Admission, KeyLimiter, Reservation, StreamSlot};

use crate::keys::ApiKey;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tier {
    pub name: String,
    pub requests_per_min: u32,
    pub tokens_per_min: u32,
    /// At most this many streams open at once per key; `null` for no limit.
    pub max_concurrent_streams: Option<u32>,
    /// At most this many tokens per key per UTC day; `null` for no budget.
    pub daily_token_budget: Option<u64>,
}

/// Per-key replacements for the tier's numbers; absent fields keep the tier's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_min: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_min: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_token_budget: Option<u64>,
    /// At most this many requests of this key handled at once (429 beyond).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_requests: Option<u32>,
    /// Store this key's request bodies in the request log (`false` keeps
    /// them out even when body logging is on globally).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_bodies: Option<bool>,
    /// This key's own safety switches; absent fields follow the settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<crate::safety::KeySafety>,
}

impl Overrides {
    pub fn validate(&self) -> Result<(), String> {
        if self.requests_per_min == Some(0)
            || self.tokens_per_min == Some(0)
            || self.max_concurrent_requests == Some(0)
        {
            return Err("limits must be at least 1 per minute".into());
        }
        if let Some(s) = &self.safety {
            s.check()?;
        }
        Ok(())
    }
}

/// The numbers in force for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    pub requests_per_min: u32,
    pub tokens_per_min: u32,
    pub max_concurrent_streams: Option<u32>,
    pub daily_token_budget: Option<u64>,
    pub max_concurrent_requests: Option<u32>,
}

pub const SEED_TIERS: [&str; 3] = ["free", "developer", "startup"];
pub const DEFAULT_TIER: &str = "free";

#[derive(Default)]
pub struct Limits {
    tiers: RwLock<HashMap<String, Tier>>,
    per_key: Mutex<FxHashMap<String, Arc<KeyLimiter>>>,
    /// Tokens each key used earlier today (from the usage rollups), for the
    /// daily budget of limiters built after a restart.
    daily_seed: Mutex<FxHashMap<String, (i64, u64)>>,
}

impl Limits {
    pub fn new(tiers: Vec<Tier>) -> Limits {
        let l = Limits::default();
        l.set_tiers(tiers);
        l
    }

    /// `used` is what each key spent on the UTC day `day` (days since the epoch).
    pub fn seed_daily(&self, day: i64, used: Vec<(String, u64)>) {
        *self.daily_seed.lock() = used.into_iter().map(|(k, n)| (k, (day, n))).collect();
    }

    pub fn set_tiers(&self, tiers: Vec<Tier>) {
        *self.tiers.write() = tiers.into_iter().map(|t| (t.name.clone(), t)).collect();
    }

    pub fn tier(&self, name: &str) -> Option<Tier> {
        self.tiers.read().get(name).cloned()
    }

    pub fn tiers(&self) -> Vec<Tier> {
        let mut v: Vec<Tier> = self.tiers.read().values().cloned().collect();
        v.sort_by(|a, b| {
            a.requests_per_min
                .cmp(&b.requests_per_min)
                .then_with(|| a.name.cmp(&b.name))
        });
        v
    }

    /// The key's tier with its overrides applied. A key whose tier vanished
    /// (it cannot be deleted while in use, but a store edited by hand could
    /// say anything) falls back to the most restrictive tier, `free`.
    pub fn effective(&self, key: &ApiKey) -> Effective {
        let tiers = self.tiers.read();
        let tier = tiers.get(&key.tier).or_else(|| tiers.get(DEFAULT_TIER));
        let o = &key.overrides;
        Effective {
            requests_per_min: o
                .requests_per_min
                .or(tier.map(|t| t.requests_per_min))
                .unwrap_or(10),
            tokens_per_min: o
                .tokens_per_min
                .or(tier.map(|t| t.tokens_per_min))
                .unwrap_or(100_000),
            max_concurrent_streams: o
                .max_concurrent_streams
                .or(tier.and_then(|t| t.max_concurrent_streams)),
            daily_token_budget: o
                .daily_token_budget
                .or(tier.and_then(|t| t.daily_token_budget)),
            max_concurrent_requests: o.max_concurrent_requests,
        }
    }

    /// At start: each rotated key (`replaced_by`) shares the limiter of the
    /// last key of its rotation chain, whose day seed counts the whole
    /// chain's usage, as [`Limits::inherit`] arranged before the restart.
    /// (After one, a successor started the day afresh, and its predecessor
    /// in its grace period had an allowance of its own again.)
    pub fn share_rotations(&self, keys: &[Arc<ApiKey>]) {
        let by_id: FxHashMap<&str, &ApiKey> = keys.iter().map(|k| (k.id.as_str(), &**k)).collect();
        let last_of = |k: &ApiKey| {
            let mut at = by_id.get(k.replaced_by.as_deref()?).copied()?;
            // Bounded: a store edited by hand could hold a cycle.
            for _ in 0..keys.len() {
                match at.replaced_by.as_deref().and_then(|id| by_id.get(id)) {
                    Some(next) => at = next,
                    None => break,
                }
            }
            (at.id != k.id).then_some(at)
        };
        let pairs: Vec<(&ApiKey, &ApiKey)> = keys
            .iter()
            .filter_map(|k| Some((&**k, last_of(k)?)))
            .collect();
        {
            let mut seed = self.daily_seed.lock();
            for (k, last) in &pairs {
                if let Some((day, n)) = seed.remove(&k.id) {
                    let to = seed.entry(last.id.clone()).or_insert((day, 0));
                    if to.0 == day {
                        to.1 = to.1.saturating_add(n);
                    }
                }
            }
        }
        for (k, last) in pairs {
            let shared = self.limiter(last);
            self.per_key.lock().insert(k.id.clone(), shared);
        }
    }

    /// A rotated key's successor takes its predecessor's limiter: its
    /// buckets, open streams and the day's usage. (With a fresh one, both
    /// keys had a full allowance during the grace period, and the successor
    /// a whole new daily budget.)
    pub fn inherit(&self, successor: &str, predecessor: &str) {
        let mut map = self.per_key.lock();
        if let Some(l) = map.get(predecessor).cloned() {
            map.insert(successor.to_owned(), l);
        }
    }

    /// The limiter for this key, rebuilt if its numbers changed.
    pub fn limiter(&self, key: &ApiKey) -> Arc<KeyLimiter> {
        let eff = self.effective(key);
        let mut map = self.per_key.lock();
        if let Some(l) = map.get(&key.id) {
            if l.effective == eff {
                return l.clone();
            }
        }
        let previous = map.get(&key.id).cloned();
        let seed = match previous {
            Some(_) => None,
            None => self.daily_seed.lock().remove(&key.id),
        };
        let fresh = Arc::new(KeyLimiter::new(eff, previous.as_deref(), seed));
        map.insert(key.id.clone(), fresh.clone());
        fresh
    }
}
