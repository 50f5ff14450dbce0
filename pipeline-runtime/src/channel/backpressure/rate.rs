//! The token bucket of [`Backpressure::Rate`](crate::options::Backpressure::Rate),
//! kept as a theoretical arrival time (GCRA) in integer nanoseconds so that
//! paused-time tests see exact instants.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket shared by every producer of one edge.
///
/// Each item costs `interval` (`1 / per_sec`). The bucket holds `burst`
/// tokens: an item may leave at `now` if the schedule it extends,
/// `tat = max(tat, now) + interval`, ends no later than
/// `now + burst * interval`. It starts full.
#[derive(Debug)]
pub(crate) struct Bucket {
    /// Nanoseconds per item, at least 1.
    interval: u64,
    /// Tokens the bucket holds, at least 1.
    burst: u64,
    /// When the items let through so far would have left at the average
    /// rate ("theoretical arrival time").
    tat: Mutex<Instant>,
}

impl Bucket {
    /// A full bucket, or `None` if the rate is unlimited: infinite, so high
    /// that an item costs less than a nanosecond, or not a positive number
    /// (which the macro rejects; treated as no limit rather than a hang).
    pub(crate) fn new(per_sec: f64, burst: usize) -> Option<Bucket> {
        if per_sec.is_nan() || per_sec <= 0.0 {
            return None;
        }
        let interval = (1e9 / per_sec).round();
        if interval < 1.0 {
            return None;
        }
        Some(Bucket {
            // Saturates for rates below one item in ~584 years.
            interval: interval as u64,
            burst: burst.max(1) as u64,
            tat: Mutex::new(Instant::now()),
        })
    }

    /// Takes up to `wanted` tokens (at least 1) if at least one is available
    /// at `now`, and returns how many it took; otherwise returns the instant
    /// the next one will be.
    pub(crate) fn take(&self, wanted: usize, now: Instant) -> Result<usize, Instant> {
        let wanted = wanted.max(1) as u128;
        let interval = u128::from(self.interval);
        let limit = u128::from(self.burst) * interval;
        let mut tat = self.tat.lock().unwrap_or_else(PoisonError::into_inner);
        let base = (*tat).max(now);
        let debt = (base - now).as_nanos();
        if debt + interval > limit {
            return Err(now + nanos(debt + interval - limit));
        }
        let n = ((limit - debt) / interval).min(wanted);
        *tat = base + nanos(n * interval);
        // `n <= wanted`, which came from a `usize`.
        Ok(n as usize)
    }
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_bucket_lets_a_burst_through_then_one_item_per_interval() {
        let bucket = Bucket::new(10.0, 3).unwrap();
        let start = Instant::now();
        assert_eq!(bucket.take(5, start), Ok(3));
        let next = bucket.take(1, start).unwrap_err();
        assert_eq!(next - start, Duration::from_millis(100));
        assert_eq!(bucket.take(4, next), Ok(1));
        // Idle for a second: the bucket refills to its size, not beyond.
        let later = next + Duration::from_secs(1);
        assert_eq!(bucket.take(10, later), Ok(3));
    }

    #[test]
    fn unlimited_rates_have_no_bucket() {
        assert!(Bucket::new(f64::INFINITY, 1).is_none());
        assert!(Bucket::new(0.0, 1).is_none());
        assert!(Bucket::new(-1.0, 1).is_none());
        assert!(Bucket::new(f64::NAN, 1).is_none());
        assert!(Bucket::new(1e12, 1).is_none());
    }
}
