//! Counters kept per stage while a pipeline runs, and the [`Report`] built
//! from them when it ends.
//!
//! Counters are updated once per chunk, not per item, so keeping them costs
//! nothing measurable on the fast path.

mod report;
mod stats;

pub use report::{Report, StageReport};
pub use stats::StageStats;
