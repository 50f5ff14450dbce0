//! The circuit breaker of a stage.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::StageStats;
use crate::options::Breaker;

/// Where a circuit breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls go through, and their outcomes are counted.
    Closed,
    /// Calls fail fast without reaching the stage, until the cooldown ends.
    Open,
    /// The cooldown has ended: one trial call goes through; its success
    /// closes the breaker, its failure opens it again.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half-open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stage's circuit breaker, as a [`StageReport`](crate::metrics::StageReport)
/// shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerReport {
    /// Where it is now (at the end of a run: where it ended).
    pub state: BreakerState,
    /// Times it opened (from closed, or again from half-open).
    pub opens: u64,
    /// Times its cooldown ended and it let a trial call through.
    pub half_opens: u64,
    /// Times a trial call succeeded and closed it.
    pub closes: u64,
}

impl BreakerReport {
    /// Reads a stage's breaker counters; `None` if the stage has no
    /// breaker.
    pub fn from_stats(stats: &StageStats) -> Option<Self> {
        Some(BreakerReport {
            state: stats.breaker_state()?,
            opens: stats.breaker_opens(),
            half_opens: stats.breaker_half_opens(),
            closes: stats.breaker_closes(),
        })
    }
}

impl fmt::Display for BreakerReport {
    /// `breaker open (opened 2, half-opened 1, closed 0)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "breaker {} (opened {}, half-opened {}, closed {})",
            self.state, self.opens, self.half_opens, self.closes
        )
    }
}

/// Buckets the sliding window is cut into: it slides a tenth of its length
/// at a time.
const BUCKETS: usize = 10;

/// A stage's circuit breaker.
///
/// * **Closed**: every call goes through. Over a sliding
///   [`window`](Breaker::window) (kept in ten buckets, so it slides by a
///   tenth of its length), once at least [`min_calls`](Breaker::min_calls)
///   calls were made and the failed share (calls that failed or panicked,
///   and calls slower than [`latency`](Breaker::latency) if set) reaches
///   [`error_rate`](Breaker::error_rate), it opens.
/// * **Open**: calls are refused (the item fails with
///   [`StageError::BreakerOpen`](crate::stage::StageError::BreakerOpen),
///   handled by the stage's error policy) until
///   [`cooldown`](Breaker::cooldown) has passed since it opened.
/// * **Half-open**: the first call after the cooldown is a trial (a fused
///   stage calls one item at a time, so there is one trial at a time); if
///   it succeeds the breaker closes with an empty window, if it fails it
///   opens again for another cooldown.
///
/// Time comes from [`tokio::time::Instant`], so tests can pause it. Each
/// change is logged (`warn` when it opens, `info` otherwise) and counted in
/// the stage's [`StageStats`].
#[derive(Debug)]
pub struct CircuitBreaker {
    config: Breaker,
    stats: Arc<StageStats>,
    state: BreakerState,
    opened_at: Instant,
    bucket: Duration,
    epoch: Instant,
    /// Per bucket: its number since `epoch`, calls and failed calls.
    buckets: [(u64, u32, u32); BUCKETS],
}

impl CircuitBreaker {
    /// A closed breaker for the stage counted by `stats`.
    pub fn new(config: Breaker, stats: Arc<StageStats>) -> Self {
        let now = Instant::now();
        stats.set_breaker_state(BreakerState::Closed);
        CircuitBreaker {
            config,
            stats,
            state: BreakerState::Closed,
            opened_at: now,
            bucket: (config.window / BUCKETS as u32).max(Duration::from_nanos(1)),
            epoch: now,
            buckets: [(u64::MAX, 0, 0); BUCKETS],
        }
    }

    /// Where the breaker is, as of its last call or refusal (the end of a
    /// cooldown is noticed at the next call).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// The breaker's settings.
    pub fn config(&self) -> &Breaker {
        &self.config
    }

    /// Whether a call may go through at `now`. An open breaker whose
    /// cooldown has passed turns half-open and lets this call through as
    /// its trial; while that trial is out (until its
    /// [`record`](Self::record)), other calls are refused, which matters
    /// when several workers share the breaker.
    pub fn admit(&mut self, now: Instant) -> bool {
        match self.state {
            BreakerState::Closed => true,
            BreakerState::HalfOpen => false,
            BreakerState::Open => {
                if now.saturating_duration_since(self.opened_at) < self.config.cooldown {
                    return false;
                }
                self.moved(BreakerState::HalfOpen);
                tracing::info!(
                    stage = self.stats.name(),
                    "circuit breaker half-open: letting a trial call through"
                );
                true
            }
        }
    }

    /// Whether a call that took `elapsed` counts as failed for its latency.
    pub fn is_slow(&self, elapsed: Duration) -> bool {
        self.config.latency.is_some_and(|limit| elapsed > limit)
    }

    /// Records the outcome of a call that [`admit`](Self::admit) let
    /// through and that ended at `now`: `failed` if it failed, panicked or
    /// was too slow.
    pub fn record(&mut self, now: Instant, failed: bool) {
        match self.state {
            BreakerState::HalfOpen if failed => {
                self.open(now);
                tracing::warn!(
                    stage = self.stats.name(),
                    cooldown = ?self.config.cooldown,
                    "circuit breaker open again: the trial call failed"
                );
            }
            BreakerState::HalfOpen => {
                self.clear();
                self.moved(BreakerState::Closed);
                tracing::info!(
                    stage = self.stats.name(),
                    "circuit breaker closed: the trial call succeeded"
                );
            }
            // A call let through before the breaker opened that ends after.
            BreakerState::Open => {}
            BreakerState::Closed => {
                let (calls, failures) = self.count(now, failed);
                let enough = calls >= self.config.min_calls.max(1);
                if enough && f64::from(failures) >= self.config.error_rate * f64::from(calls) {
                    self.open(now);
                    tracing::warn!(
                        stage = self.stats.name(),
                        calls,
                        failures,
                        cooldown = ?self.config.cooldown,
                        "circuit breaker open: too many failed calls"
                    );
                }
            }
        }
    }

    fn open(&mut self, now: Instant) {
        self.opened_at = now;
        self.clear();
        self.moved(BreakerState::Open);
    }

    fn moved(&mut self, state: BreakerState) {
        self.state = state;
        self.stats.record_breaker(state);
    }

    fn clear(&mut self) {
        self.buckets = [(u64::MAX, 0, 0); BUCKETS];
    }

    /// Adds a call at `now` and returns the calls and failures in the
    /// window ending at `now`.
    fn count(&mut self, now: Instant, failed: bool) -> (u32, u32) {
        let since = now.saturating_duration_since(self.epoch);
        let current = (since.as_nanos() / self.bucket.as_nanos()) as u64;
        let slot = &mut self.buckets[(current % BUCKETS as u64) as usize];
        if slot.0 != current {
            *slot = (current, 0, 0);
        }
        slot.1 = slot.1.saturating_add(1);
        slot.2 = slot.2.saturating_add(u32::from(failed));
        self.buckets
            .iter()
            .filter(|(n, _, _)| *n <= current && current - *n < BUCKETS as u64)
            .fold((0, 0), |(calls, failures), (_, c, f)| {
                (calls + c, failures + f)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::NodeKind;

    fn breaker(min_calls: u32) -> (CircuitBreaker, Arc<StageStats>) {
        let stats = Arc::new(StageStats::new("call", NodeKind::Transform));
        let config = Breaker {
            error_rate: 0.5,
            latency: Some(Duration::from_millis(100)),
            window: Duration::from_secs(10),
            min_calls,
            cooldown: Duration::from_secs(5),
        };
        (CircuitBreaker::new(config, stats.clone()), stats)
    }

    #[tokio::test(start_paused = true)]
    async fn it_opens_only_with_enough_calls_in_the_window() {
        let (mut b, stats) = breaker(4);
        let t = Instant::now();
        // Three failures are not enough calls.
        for _ in 0..3 {
            b.record(t, true);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        // Eleven seconds on, they have left the window: one more failure
        // and two successes are 1 of 3.
        let later = t + Duration::from_secs(11);
        b.record(later, true);
        b.record(later, false);
        b.record(later, false);
        assert_eq!(b.state(), BreakerState::Closed);
        // A fourth call, failed: 2 of 4 reaches the 50% rate.
        b.record(later, true);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(stats.breaker_state(), Some(BreakerState::Open));
        assert_eq!(stats.breaker_opens(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_calls_count_as_failed() {
        let (b, _) = breaker(1);
        assert!(b.is_slow(Duration::from_millis(101)));
        assert!(!b.is_slow(Duration::from_millis(100)));
    }

    #[tokio::test(start_paused = true)]
    async fn it_half_opens_after_the_cooldown_and_closes_or_reopens_on_the_trial() {
        let (mut b, stats) = breaker(1);
        let t = Instant::now();
        b.record(t, true);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.admit(t + Duration::from_millis(4_999)));
        assert!(b.admit(t + Duration::from_secs(5)));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // One trial at a time: another worker's call waits for its outcome.
        assert!(!b.admit(t + Duration::from_secs(6)));
        // The trial fails: open for another cooldown from now.
        let trial = t + Duration::from_secs(5);
        b.record(trial, true);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.admit(trial + Duration::from_secs(4)));
        assert!(b.admit(trial + Duration::from_secs(5)));
        b.record(trial + Duration::from_secs(5), false);
        assert_eq!(b.state(), BreakerState::Closed);
        let report = BreakerReport::from_stats(&stats).unwrap();
        assert_eq!(
            (report.state, report.opens, report.half_opens, report.closes),
            (BreakerState::Closed, 2, 2, 1)
        );
        assert_eq!(
            report.to_string(),
            "breaker closed (opened 2, half-opened 2, closed 1)"
        );
    }
}
