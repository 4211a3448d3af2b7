//! Latency summaries.
use std::fmt;
use std::time::Duration;

/// Throughput and latency of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub requests: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

impl Summary {
    /// `latencies_ns` in any order; sorted in place.
    pub fn from_latencies(latencies_ns: &mut [u64], elapsed: Duration) -> Self {
        latencies_ns.sort_unstable();
        Self {
            requests: latencies_ns.len() as u64,
            elapsed,
            p50: percentile(latencies_ns, 0.50),
            p99: percentile(latencies_ns, 0.99),
            p999: percentile(latencies_ns, 0.999),
            max: latencies_ns
                .last()
                .map_or(Duration::ZERO, |&n| Duration::from_nanos(n)),
        }
    }

    pub fn requests_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.requests as f64 / secs
        } else {
            0.0
        }
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted_ns: &[u64], q: f64) -> Duration {
    if sorted_ns.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted_ns.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_ns.len()) - 1;
    Duration::from_nanos(sorted_ns[index])
}

/// Milliseconds with microsecond resolution.
pub struct Millis(pub Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} ms", self.0.as_secs_f64() * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u64> = (1..=1000).rev().collect();
        let s = Summary::from_latencies(&mut v, Duration::from_secs(2));
        assert_eq!(s.p50, Duration::from_nanos(500));
        assert_eq!(s.p99, Duration::from_nanos(990));
        assert_eq!(s.p999, Duration::from_nanos(999));
        assert_eq!(s.max, Duration::from_nanos(1000));
        assert_eq!(s.requests_per_second(), 500.0);
        assert_eq!(percentile(&[7], 0.999), Duration::from_nanos(7));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
