//! The adaptive concurrency limit of `parallel = io`.

use std::time::Duration;

/// How many chunks a `parallel = io` stage keeps in flight: between 1 and
/// `max`, adapted to the latency its workers observe, by additive increase
/// and multiplicative decrease (AIMD, as TCP's congestion window).
///
/// Each processed chunk gives one sample: the time the stage took over it,
/// divided by its number of items (so chunks of different sizes compare).
/// The limit starts at 1, and with each sample:
///
/// 1. **Rising**: if the sample is more than [`TOLERANCE`](Self::TOLERANCE)
///    times the *baseline*, the limit halves (rounding down, at least 1).
///    The chunks already in flight were started under the old limit and
///    will report the same latency, so the next `old limit` samples cannot
///    halve it again.
/// 2. **Flat**: otherwise the sample counts towards an increase, if the
///    limit was in use when the chunk completed (as many chunks in flight
///    as the limit allows: a stage that is not given enough input to
///    reach its limit learns nothing about a higher one). After `limit`
///    such samples (about one round of the workers) the limit grows by 1,
///    up to `max`.
///
/// The baseline is the lowest sample seen, except at a limit of 1, where
/// the stage competes only with itself: there it is the latest sample. So
/// a service that became slower for reasons of its own is not taken as
/// overload for ever: the limit falls to 1, the slower latency becomes the
/// baseline, and the limit grows again from there.
///
/// ```
/// use std::time::Duration;
/// use pipeline_runtime::parallel::AimdLimit;
///
/// let ms = Duration::from_millis;
/// let mut limit = AimdLimit::new(4);
/// assert_eq!(limit.limit(), 1);
/// // Flat latency while the limit is used: +1 per `limit` samples.
/// for _ in 0..6 {
///     limit.observe(ms(10), true);
/// }
/// assert_eq!(limit.limit(), 4);
/// // Latency rises: the limit halves.
/// limit.observe(ms(30), true);
/// assert_eq!(limit.limit(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct AimdLimit {
    limit: usize,
    max: usize,
    /// Seconds per item.
    baseline: Option<f64>,
    /// Flat samples since the last change.
    flat: usize,
    /// Samples left during which a rise does not halve the limit again.
    hold: usize,
}

impl AimdLimit {
    /// A sample more than this many times the baseline means the latency
    /// rises.
    pub const TOLERANCE: f64 = 1.5;

    /// A limit of 1, which may grow up to `max` (at least 1).
    pub fn new(max: usize) -> Self {
        AimdLimit {
            limit: 1,
            max: max.max(1),
            baseline: None,
            flat: 0,
            hold: 0,
        }
    }

    /// The current limit: how many chunks may be in flight.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The most the limit may grow to.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Takes one sample: a chunk's processing time divided by its number
    /// of items. `saturated` says whether as many chunks as the limit
    /// allows were in flight when it completed. Returns the new limit.
    pub fn observe(&mut self, per_item: Duration, saturated: bool) -> usize {
        let sample = per_item.as_secs_f64();
        let baseline = *self.baseline.get_or_insert(sample);
        let rising = sample > baseline * Self::TOLERANCE;
        if rising {
            if self.hold == 0 {
                self.hold = self.limit;
                self.limit = (self.limit / 2).max(1);
                self.flat = 0;
            }
        } else if saturated {
            self.flat += 1;
            if self.flat >= self.limit {
                self.limit = (self.limit + 1).min(self.max);
                self.flat = 0;
            }
        }
        self.hold = self.hold.saturating_sub(1);
        self.baseline = Some(if self.limit == 1 {
            sample
        } else {
            baseline.min(sample)
        });
        self.limit
    }
}
