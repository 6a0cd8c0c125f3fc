//! One key's limiter: a governor quota for requests/min, our own bucket for
//! tokens/min (settled against real usage), the open stream count and the
//! daily token budget.
//!
//! Tokens are reserved before an answer and settled after it, so their
//! bucket must take tokens back (an over-reservation) and go below empty
//! (an under-reservation: debt). Governor's cells can do neither; layering a
//! ledger of credit and debt on top of it let both refill at once, and a
//! key used about twice its tokens/min. One bucket whose level may be
//! negative does it exactly: it refills at the rate, never above one minute
//! of tokens, and a reservation waits until the level covers it.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use parking_lot::Mutex;

use super::Effective;
use crate::error::PolicyError;

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// The most debt kept: a day of the key's tokens/min. (An upstream may
/// report up to 2^40 tokens for one answer; that would be years.)
const MOST_DEBT_MINUTES: f64 = 24.0 * 60.0;

/// The tokens/min bucket: `level` tokens at `at`.
struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    fn full(per_min: u32) -> Bucket {
        Bucket {
            level: f64::from(per_min),
            at: Instant::now(),
        }
    }

    /// Brought up to now: refilled at the rate, at most full.
    fn refill(&mut self, per_min: u32) {
        let now = Instant::now();
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + secs * f64::from(per_min) / 60.0).min(f64::from(per_min));
        self.at = now;
    }

    /// Whole tokens available now (none while in debt).
    fn available(&self) -> u32 {
        self.level.max(0.0) as u32
    }

    /// How long until `n` tokens are available.
    fn wait_for(&self, n: f64, per_min: u32) -> Duration {
        let missing = (n - self.level).max(0.0);
        Duration::from_secs_f64(missing * 60.0 / f64::from(per_min.max(1)))
    }
}

#[derive(Default)]
struct Daily {
    day: i64,
    used: u64,
}

pub struct KeyLimiter {
    pub effective: Effective,
    clock: DefaultClock,
    /// Shared with the limiter this one replaced while requests/min is the
    /// same: a change of other numbers does not refill it.
    requests: Arc<Limiter>,
    /// Shared with the limiter this one replaced (a change of limits
    /// neither refills it nor forgives debt).
    tokens: Arc<Mutex<Bucket>>,
    /// Shared with the limiter this one replaced, so open streams and the
    /// day's usage survive a change of limits.
    streams: Arc<AtomicU32>,
    requests_open: Arc<AtomicU32>,
    daily: Arc<Mutex<Daily>>,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN))
}

/// What the request/min check saw, for the response headers.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    pub requests_limit: u32,
    pub requests_remaining: u32,
    pub tokens_limit: u32,
    pub tokens_remaining: u32,
    /// Until the token bucket is full again (longer than a minute while
    /// the key is in debt).
    pub tokens_reset: Duration,
}

/// Tokens held for one request until its real usage is known.
pub struct Reservation {
    limiter: Arc<KeyLimiter>,
    reserved: u64,
    settled: bool,
    /// Shown the tokens that stand charged without a usage report: the
    /// reservation until it is settled, none after.
    unreported: Option<Arc<AtomicU64>>,
}

/// An open stream; dropping it frees the slot.
pub struct StreamSlot(Arc<AtomicU32>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn utc_day(now: i64) -> i64 {
    now.div_euclid(86_400)
}

impl KeyLimiter {
    /// `seed`: (UTC day, tokens) already used today, when there is no
    /// previous limiter to carry the count over from.
    pub fn new(
        effective: Effective,
        previous: Option<&KeyLimiter>,
        seed: Option<(i64, u64)>,
    ) -> KeyLimiter {
        let clock = DefaultClock::default();
        let requests = match previous {
            Some(p) if p.effective.requests_per_min == effective.requests_per_min => {
                p.requests.clone()
            }
            _ => Arc::new(
                RateLimiter::direct_with_clock(
                    per_minute(effective.requests_per_min),
                    clock.clone(),
                )
                .with_middleware::<StateInformationMiddleware>(),
            ),
        };
        let tokens = match previous {
            Some(p) => {
                let mut b = p.tokens.lock();
                b.refill(p.effective.tokens_per_min);
                b.level = b.level.min(f64::from(effective.tokens_per_min));
                p.tokens.clone()
            }
            None => Arc::new(Mutex::new(Bucket::full(effective.tokens_per_min))),
        };
        KeyLimiter {
            requests,
            tokens,
            effective,
            clock,
            streams: previous.map_or_else(Default::default, |p| p.streams.clone()),
            requests_open: previous.map_or_else(Default::default, |p| p.requests_open.clone()),
            daily: previous.map_or_else(
                || {
                    let (day, used) = seed.unwrap_or_default();
                    Arc::new(Mutex::new(Daily { day, used }))
                },
                |p| p.daily.clone(),
            ),
        }
    }

    /// The token bucket now: tokens available and the time until full.
    fn tokens_now(&self) -> (u32, Duration) {
        let per_min = self.effective.tokens_per_min;
        let mut b = self.tokens.lock();
        b.refill(per_min);
        (b.available(), b.wait_for(f64::from(per_min), per_min))
    }

    /// Counts one request against requests/min. Every request that reaches
    /// this point counts, whether it later succeeds or not.
    pub fn admit(&self) -> Result<Admission, (PolicyError, Admission)> {
        let e = self.effective;
        let (tokens_remaining, tokens_reset) = self.tokens_now();
        let mut adm = Admission {
            requests_limit: e.requests_per_min,
            requests_remaining: 0,
            tokens_limit: e.tokens_per_min,
            tokens_remaining,
            tokens_reset,
        };
        match self.requests.check() {
            Ok(snap) => {
                adm.requests_remaining = snap.remaining_burst_capacity();
                Ok(adm)
            }
            Err(not_until) => Err((
                PolicyError::RateLimited {
                    what: "requests",
                    limit: u64::from(e.requests_per_min),
                    retry_after: not_until.wait_time_from(self.clock.now()),
                },
                adm,
            )),
        }
    }

    /// Reserves `n` tokens atomically: the daily budget, then the bucket.
    /// On success, the bucket as it is left (tokens and time until full).
    pub fn reserve(
        self: &Arc<Self>,
        n: u64,
        now: i64,
    ) -> Result<(Reservation, (u32, Duration)), PolicyError> {
        let e = self.effective;
        if n > u64::from(e.tokens_per_min) {
            return Err(PolicyError::ExceedsQuota {
                tokens: n,
                limit: u64::from(e.tokens_per_min),
                per: "per minute",
            });
        }
        // The day's usage is counted whether or not a budget is in force, so
        // one set mid-day starts from what the key already used. Checked
        // and taken under one lock, so two requests cannot both pass on the
        // same headroom; given back if the bucket refuses below.
        {
            let mut d = self.daily.lock();
            if d.day != utc_day(now) {
                *d = Daily {
                    day: utc_day(now),
                    used: 0,
                };
            }
            if let Some(budget) = e.daily_token_budget {
                // Waiting for midnight would not help this one.
                if n > budget {
                    return Err(PolicyError::ExceedsQuota {
                        tokens: n,
                        limit: budget,
                        per: "per day",
                    });
                }
                if d.used.saturating_add(n) > budget {
                    let midnight = (utc_day(now) + 1) * 86_400;
                    return Err(PolicyError::RateLimited {
                        what: "daily tokens",
                        limit: budget,
                        retry_after: Duration::from_secs(
                            u64::try_from(midnight - now).unwrap_or(1),
                        ),
                    });
                }
            }
            d.used = d.used.saturating_add(n);
        }
        let left = {
            let mut b = self.tokens.lock();
            b.refill(e.tokens_per_min);
            let want = n as f64;
            if b.level < want {
                let retry_after = b.wait_for(want, e.tokens_per_min);
                drop(b);
                let mut d = self.daily.lock();
                d.used = d.used.saturating_sub(n);
                return Err(PolicyError::RateLimited {
                    what: "tokens",
                    limit: u64::from(e.tokens_per_min),
                    retry_after,
                });
            }
            b.level -= want;
            (
                b.available(),
                b.wait_for(f64::from(e.tokens_per_min), e.tokens_per_min),
            )
        };
        Ok((
            Reservation {
                limiter: self.clone(),
                reserved: n,
                settled: false,
                unreported: None,
            },
            left,
        ))
    }

    /// Opens a stream slot if the key has one free.
    pub fn open_stream(&self) -> Result<StreamSlot, PolicyError> {
        let Some(max) = self.effective.max_concurrent_streams else {
            self.streams.fetch_add(1, Ordering::AcqRel);
            return Ok(StreamSlot(self.streams.clone()));
        };
        let taken = self
            .streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(StreamSlot(self.streams.clone())),
            Err(_) => Err(PolicyError::RateLimited {
                what: "concurrent streams",
                limit: u64::from(max),
                retry_after: Duration::from_secs(1),
            }),
        }
    }

    /// Takes one of the key's concurrent request places, if it has a cap.
    pub fn open_request(&self) -> Result<Option<StreamSlot>, crate::error::EdgeError> {
        let Some(max) = self.effective.max_concurrent_requests else {
            return Ok(None);
        };
        self.requests_open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map(|_| Some(StreamSlot(self.requests_open.clone())))
            .map_err(|_| crate::error::EdgeError::KeyConcurrency(max))
    }

    pub fn open_streams(&self) -> u32 {
        self.streams.load(Ordering::Acquire)
    }
}

impl Reservation {
    /// Settles against the real token count: refunds or charges the difference.
    pub fn settle(mut self, actual: u64) {
        self.settle_inner(actual);
    }

    /// Keeps `cell` at the tokens charged without a report: the whole
    /// reservation while it stands (a reservation dropped unsettled stands
    /// as spent), 0 once a report (or a refund) settles it. The request's
    /// log record reads it, so a restart can count those tokens too.
    pub fn report_unsettled_to(&mut self, cell: Arc<AtomicU64>) {
        cell.store(self.reserved, Ordering::Release);
        self.unreported = Some(cell);
    }

    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    fn settle_inner(&mut self, actual: u64) {
        if self.settled {
            return;
        }
        self.settled = true;
        if let Some(cell) = &self.unreported {
            cell.store(0, Ordering::Release);
        }
        let l = &self.limiter;
        let per_min = l.effective.tokens_per_min;
        {
            // A refund fills only what the bucket misses (at most full); a
            // charge beyond the reservation takes it below empty, and the
            // refill alone pays that back.
            let mut b = l.tokens.lock();
            b.refill(per_min);
            let most_debt = -f64::from(per_min) * MOST_DEBT_MINUTES;
            b.level = (b.level + self.reserved as f64 - actual as f64)
                .clamp(most_debt, f64::from(per_min));
        }
        let mut d = l.daily.lock();
        d.used = d.used.saturating_add(actual).saturating_sub(self.reserved);
    }
}

impl Drop for Reservation {
    /// Unsettled (no usage was ever learned): the reservation stands as spent.
    fn drop(&mut self) {
        self.settled = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(tokens_per_min: u32) -> Arc<KeyLimiter> {
        let e = Effective {
            requests_per_min: 1_000,
            tokens_per_min,
            max_concurrent_streams: None,
            daily_token_budget: None,
            max_concurrent_requests: None,
        };
        Arc::new(KeyLimiter::new(e, None, None))
    }

    /// Moves the bucket's clock back, as if `secs` had passed.
    fn age(l: &KeyLimiter, secs: u64) {
        let mut b = l.tokens.lock();
        if let Some(at) = b.at.checked_sub(Duration::from_secs(secs)) {
            b.at = at;
        }
    }

    /// An answer that used far more than it reserved is paid in full: the
    /// key is refused until the refill alone has paid the debt.
    #[test]
    fn debt_is_paid_by_the_refill_alone() {
        let l = limiter(1_200);
        let (r, _) = l.reserve(200, 0).unwrap();
        // 1,000 left; the answer used 2,400 more than it reserved: -1,400.
        r.settle(2_600);
        // The headers say so: nothing left, full again in 130 s.
        let adm = l.admit().unwrap();
        assert_eq!(adm.tokens_remaining, 0);
        assert!((129..=130).contains(&adm.tokens_reset.as_secs()), "{adm:?}");
        match l.reserve(100, 0) {
            Err(PolicyError::RateLimited {
                what, retry_after, ..
            }) => {
                assert_eq!(what, "tokens");
                // 1,500 tokens at 20 a second: 75 s.
                assert!(
                    (74..=75).contains(&retry_after.as_secs()),
                    "{retry_after:?}"
                );
            }
            other => panic!("admitted while in debt: {:?}", other.map(|(_, n)| n)),
        }
        // After 60 s the refill has paid 1,200 of it: still refused (the
        // debt was paid twice over, by a ledger and by the bucket).
        age(&l, 60);
        assert!(l.reserve(100, 0).is_err());
        age(&l, 16);
        assert!(l.reserve(100, 0).is_ok());
    }

    /// A refund fills what the bucket misses and no more: a late refund on
    /// a bucket that refilled meanwhile is not a second minute of tokens.
    #[test]
    fn a_refund_never_overfills_the_bucket() {
        let l = limiter(1_000);
        let (r, _) = l.reserve(1_000, 0).unwrap();
        age(&l, 61);
        r.settle(30);
        assert_eq!(l.tokens_now().0, 1_000);
        let (_, left) = l.reserve(1_000, 0).unwrap();
        assert_eq!(left.0, 0);
        assert!(l.reserve(1, 0).is_err());
    }

    /// Credit from one answer pays the debt of another.
    #[test]
    fn refunds_and_charges_net_out() {
        let l = limiter(1_000);
        let (a, _) = l.reserve(100, 0).unwrap();
        let (b, _) = l.reserve(100, 0).unwrap();
        a.settle(150);
        b.settle(20);
        // 1,000 - 200 - 50 + 80.
        assert!((829..=831).contains(&l.tokens_now().0));
    }

    /// A change of the key's numbers keeps its bucket (and debt) and, when
    /// requests/min is unchanged, its request count.
    #[test]
    fn a_change_of_limits_refills_nothing() {
        let l = limiter(1_000);
        let (r, _) = l.reserve(100, 0).unwrap();
        r.settle(3_000);
        for _ in 0..5 {
            assert!(l.admit().is_ok());
        }
        let mut e = l.effective;
        e.max_concurrent_requests = Some(50);
        let next = Arc::new(KeyLimiter::new(e, Some(&l), None));
        assert!(next.reserve(1, 0).is_err(), "the debt carried over");
        let before = l.admit().unwrap().requests_remaining;
        assert_eq!(next.admit().unwrap().requests_remaining, before - 1);
        e.tokens_per_min = 500;
        let smaller = Arc::new(KeyLimiter::new(e, Some(&next), None));
        assert!(smaller.tokens_now().0 <= 500);
    }

    /// A daily budget set mid-day counts what the key used before it.
    #[test]
    fn the_day_is_counted_without_a_budget() {
        let l = limiter(10_000);
        let (r, _) = l.reserve(600, 0).unwrap();
        r.settle(800);
        let mut e = l.effective;
        e.daily_token_budget = Some(1_000);
        let next = Arc::new(KeyLimiter::new(e, Some(&l), None));
        assert!(next.reserve(300, 0).is_err(), "800 used + 300 > 1,000");
        assert!(next.reserve(200, 0).is_ok());
    }
}
