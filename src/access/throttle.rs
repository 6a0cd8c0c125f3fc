//! Throttling failed authentication per client address, so keys cannot be
//! guessed at speed: past the allowed failures per minute, the address is
//! refused with 429 before any key is even looked at.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use parking_lot::RwLock;
use rustc_hash::FxHashMap;

type Limiter =
    RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock, StateInformationMiddleware>;

pub struct AuthThrottle {
    /// The failures allowed per minute, and their limiter (replaced when
    /// the setting changes).
    failures: RwLock<(u32, Limiter)>,
    blocked: RwLock<FxHashMap<IpAddr, Instant>>,
    clock: DefaultClock,
}

fn limiter(failures_per_min: u32) -> Limiter {
    let q = Quota::per_minute(NonZeroU32::new(failures_per_min.max(1)).unwrap_or(NonZeroU32::MIN));
    RateLimiter::keyed(q).with_middleware::<StateInformationMiddleware>()
}

impl AuthThrottle {
    pub fn new(failures_per_min: u32) -> AuthThrottle {
        AuthThrottle {
            failures: RwLock::new((failures_per_min, limiter(failures_per_min))),
            blocked: RwLock::new(FxHashMap::default()),
            clock: DefaultClock::default(),
        }
    }

    /// Applies a changed setting from the next failure on. Counts start
    /// afresh; addresses blocked meanwhile stay blocked until their time.
    pub fn set_limit(&self, failures_per_min: u32) {
        if self.failures.read().0 != failures_per_min {
            *self.failures.write() = (failures_per_min, limiter(failures_per_min));
        }
    }

    /// How long this address must still wait, if it is blocked.
    pub fn blocked_for(&self, ip: IpAddr) -> Option<Duration> {
        let map = self.blocked.read();
        if map.is_empty() {
            return None;
        }
        let until = *map.get(&ip)?;
        until.checked_duration_since(Instant::now())
    }

    /// Records a failed attempt; the attempt that spends the last allowed
    /// failure blocks the address until one more would be allowed.
    pub fn failed(&self, ip: IpAddr) {
        let wait = match self.failures.read().1.check_key(&ip) {
            Ok(snap) if snap.remaining_burst_capacity() > 0 => return,
            Ok(snap) => snap.quota().replenish_interval(),
            Err(not_until) => not_until.wait_time_from(self.clock.now()),
        };
        let wait = wait.max(Duration::from_secs(1));
        self.blocked.write().insert(ip, Instant::now() + wait);
    }

    /// Forgets expired state; run periodically.
    pub fn prune(&self) {
        self.failures.read().1.retain_recent();
        let now = Instant::now();
        self.blocked.write().retain(|_, until| *until > now);
    }
}
