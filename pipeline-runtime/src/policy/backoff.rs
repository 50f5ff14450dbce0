//! Waits between retries: exponential, capped, with jitter from a small
//! deterministic generator.

use std::time::Duration;

use crate::options::Retry;

/// How a retry's wait is spread below its ceiling, so that items (or
/// pipelines) that failed together do not retry in lockstep.
///
/// The ceiling of retry `n` (from 1) is `backoff * 2^(n-1)`, capped at
/// `max_backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Exactly the ceiling.
    None,
    /// Anywhere from zero to the ceiling.
    Full,
    /// Half the ceiling, plus anywhere up to the other half: never less
    /// than half the ceiling, so retries stay spaced out. The default.
    #[default]
    Equal,
}

/// The waits before each retry of an item.
///
/// Waits are whole milliseconds (the resolution of tokio's timer), and a
/// `backoff` or `max_backoff` below a millisecond counts as one. The jitter
/// comes from a [SplitMix64](https://prng.di.unimi.it/splitmix64.c)
/// generator seeded per stage ([`seed`]), so a run's waits are
/// reproducible:
///
/// ```
/// use std::time::Duration;
/// use pipeline_runtime::options::Retry;
/// use pipeline_runtime::policy::{Backoff, Jitter};
///
/// let retry = Retry {
///     attempts: 5,
///     backoff: Duration::from_millis(10),
///     max_backoff: Duration::from_millis(50),
/// };
/// let mut exact = Backoff::new(&retry, Jitter::None, 0);
/// let waits: Vec<u64> = (1..=5).map(|n| exact.delay(n).as_millis() as u64).collect();
/// assert_eq!(waits, [10, 20, 40, 50, 50]);
///
/// let mut equal = Backoff::new(&retry, Jitter::Equal, 7);
/// for n in 1..=5 {
///     let wait = equal.delay(n);
///     assert!(wait >= equal.ceiling(n) / 2 && wait <= equal.ceiling(n));
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    base_ms: u64,
    max_ms: u64,
    jitter: Jitter,
    rng: SplitMix64,
}

impl Backoff {
    /// The waits of `retry`, spread by `jitter` from the generator seeded
    /// with `seed`.
    pub fn new(retry: &Retry, jitter: Jitter, seed: u64) -> Self {
        Backoff {
            base_ms: whole_millis(retry.backoff),
            max_ms: whole_millis(retry.max_backoff),
            jitter,
            rng: SplitMix64(seed),
        }
    }

    /// The longest wait before retry `n` (the first retry is 1):
    /// `backoff * 2^(n-1)`, capped at `max_backoff`.
    pub fn ceiling(&self, n: u32) -> Duration {
        Duration::from_millis(self.ceiling_ms(n))
    }

    fn ceiling_ms(&self, n: u32) -> u64 {
        let factor = 1u64.checked_shl(n.saturating_sub(1)).unwrap_or(u64::MAX);
        self.base_ms.saturating_mul(factor).min(self.max_ms)
    }

    /// The wait before retry `n` (the first retry is 1): the
    /// [ceiling](Backoff::ceiling), spread by the jitter. Each call draws
    /// from the generator.
    pub fn delay(&mut self, n: u32) -> Duration {
        let ceiling = self.ceiling_ms(n);
        let ms = match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => self.rng.below_or_at(ceiling),
            Jitter::Equal => {
                let half = ceiling / 2;
                ceiling - half + self.rng.below_or_at(half)
            }
        };
        Duration::from_millis(ms)
    }
}

/// A duration in whole milliseconds, rounded up, and at least one.
fn whole_millis(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX).max(1)
}

/// The seed of a stage's jitter: a hash (FNV-1a) of its name, so each stage
/// has its own sequence and every run the same one.
pub fn seed(stage: &str) -> u64 {
    stage.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64: tiny, fast and good enough for spreading waits.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number from `0` to `max`, both included.
    fn below_or_at(&mut self, max: u64) -> u64 {
        match max.checked_add(1) {
            // The modulo bias is at most `max / 2^64`: irrelevant for waits.
            Some(range) => self.next() % range,
            None => self.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(backoff_ms: u64, max_ms: u64) -> Retry {
        Retry {
            attempts: 10,
            backoff: Duration::from_millis(backoff_ms),
            max_backoff: Duration::from_millis(max_ms),
        }
    }

    #[test]
    fn ceilings_double_up_to_the_cap_and_never_overflow() {
        let b = Backoff::new(&retry(10, 1_000), Jitter::None, 0);
        let ceilings: Vec<u64> = (1..=8).map(|n| b.ceiling(n).as_millis() as u64).collect();
        assert_eq!(ceilings, [10, 20, 40, 80, 160, 320, 640, 1_000]);
        assert_eq!(b.ceiling(200), Duration::from_millis(1_000));
        let huge = Backoff::new(&retry(u64::MAX / 2, u64::MAX), Jitter::None, 0);
        assert_eq!(huge.ceiling(64).as_millis() as u64, u64::MAX);
    }

    #[test]
    fn jitter_stays_in_its_range_and_is_reproducible() {
        let r = retry(100, 10_000);
        let mut full = Backoff::new(&r, Jitter::Full, seed("call_api"));
        let mut equal = Backoff::new(&r, Jitter::Equal, seed("call_api"));
        let mut again = Backoff::new(&r, Jitter::Equal, seed("call_api"));
        let mut other = Backoff::new(&r, Jitter::Equal, seed("parse"));
        let mut differs = false;
        for n in 1..=7 {
            let ceiling = full.ceiling(n);
            assert!(full.delay(n) <= ceiling);
            let wait = equal.delay(n);
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "{wait:?} {ceiling:?}"
            );
            assert_eq!(wait, again.delay(n));
            differs |= wait != other.delay(n);
        }
        assert!(differs, "stages have their own sequences");
    }

    #[test]
    fn sub_millisecond_settings_count_as_one_millisecond() {
        let r = Retry {
            attempts: 1,
            backoff: Duration::from_micros(10),
            max_backoff: Duration::from_micros(10),
        };
        assert_eq!(
            Backoff::new(&r, Jitter::None, 0).delay(1),
            Duration::from_millis(1)
        );
    }
}
