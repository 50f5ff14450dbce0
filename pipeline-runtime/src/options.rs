//! Execution options of a node: how many workers run it, in what order its
//! outputs leave, how its input edge buffers and pushes back, what happens
//! to an item it fails, and when it stops calling a failing downstream.
//!
//! `pipeline!` reads them from attributes, one option per attribute:
//!
//! ```text
//! #![buffer = 4096]                                  // pipeline default
//! a >> #[parallel = 8] #[on_error = retry(5, backoff = 20ms)] call_api >> b;   // node
//! #[stage(on_error = dead_letter)] fn parse(..)      // the stage's own default
//! ```
//!
//! A node's options are its own, else its stage's defaults, else the
//! pipeline's: [`StageOptions::or`] merges them in that order. Every value
//! here was checked at compile time (no zero where zero would hang, no
//! conflicting pair), so the runtime takes them as they are.

use std::time::Duration;

/// How many workers run a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parallelism {
    /// Exactly this many workers (at least 1).
    Fixed(usize),
    /// One worker per available core.
    Cpu,
    /// Between 1 and this many workers, adapted to observed latency:
    /// additive increase while latency holds, multiplicative decrease when
    /// it grows.
    Io {
        /// The most workers it may use.
        max: usize,
    },
}

/// In what order a parallel stage's outputs leave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    /// In input order (by sequence id), whatever order workers finish in.
    Ordered,
    /// As workers finish.
    Unordered,
    /// The same key always goes to the same worker, so the order of each
    /// key's items holds while keys run in parallel. The key function is
    /// passed separately (it is a closure).
    ByKey,
}

/// What a full edge does with one more item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFull {
    /// The producer waits for room (back-pressure). Nothing is lost.
    #[default]
    Block,
    /// The oldest queued item is evicted to make room, and counted.
    DropOldest,
    /// The new item is dropped, and counted.
    DropNewest,
}

/// How a producer is held back beyond the edge's buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backpressure {
    /// The consumer grants credits (`initial` at the start, `replenish`
    /// more each time it has used that many); the producer never sends
    /// beyond its credits.
    Credit {
        /// Credits granted at the start.
        initial: usize,
        /// Credits granted each time that many were used.
        replenish: usize,
    },
    /// A token bucket: at most `per_sec` items a second on average, bursts
    /// of up to `burst`.
    Rate {
        /// Items per second.
        per_sec: f64,
        /// The bucket's size.
        burst: usize,
    },
    /// The chunk size moves between `min` and `max` with the queue's depth.
    Adaptive {
        /// The smallest chunk.
        min: usize,
        /// The largest chunk.
        max: usize,
    },
    /// The consumer asks for up to `window` items at a time.
    Pull {
        /// Items per request.
        window: usize,
    },
}

/// Retrying a failed item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    /// Attempts after the first (`retry(5, ..)` tries up to 6 times).
    pub attempts: u32,
    /// The wait before the first retry; it doubles after each, with jitter,
    /// up to `max_backoff`.
    pub backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

/// What happens to an item a stage fails.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum OnError {
    /// Counted as failed and logged at `warn` with the stage and sequence
    /// id; the pipeline goes on.
    #[default]
    Ignore,
    /// Sent, with its input and error, to the stage's `errors` port.
    DeadLetter,
    /// The pipeline stops: sources stop, what is in flight drains, and
    /// `run()` returns the error with the stage and the item's sequence id.
    Fail,
    /// Tried again with backoff; after the last attempt, handled as
    /// `then` says.
    Retry {
        /// How to retry.
        retry: Retry,
        /// What happens after the last attempt fails.
        then: Exhausted,
    },
}

/// What happens to an item whose retries are exhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Exhausted {
    /// Counted and logged.
    #[default]
    Ignore,
    /// To the `errors` port.
    DeadLetter,
    /// The pipeline stops.
    Fail,
}

/// A circuit breaker: when calls fail (or are slow) too often, stop
/// calling for a while.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breaker {
    /// The share of failed calls (0.0 to 1.0) over `window` that opens the
    /// breaker.
    pub error_rate: f64,
    /// A call slower than this counts as failed, if set.
    pub latency: Option<Duration>,
    /// The sliding window calls are counted over.
    pub window: Duration,
    /// Calls needed in the window before the rate means anything.
    pub min_calls: u32,
    /// How long the breaker stays open before letting a trial call
    /// through (half-open).
    pub cooldown: Duration,
}

/// The options of one node, each unset unless written somewhere.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StageOptions {
    /// `parallel = N | cpu | io`.
    pub parallel: Option<Parallelism>,
    /// `ordered`, `unordered`, `by_key(f)`.
    pub ordering: Option<Ordering>,
    /// `buffer = N`: the capacity, in items, of the node's input edge.
    pub buffer: Option<usize>,
    /// `on_full = block | drop_oldest | drop_newest`.
    pub on_full: Option<OnFull>,
    /// `backpressure = ..`.
    pub backpressure: Option<Backpressure>,
    /// `on_error = ..`.
    pub on_error: Option<OnError>,
    /// `breaker(..)`.
    pub breaker: Option<Breaker>,
}

impl StageOptions {
    /// No option set.
    pub const NONE: StageOptions = StageOptions {
        parallel: None,
        ordering: None,
        buffer: None,
        on_full: None,
        backpressure: None,
        on_error: None,
        breaker: None,
    };

    /// These options, with each unset one taken from `fallback`: a node's
    /// options `.or(` its stage's defaults `).or(` the pipeline's `)`.
    pub const fn or(self, fallback: StageOptions) -> StageOptions {
        StageOptions {
            parallel: match self.parallel {
                Some(v) => Some(v),
                None => fallback.parallel,
            },
            ordering: match self.ordering {
                Some(v) => Some(v),
                None => fallback.ordering,
            },
            buffer: match self.buffer {
                Some(v) => Some(v),
                None => fallback.buffer,
            },
            on_full: match self.on_full {
                Some(v) => Some(v),
                None => fallback.on_full,
            },
            backpressure: match self.backpressure {
                Some(v) => Some(v),
                None => fallback.backpressure,
            },
            on_error: match self.on_error {
                Some(v) => Some(v),
                None => fallback.on_error,
            },
            breaker: match self.breaker {
                Some(v) => Some(v),
                None => fallback.breaker,
            },
        }
    }

    /// The error policy, [`OnError::Ignore`] unless set.
    pub fn on_error(&self) -> OnError {
        self.on_error.unwrap_or_default()
    }

    /// The edge policy, [`OnFull::Block`] unless set.
    pub fn on_full(&self) -> OnFull {
        self.on_full.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_option_wins_over_its_stage_default_which_wins_over_the_pipeline() {
        let node = StageOptions {
            buffer: Some(8),
            ..StageOptions::NONE
        };
        let stage = StageOptions {
            buffer: Some(64),
            on_error: Some(OnError::DeadLetter),
            ..StageOptions::NONE
        };
        let pipeline = StageOptions {
            on_error: Some(OnError::Fail),
            on_full: Some(OnFull::DropOldest),
            ..StageOptions::NONE
        };
        let merged = node.or(stage).or(pipeline);
        assert_eq!(merged.buffer, Some(8));
        assert_eq!(merged.on_error(), OnError::DeadLetter);
        assert_eq!(merged.on_full(), OnFull::DropOldest);
        assert_eq!(merged.parallel, None);
        assert_eq!(StageOptions::NONE.on_error(), OnError::Ignore);
    }
}
