//! Percentiles of a set of durations.

use serde::Serialize;
use std::time::Duration;

/// p50, p99 and max of a sample, in milliseconds (nearest-rank percentiles).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// How many durations.
    pub samples: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Percentiles {
    /// The percentiles of `durations` (all zero when empty).
    pub fn of(mut durations: Vec<Duration>) -> Self {
        if durations.is_empty() {
            return Percentiles::default();
        }
        durations.sort();
        let rank = |p: f64| {
            let n = durations.len();
            let i = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            ms(durations[i])
        };
        Percentiles {
            samples: durations.len(),
            p50_ms: rank(0.50),
            p99_ms: rank(0.99),
            max_ms: ms(*durations.last().expect("not empty")),
        }
    }
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let d: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let p = Percentiles::of(d);
        assert_eq!(
            (p.samples, p.p50_ms, p.p99_ms, p.max_ms),
            (100, 50.0, 99.0, 100.0)
        );
        assert_eq!(Percentiles::of(vec![]), Percentiles::default());
        assert_eq!(Percentiles::of(vec![Duration::from_millis(7)]).p99_ms, 7.0);
    }
}
