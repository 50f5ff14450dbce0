//! Counters kept per stage ([`StageStats`]) and per edge ([`EdgeStats`])
//! while a pipeline runs, and the [`Report`] built from them when it ends.
//!
//! Counters are updated once per chunk, not per item, so keeping them costs
//! nothing measurable on the fast path.

mod edge;
mod report;
mod stats;

pub use edge::EdgeStats;
pub use report::{AccumulatorReport, EdgeReport, Report, StageReport};
pub use stats::{AccumulatorDelta, AccumulatorGauges, FlushCounts, FlushReason, StageStats};
