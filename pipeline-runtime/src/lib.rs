//! The runtime that `pipeline!` expands to: stages, fused chains, batched
//! channels, lifecycle and reports.
//!
//! Most users reach it through the `pipeline` facade crate. The modules:
//!
//! * [`stage`]: the typed stage traits ([`Stage`](stage::Stage),
//!   [`SyncStage`](stage::SyncStage), [`Source`](stage::Source)).
//! * [`chain`]: fusion of a linear run of stages into one task.
//! * [`channel`]: the bounded, batched edge between tasks, and what it does
//!   when full.
//! * [`channel::backpressure`]: credit, rate, adaptive and pull strategies on an edge.
//! * [`envelope`] and [`batch`]: item metadata and batches.
//! * [`open`]: a pipeline ending in `output()`, read as a `Stream`.
//! * [`trace`]: following an item's W3C trace context through the stages,
//!   with a `tracing` span per item and stage ([`traced`](trace::traced)).
//! * [`transform`] and [`io`]: the built-in stages.
//! * [`accumulate`]: keyed accumulation (`accumulate(..)`, `batch(..)`):
//!   the [`Accumulator`](accumulate::Accumulator) trait, its policy, timers
//!   and spilling to disk.
//! * [`lifecycle`]: running, stopping and joining a pipeline.
//! * [`parallel`]: one stage on several workers (`parallel = N | cpu | io`),
//!   ordered, unordered or by key.
//! * [`policy`]: what a fused stage does with a failed item: error
//!   policies, panics, retries with backoff and the circuit breaker.
//! * [`metrics`]: per-stage and per-edge counters, the live
//!   [`StageState`](metrics::StageState) of a stage, the
//!   [`Report`](metrics::Report), and what a pipeline reports through the
//!   `metrics` crate (counters, gauges, histograms) and `tracing` (a span
//!   per stage).
//! * [`graph`]: the shape of a pipeline at run time.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod accumulate;
pub mod batch;
pub mod chain;
pub mod channel;
pub mod control;
pub mod envelope;
pub mod error;
pub mod fan;
pub mod graph;
pub mod io;
pub mod lifecycle;
pub mod metrics;
pub mod open;
pub mod options;
pub mod parallel;
pub mod policy;
pub mod segments;
pub mod stage;
pub mod trace;
pub mod transform;

pub use error::Error;
