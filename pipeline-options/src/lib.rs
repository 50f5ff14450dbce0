//! The execution options of `pipeline!`, declared once for the macro and
//! the runtime alike.
//!
//! * The value types ([`StageOptions`] and what it holds): what the macro
//!   reads from an attribute and what the runtime runs a node with.
//!   `pipeline_runtime::options` re-exports them.
//! * [`DECLARATIONS`]: one [`Declaration`] per option, in the order the
//!   docs list them: its name, how it is written, what its value is and
//!   what it does. The macro takes the option names, its did-you-mean
//!   candidates and its "wrong form" messages from them; a test checks the
//!   options table of `docs/dsl.md` against them.
//! * `to_rust` on each value type: the value as a Rust expression, the one
//!   place that knows how an option value is spelt in generated code.
//!
//! No dependencies, so the proc-macro side stays light.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod declarations;
mod rust;

pub use declarations::{DECLARATIONS, Declaration, Field, Form, declaration};

use std::time::Duration;

use rust::{duration, float, option};

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

impl Parallelism {
    /// This value as a Rust expression, its type named under `path` (the
    /// module these types are reached through, such as
    /// `::pipeline::__private::options`).
    pub fn to_rust(&self, path: &str) -> String {
        match self {
            Parallelism::Fixed(n) => format!("{path}::Parallelism::Fixed({n}usize)"),
            Parallelism::Cpu => format!("{path}::Parallelism::Cpu"),
            Parallelism::Io { max } => format!("{path}::Parallelism::Io {{ max: {max}usize }}"),
        }
    }
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

impl Ordering {
    /// This value as a Rust expression; see [`Parallelism::to_rust`].
    pub fn to_rust(&self, path: &str) -> String {
        let variant = match self {
            Ordering::Ordered => "Ordered",
            Ordering::Unordered => "Unordered",
            Ordering::ByKey => "ByKey",
        };
        format!("{path}::Ordering::{variant}")
    }
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

impl OnFull {
    /// This value as a Rust expression; see [`Parallelism::to_rust`].
    pub fn to_rust(&self, path: &str) -> String {
        let variant = match self {
            OnFull::Block => "Block",
            OnFull::DropOldest => "DropOldest",
            OnFull::DropNewest => "DropNewest",
        };
        format!("{path}::OnFull::{variant}")
    }
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

impl Backpressure {
    /// This value as a Rust expression; see [`Parallelism::to_rust`].
    pub fn to_rust(&self, path: &str) -> String {
        match self {
            Backpressure::Credit { initial, replenish } => format!(
                "{path}::Backpressure::Credit {{ initial: {initial}usize, replenish: {replenish}usize }}"
            ),
            Backpressure::Rate { per_sec, burst } => format!(
                "{path}::Backpressure::Rate {{ per_sec: {}, burst: {burst}usize }}",
                float(*per_sec)
            ),
            Backpressure::Adaptive { min, max } => {
                format!("{path}::Backpressure::Adaptive {{ min: {min}usize, max: {max}usize }}")
            }
            Backpressure::Pull { window } => {
                format!("{path}::Backpressure::Pull {{ window: {window}usize }}")
            }
        }
    }
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

impl Retry {
    /// This value as a Rust expression; see [`Parallelism::to_rust`].
    pub fn to_rust(&self, path: &str) -> String {
        format!(
            "{path}::Retry {{ attempts: {}u32, backoff: {}, max_backoff: {} }}",
            self.attempts,
            duration(self.backoff),
            duration(self.max_backoff)
        )
    }
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

impl OnError {
    /// This value as a Rust expression; see [`Parallelism::to_rust`].
    pub fn to_rust(&self, path: &str) -> String {
        match self {
            OnError::Ignore => format!("{path}::OnError::Ignore"),
            OnError::DeadLetter => format!("{path}::OnError::DeadLetter"),
            OnError::Fail => format!("{path}::OnError::Fail"),
            OnError::Retry { retry, then } => format!(
                "{path}::OnError::Retry {{ retry: {}, then: {} }}",
                retry.to_rust(path),
                then.to_rust(path)
            ),
        }
    }
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

impl Exhausted {
    /// This value as a Rust expression; see [`Parallelism::to_rust`].
    pub fn to_rust(&self, path: &str) -> String {
        let variant = match self {
            Exhausted::Ignore => "Ignore",
            Exhausted::DeadLetter => "DeadLetter",
            Exhausted::Fail => "Fail",
        };
        format!("{path}::Exhausted::{variant}")
    }
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

impl Breaker {
    /// This value as a Rust expression; see [`Parallelism::to_rust`].
    pub fn to_rust(&self, path: &str) -> String {
        format!(
            "{path}::Breaker {{ error_rate: {}, latency: {}, window: {}, min_calls: {}u32, cooldown: {} }}",
            float(self.error_rate),
            option(self.latency.map(duration)),
            duration(self.window),
            self.min_calls,
            duration(self.cooldown)
        )
    }
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

    /// These options as a Rust expression, a struct literal with every
    /// field written, its types named under `path` (the module these types
    /// are reached through, such as `::pipeline::__private::options`).
    pub fn to_rust(&self, path: &str) -> String {
        format!(
            "{path}::StageOptions {{ parallel: {}, ordering: {}, buffer: {}, on_full: {}, \
             backpressure: {}, on_error: {}, breaker: {} }}",
            option(self.parallel.map(|v| v.to_rust(path))),
            option(self.ordering.map(|v| v.to_rust(path))),
            option(self.buffer.map(|n| format!("{n}usize"))),
            option(self.on_full.map(|v| v.to_rust(path))),
            option(self.backpressure.map(|v| v.to_rust(path))),
            option(self.on_error.map(|v| v.to_rust(path))),
            option(self.breaker.map(|v| v.to_rust(path))),
        )
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

    #[test]
    fn every_option_is_written_as_a_rust_expression_naming_the_given_path() {
        let options = StageOptions {
            parallel: Some(Parallelism::Io { max: 64 }),
            ordering: Some(Ordering::ByKey),
            buffer: Some(1024),
            on_full: Some(OnFull::DropOldest),
            backpressure: Some(Backpressure::Rate {
                per_sec: 1000.0,
                burst: 100,
            }),
            on_error: Some(OnError::Retry {
                retry: Retry {
                    attempts: 3,
                    backoff: Duration::from_millis(10),
                    max_backoff: Duration::from_millis(640),
                },
                then: Exhausted::DeadLetter,
            }),
            breaker: Some(Breaker {
                error_rate: 0.5,
                latency: None,
                window: Duration::from_secs(10),
                min_calls: 20,
                cooldown: Duration::from_secs(5),
            }),
        };
        let o = "::p::options";
        let some = |s: &str| format!("::core::option::Option::Some({s})");
        let expected = format!(
            "::p::options::StageOptions {{ parallel: {}, ordering: {}, buffer: {}, on_full: {}, \
             backpressure: {}, on_error: {}, breaker: {} }}",
            some("::p::options::Parallelism::Io { max: 64usize }"),
            some("::p::options::Ordering::ByKey"),
            some("1024usize"),
            some("::p::options::OnFull::DropOldest"),
            some("::p::options::Backpressure::Rate { per_sec: 1000.0f64, burst: 100usize }"),
            some(
                "::p::options::OnError::Retry { retry: ::p::options::Retry { attempts: 3u32, \
                 backoff: ::core::time::Duration::from_nanos(10000000u64), \
                 max_backoff: ::core::time::Duration::from_nanos(640000000u64) }, \
                 then: ::p::options::Exhausted::DeadLetter }"
            ),
            some(
                "::p::options::Breaker { error_rate: 0.5f64, latency: ::core::option::Option::None, \
                 window: ::core::time::Duration::from_nanos(10000000000u64), min_calls: 20u32, \
                 cooldown: ::core::time::Duration::from_nanos(5000000000u64) }"
            ),
        );
        assert_eq!(options.to_rust(o), expected);
        let none = "::core::option::Option::None";
        assert_eq!(
            StageOptions::NONE.to_rust(o),
            format!(
                "::p::options::StageOptions {{ parallel: {none}, ordering: {none}, buffer: {none}, \
                 on_full: {none}, backpressure: {none}, on_error: {none}, breaker: {none} }}"
            )
        );
        assert_eq!(
            Parallelism::Fixed(4).to_rust(o),
            "::p::options::Parallelism::Fixed(4usize)"
        );
    }
}
