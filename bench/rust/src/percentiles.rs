//! Latency percentiles (nearest rank) of nanosecond samples, as every phase's JSON carries them.

use serde::{Deserialize, Serialize};

/// Percentiles in milliseconds; all zero when there were no samples (`n` says so).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub n: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// The percentiles of `samples` (nanoseconds).
    pub fn of(mut samples: Vec<u64>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let n = samples.len();
        let rank = |p: f64| {
            let i = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            samples[i] as f64 / 1e6
        };
        Self {
            n,
            p50_ms: rank(0.50),
            p90_ms: rank(0.90),
            p99_ms: rank(0.99),
            p999_ms: rank(0.999),
            max_ms: samples[n - 1] as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_of_a_hundred_samples() {
        let samples: Vec<u64> = (1..=100).rev().map(|ms| ms * 1_000_000).collect();
        let p = Percentiles::of(samples);
        assert_eq!(p.n, 100);
        assert_eq!(p.p50_ms, 50.0);
        assert_eq!(p.p90_ms, 90.0);
        assert_eq!(p.p99_ms, 99.0);
        assert_eq!(p.p999_ms, 100.0);
        assert_eq!(p.max_ms, 100.0);
    }

    #[test]
    fn no_samples_are_all_zero() {
        assert_eq!(Percentiles::of(Vec::new()), Percentiles::default());
    }

    #[test]
    fn one_sample_is_every_percentile() {
        let p = Percentiles::of(vec![2_500_000]);
        assert_eq!((p.p50_ms, p.p99_ms, p.max_ms), (2.5, 2.5, 2.5));
    }
}
