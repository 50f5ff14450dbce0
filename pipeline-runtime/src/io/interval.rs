use std::fmt;
use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use crate::stage::{Never, Pull, Source, StageContext};

/// A source of clock ticks. See [`interval`].
pub struct Interval {
    period: Duration,
    missed: MissedTickBehavior,
    /// Ticks left to yield, if limited.
    remaining: Option<u64>,
    /// Made at the first fill, so that ticks count from the start of the
    /// run, inside the runtime.
    ticks: Option<tokio::time::Interval>,
}

/// A source that yields the time of a tick every `period`, from
/// `tokio::time`, so tests can run it with paused time.
///
/// The first tick is at once, when the pipeline starts reading. Each item is
/// the [`Instant`] the tick was due. A pipeline too slow to keep up gets one
/// tick for the ticks it missed, not a burst of them
/// ([`MissedTickBehavior::Skip`]; see
/// [`missed_ticks`](Interval::missed_ticks)). The source runs until the
/// pipeline is stopped, or for [`take`](Interval::take) ticks.
///
/// ```
/// use std::time::Duration;
/// use pipeline_runtime::io::interval;
///
/// // Poll something every 30 seconds.
/// let every_30s = interval(Duration::from_secs(30));
/// // Or just five ticks.
/// let five = interval(Duration::from_millis(10)).take(5);
/// # let _ = (every_30s, five);
/// ```
///
/// # Panics
///
/// If `period` is zero.
pub fn interval(period: Duration) -> Interval {
    assert!(
        !period.is_zero(),
        "an interval's period must be more than zero"
    );
    Interval {
        period,
        missed: MissedTickBehavior::Skip,
        remaining: None,
        ticks: None,
    }
}

impl Interval {
    /// Ends the source after `ticks` ticks.
    pub fn take(mut self, ticks: u64) -> Self {
        self.remaining = Some(ticks);
        self
    }

    /// What to do when ticks were missed because the pipeline was busy:
    /// [`Skip`](MissedTickBehavior::Skip) them (the default),
    /// [`Delay`](MissedTickBehavior::Delay) the next ones, or
    /// [`Burst`](MissedTickBehavior::Burst) to catch up.
    pub fn missed_ticks(mut self, behavior: MissedTickBehavior) -> Self {
        self.missed = behavior;
        self
    }
}

impl Source for Interval {
    type Out = Instant;
    type Error = Never;

    async fn fill(
        &mut self,
        out: &mut Vec<Instant>,
        max: usize,
        _: &StageContext,
    ) -> Result<Pull, Never> {
        let (period, missed) = (self.period, self.missed);
        let ticks = self.ticks.get_or_insert_with(|| {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(missed);
            ticks
        });
        let remaining = &mut self.remaining;
        let start = out.len();
        poll_fn(|cx| {
            loop {
                if *remaining == Some(0) {
                    return Poll::Ready(Ok(Pull::Done));
                }
                if out.len() >= max {
                    return Poll::Ready(Ok(Pull::More));
                }
                match ticks.poll_tick(cx) {
                    Poll::Ready(at) => {
                        out.push(at);
                        if let Some(left) = remaining {
                            *left -= 1;
                        }
                    }
                    Poll::Pending if out.len() > start => return Poll::Ready(Ok(Pull::More)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interval")
            .field("period", &self.period)
            .field("remaining", &self.remaining)
            .finish()
    }
}
