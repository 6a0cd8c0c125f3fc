//! A small fixed-bucket latency histogram: mergeable (so hourly and daily
//! rollups add up), cheap to record, and stored as a compact blob.

/// Upper bounds in milliseconds, roughly ×1.5 apart from 1 ms to 10 min; the
/// last bucket takes everything slower.
const BOUNDS_MS: [u32; 34] = [
    1,
    2,
    3,
    5,
    7,
    10,
    15,
    20,
    30,
    45,
    65,
    100,
    150,
    200,
    300,
    450,
    650,
    1_000,
    1_500,
    2_000,
    3_000,
    4_500,
    6_500,
    10_000,
    15_000,
    20_000,
    30_000,
    45_000,
    65_000,
    100_000,
    150_000,
    300_000,
    600_000,
    u32::MAX,
];

pub const BUCKETS: usize = BOUNDS_MS.len();

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: [u32; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: [0; BUCKETS],
        }
    }
}

impl Histogram {
    pub fn record(&mut self, ms: u64) {
        let ms = u32::try_from(ms).unwrap_or(u32::MAX);
        let i = BOUNDS_MS.partition_point(|&b| b < ms);
        self.counts[i.min(BUCKETS - 1)] = self.counts[i.min(BUCKETS - 1)].saturating_add(1);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }

    /// The `q`-quantile (0..=1), interpolated linearly inside its bucket;
    /// `None` when empty. Accurate to the bucket width (about ±25 %).
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut seen = 0.0;
        for (i, &c) in self.counts.iter().enumerate() {
            let c = f64::from(c);
            if c > 0.0 && seen + c >= rank {
                let lo = if i == 0 {
                    0.0
                } else {
                    f64::from(BOUNDS_MS[i - 1])
                };
                let hi = if i == BUCKETS - 1 {
                    lo * 2.0
                } else {
                    f64::from(BOUNDS_MS[i])
                };
                let within = (rank - seen) / c;
                return Some((lo + (hi - lo) * within).round() as u64);
            }
            seen += c;
        }
        None
    }

    /// Little-endian u32 per bucket.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.counts.iter().flat_map(|c| c.to_le_bytes()).collect()
    }

    /// Reads what `to_bytes` wrote; a short or odd blob reads as far as it goes.
    pub fn from_bytes(b: &[u8]) -> Histogram {
        let mut h = Histogram::default();
        for (slot, chunk) in h.counts.iter_mut().zip(b.chunks_exact(4)) {
            *slot = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        h
    }

    /// Prometheus-style cumulative counts per upper bound (ms), the last
    /// being `+Inf`.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<u32>, u64)> + '_ {
        let mut acc = 0u64;
        self.counts.iter().enumerate().map(move |(i, &c)| {
            acc += u64::from(c);
            let bound = (i < BUCKETS - 1).then_some(BOUNDS_MS[i]);
            (bound, acc)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_land_in_the_right_bucket() {
        let mut h = Histogram::default();
        for ms in 1..=100u64 {
            h.record(ms);
        }
        let p50 = h.quantile(0.5).unwrap_or(0);
        assert!((40..=65).contains(&p50), "p50 {p50}");
        let p95 = h.quantile(0.95).unwrap_or(0);
        assert!((90..=100).contains(&p95), "p95 {p95}");
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn bytes_round_trip_and_merge_adds() {
        let mut a = Histogram::default();
        a.record(3);
        a.record(5_000);
        let b = Histogram::from_bytes(&a.to_bytes());
        assert_eq!(a, b);
        a.merge(&b);
        assert_eq!(a.count(), 4);
        a.record(u64::MAX);
        assert_eq!(a.count(), 5);
    }
}
