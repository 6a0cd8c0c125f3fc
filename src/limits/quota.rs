//! One key's limiter: governor quotas for requests/min and tokens/min, a
//! ledger that settles token reservations against real usage, the open
//! stream count and the daily token budget.
//!
//! Governor cannot give cells back, so settling goes through the ledger:
//! an over-reservation becomes credit that later admissions spend before
//! asking governor, and an under-reservation becomes debt that the next
//! admission pays; what one bucket cannot hold runs down at the refill rate,
//! the key refused meanwhile. The two net out.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
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

#[derive(Default)]
struct Ledger {
    credit: u64,
    debt: u64,
    /// When `credit` and `debt` were last brought up to date (at most one
    /// of them is above zero: settling nets them).
    credit_at: Option<Instant>,
}

/// The most debt kept: a day of the key's tokens/min. (An upstream may
/// report up to 2^40 tokens for one answer; that would be years.)
const MOST_DEBT_MINUTES: u64 = 24 * 60;

impl Ledger {
    /// Both run down at the refill rate. Credit stands for cells given back
    /// to a bucket that governor keeps refilling on its own: credit and
    /// refill together never exceed what one full bucket would hold. (Kept
    /// forever, a minute-old refund doubled the next minute's tokens.) Debt
    /// is tokens used beyond the bucket: the key waits while the rate pays
    /// them off, as if the bucket had been that much deeper.
    fn lapse(&mut self, per_min: u32) {
        let now = Instant::now();
        if let Some(at) = self.credit_at.filter(|_| self.credit > 0 || self.debt > 0) {
            let ms = u64::try_from(now.duration_since(at).as_millis()).unwrap_or(u64::MAX);
            let refilled = u64::from(per_min).saturating_mul(ms) / 60_000;
            self.credit = self.credit.saturating_sub(refilled);
            self.debt = self.debt.saturating_sub(refilled);
        }
        self.credit_at = Some(now);
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
    requests: Limiter,
    tokens: Limiter,
    ledger: Mutex<Ledger>,
    /// Shared with the limiter this one replaced, so open streams and the
    /// day's usage survive a change of limits.
    streams: Arc<AtomicU32>,
    requests_open: Arc<AtomicU32>,
    daily: Arc<Mutex<Daily>>,
    last_tokens_remaining: AtomicU32,
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
}

/// Tokens held for one request until its real usage is known.
pub struct Reservation {
    limiter: Arc<KeyLimiter>,
    reserved: u64,
    settled: bool,
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
        let build = |n| {
            RateLimiter::direct_with_clock(per_minute(n), clock.clone())
                .with_middleware::<StateInformationMiddleware>()
        };
        KeyLimiter {
            requests: build(effective.requests_per_min),
            tokens: build(effective.tokens_per_min),
            effective,
            clock: clock.clone(),
            ledger: Mutex::new(Ledger::default()),
            streams: previous.map_or_else(Default::default, |p| p.streams.clone()),
            requests_open: previous.map_or_else(Default::default, |p| p.requests_open.clone()),
            daily: previous.map_or_else(
                || {
                    let (day, used) = seed.unwrap_or_default();
                    Arc::new(Mutex::new(Daily { day, used }))
                },
                |p| p.daily.clone(),
            ),
            last_tokens_remaining: AtomicU32::new(effective.tokens_per_min),
        }
    }

    /// Governor reports capacity only as part of a decision, so the tokens
    /// figure shown between reservations is the one the last reservation saw.
    fn tokens_remaining(&self) -> u32 {
        self.last_tokens_remaining.load(Ordering::Relaxed)
    }

    /// Counts one request against requests/min. Every request that reaches
    /// this point counts, whether it later succeeds or not.
    pub fn admit(&self) -> Result<Admission, (PolicyError, Admission)> {
        let e = self.effective;
        match self.requests.check() {
            Ok(snap) => Ok(Admission {
                requests_limit: e.requests_per_min,
                requests_remaining: snap.remaining_burst_capacity(),
                tokens_limit: e.tokens_per_min,
                tokens_remaining: self.tokens_remaining(),
            }),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let adm = Admission {
                    requests_limit: e.requests_per_min,
                    requests_remaining: 0,
                    tokens_limit: e.tokens_per_min,
                    tokens_remaining: self.tokens_remaining(),
                };
                Err((
                    PolicyError::RateLimited {
                        what: "requests",
                        limit: u64::from(e.requests_per_min),
                        retry_after: wait,
                    },
                    adm,
                ))
            }
        }
    }

    /// Reserves `n` tokens atomically: the daily budget, then (refused while
    /// debt is owed) credit first and governor for the rest.
    pub fn reserve(self: &Arc<Self>, n: u64, now: i64) -> Result<(Reservation, u32), PolicyError> {
        let e = self.effective;
        if n > u64::from(e.tokens_per_min) {
            return Err(PolicyError::ExceedsQuota {
                tokens: n,
                limit: u64::from(e.tokens_per_min),
                per: "per minute",
            });
        }
        // The day's budget is checked and taken under one lock, so two
        // requests cannot both pass on the same headroom; it is given back
        // if governor refuses below.
        if let Some(budget) = e.daily_token_budget {
            // Waiting for midnight would not help this one.
            if n > budget {
                return Err(PolicyError::ExceedsQuota {
                    tokens: n,
                    limit: budget,
                    per: "per day",
                });
            }
            let mut d = self.daily.lock();
            if d.day != utc_day(now) {
                *d = Daily {
                    day: utc_day(now),
                    used: 0,
                };
            }
            if d.used.saturating_add(n) > budget {
                let midnight = (utc_day(now) + 1) * 86_400;
                return Err(PolicyError::RateLimited {
                    what: "daily tokens",
                    limit: budget,
                    retry_after: Duration::from_secs(u64::try_from(midnight - now).unwrap_or(1)),
                });
            }
            d.used += n;
        }
        let give_back = || {
            if e.daily_token_budget.is_some() {
                let mut d = self.daily.lock();
                d.used = d.used.saturating_sub(n);
            }
        };
        let refused = |retry_after: Duration| {
            give_back();
            PolicyError::RateLimited {
                what: "tokens",
                limit: u64::from(e.tokens_per_min),
                retry_after,
            }
        };
        let remaining = {
            let mut ledger = self.ledger.lock();
            ledger.lapse(e.tokens_per_min);
            // An answer that used more than it reserved is paid with the
            // next admission, and what one bucket cannot hold waits for the
            // rate to run it down. (Capped at one bucket, the rest was
            // forgiven: an upstream ignoring `max_tokens` made the limit
            // decorative.)
            let per_min = u64::from(e.tokens_per_min.max(1));
            let beyond = n.saturating_add(ledger.debt).saturating_sub(per_min);
            if ledger.debt > 0 && beyond > 0 {
                let ms = beyond.saturating_mul(60_000).div_ceil(per_min);
                return Err(refused(Duration::from_millis(ms)));
            }
            let from_credit = ledger.credit.min(n);
            let owed = (n - from_credit).saturating_add(ledger.debt);
            let credit_left = u32::try_from(ledger.credit - from_credit).unwrap_or(u32::MAX);
            let shown = match NonZeroU32::new(u32::try_from(owed).unwrap_or(u32::MAX)) {
                // Paid from credit alone: the last figure, less what was spent.
                None => self
                    .tokens_remaining()
                    .saturating_sub(u32::try_from(from_credit).unwrap_or(u32::MAX)),
                Some(cells) => match self.tokens.check_n(cells) {
                    Ok(Ok(snap)) => snap.remaining_burst_capacity().saturating_add(credit_left),
                    Ok(Err(not_until)) => {
                        return Err(refused(not_until.wait_time_from(self.clock.now())));
                    }
                    Err(_) => {
                        give_back();
                        return Err(PolicyError::ExceedsQuota {
                            tokens: n,
                            limit: u64::from(e.tokens_per_min),
                            per: "per minute",
                        });
                    }
                },
            };
            ledger.credit -= from_credit;
            ledger.debt = 0;
            let shown = shown.min(e.tokens_per_min);
            self.last_tokens_remaining.store(shown, Ordering::Relaxed);
            shown
        };
        Ok((
            Reservation {
                limiter: self.clone(),
                reserved: n,
                settled: false,
            },
            remaining,
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

    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    fn settle_inner(&mut self, actual: u64) {
        if self.settled {
            return;
        }
        self.settled = true;
        let l = &self.limiter;
        {
            let mut ledger = l.ledger.lock();
            ledger.lapse(l.effective.tokens_per_min);
            if actual < self.reserved {
                let back = self.reserved - actual;
                let repaid = back.min(ledger.debt);
                ledger.debt -= repaid;
                let cap = u64::from(l.effective.tokens_per_min);
                ledger.credit = ledger.credit.saturating_add(back - repaid).min(cap);
            } else {
                let over = actual - self.reserved;
                let covered = over.min(ledger.credit);
                ledger.credit -= covered;
                let most = u64::from(l.effective.tokens_per_min).saturating_mul(MOST_DEBT_MINUTES);
                ledger.debt = ledger.debt.saturating_add(over - covered).min(most);
            }
        }
        if l.effective.daily_token_budget.is_some() {
            let mut d = l.daily.lock();
            d.used = d.used.saturating_add(actual).saturating_sub(self.reserved);
        }
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

    #[test]
    fn credit_lapses_at_the_refill_rate() {
        let half_a_minute_ago = Instant::now().checked_sub(Duration::from_secs(30));
        let Some(at) = half_a_minute_ago else { return };
        let mut l = Ledger {
            credit: 1_000,
            debt: 0,
            credit_at: Some(at),
        };
        // 1,200 a minute refill 600 in 30 s: that much credit is redundant.
        l.lapse(1_200);
        assert!((399..=400).contains(&l.credit), "{}", l.credit);
        // A minute later none is left.
        l.credit_at = Instant::now().checked_sub(Duration::from_secs(61));
        l.lapse(1_200);
        assert_eq!(l.credit, 0);
        // Fresh credit is kept whole.
        l.credit = 500;
        l.lapse(1_200);
        assert!(l.credit >= 499);
    }

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

    /// An answer that used far more than it reserved is paid in full: not
    /// one bucket's worth with the rest forgiven.
    #[test]
    fn debt_beyond_a_bucket_is_kept_and_refuses_until_paid() {
        let l = limiter(100);
        let (r, _) = l.reserve(10, 0).unwrap();
        r.settle(350);
        // 340 owed, more than a bucket holds: this request and those after
        // it are refused until the rate has run the excess down.
        for _ in 0..3 {
            match l.reserve(1, 0) {
                Err(PolicyError::RateLimited {
                    what, retry_after, ..
                }) => {
                    assert_eq!(what, "tokens");
                    assert!(retry_after >= Duration::from_secs(30), "{retry_after:?}");
                }
                other => panic!("admitted while in debt: {:?}", other.map(|(_, n)| n)),
            }
        }
        assert!(l.ledger.lock().debt >= 330);
    }

    /// Debt runs down with time: the key is served again once the rate has
    /// paid it, without having to be asked in between.
    #[test]
    fn debt_runs_down_at_the_refill_rate() {
        let l = limiter(100);
        {
            let mut ledger = l.ledger.lock();
            ledger.debt = 150;
            ledger.credit_at = Instant::now().checked_sub(Duration::from_secs(91));
        }
        assert!(
            l.reserve(1, 0).is_ok(),
            "150 tokens at 100 a minute: paid in 90 s"
        );
    }

    /// Credit from one answer pays the debt of another.
    #[test]
    fn credit_and_debt_net_out() {
        let l = limiter(1_000);
        let (a, _) = l.reserve(100, 0).unwrap();
        let (b, _) = l.reserve(100, 0).unwrap();
        a.settle(150);
        b.settle(20);
        let ledger = l.ledger.lock();
        assert_eq!((ledger.debt, ledger.credit), (0, 30));
    }
}
