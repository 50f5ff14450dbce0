use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{AccumulatorReport, EdgeStats, StageStats};
use crate::graph::NodeKind;
use crate::policy::BreakerReport;

/// Where a stage is in its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StageStatus {
    /// The stage is taking items (or waiting for them). Every stage starts
    /// so.
    Running,
    /// The stage's input ended (its source was exhausted or stopped, or the
    /// chains before it finished) and it closed cleanly.
    Finished,
    /// The stage failed: its `init` or `close` failed, or it failed an item
    /// under `on_error = fail`; or the run ended with an error, or was
    /// aborted, before the stage finished.
    Failed,
}

impl StageStatus {
    /// `running`, `finished` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::Running => "running",
            StageStatus::Finished => "finished",
            StageStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for StageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stage as it is right now, while the pipeline runs: what
/// [`PipelineHandle::inspect`](crate::lifecycle::PipelineHandle::inspect)
/// and [`snapshot`](crate::lifecycle::PipelineHandle::snapshot) return.
///
/// The counters are those of the [`StageReport`](super::StageReport) the
/// run's [`Report`](super::Report) will hold, read at one moment (each on
/// its own, so two of them may be a chunk apart); the rest says how the
/// stage is doing: its status, the queues around it, its throughput and
/// its last error.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StageState {
    /// The stage's name, as written in the `pipeline!`.
    pub name: &'static str,
    /// What kind of node it is.
    pub kind: NodeKind,
    /// Running, finished or failed.
    pub status: StageStatus,
    /// Items queued on the edge into the stage, waiting for it: `None` for
    /// a stage fed by a direct call inside a fused chain (or by nothing: a
    /// source). With several edges in (a merge), each queue counts once.
    pub input_queue: Option<u64>,
    /// Items queued on the edges out of the stage (a fan-out, a merge
    /// input, a branch port or its `errors` port), waiting for the stages
    /// after it: `None` if its output goes on by a direct call. A queue
    /// that other stages feed too (a merge) counts all its items.
    pub output_queue: Option<u64>,
    /// Items the stage took in (processed): zero for a source.
    pub items_in: u64,
    /// Items the stage emitted: zero for a sink.
    pub items_out: u64,
    /// Inputs that produced at least one output.
    pub passed: u64,
    /// Inputs that produced no output and no error.
    pub filtered: u64,
    /// Inputs that failed and were not dead-lettered (the stage's errors;
    /// for a source, reads that failed).
    pub failed: u64,
    /// Items dropped: by a full buffer of the stage, or on the edges out of
    /// it (a full `drop_newest` / `drop_oldest` edge, or a consumer that
    /// was gone), counted once per edge.
    pub dropped: u64,
    /// Failed items sent to the stage's `errors` port.
    pub dead_lettered: u64,
    /// Calls made to retry failed items.
    pub retries: u64,
    /// Why the stage's last failed item (or failed `init` / `close`)
    /// failed, as text; `None` if nothing failed.
    pub last_error: Option<String>,
    /// The stage's circuit breaker: where it is and how often it moved.
    /// `None` for a stage without `breaker(..)`.
    pub breaker: Option<BreakerReport>,
    /// For an accumulator: what it holds and how its states were let go
    /// of. `None` for every other kind of stage.
    pub accumulator: Option<AccumulatorReport>,
    /// Items per second over the run so far: items taken in (for a source,
    /// produced) divided by [`elapsed`](Self::elapsed).
    pub items_per_sec: f64,
    /// Time from the start of the run to now, or to when the stage ended.
    pub elapsed: Duration,
}

impl StageState {
    /// Reads the stage counted by `stats` now, with the queues of the
    /// `edges` into and out of it, for a run that started at `started`.
    pub fn read(stats: &StageStats, edges: &[Arc<EdgeStats>], started: Instant) -> Self {
        let name = stats.name();
        let kind = stats.kind();
        let elapsed = stats
            .ended_at()
            .unwrap_or_else(Instant::now)
            .saturating_duration_since(started);
        let counted = if kind == NodeKind::Source {
            stats.items_out()
        } else {
            stats.items_in()
        };
        let seconds = elapsed.as_secs_f64();
        let edge_drops: u64 = edges
            .iter()
            .filter(|e| e.from() == name)
            .map(|e| e.dropped())
            .sum();
        StageState {
            name,
            kind,
            status: stats.status(),
            input_queue: queued(edges.iter().filter(|e| e.to() == name)),
            output_queue: queued(edges.iter().filter(|e| e.from() == name)),
            items_in: stats.items_in(),
            items_out: stats.items_out(),
            passed: stats.passed(),
            filtered: stats.filtered(),
            failed: stats.failed(),
            dropped: stats.dropped() + edge_drops,
            dead_lettered: stats.dead_lettered(),
            retries: stats.retries(),
            last_error: stats.last_error(),
            breaker: BreakerReport::from_stats(stats),
            accumulator: (kind == NodeKind::Accumulator)
                .then(|| AccumulatorReport::from_stats(stats)),
            items_per_sec: if seconds > 0.0 {
                counted as f64 / seconds
            } else {
                0.0
            },
            elapsed,
        }
    }

    /// Items an accumulator holds in open states: in flight (zero for
    /// other stages, and for an accumulator that has finished).
    pub fn items_held(&self) -> u64 {
        self.accumulator.map_or(0, |a| a.items_held)
    }
}

impl fmt::Display for StageState {
    /// `parse (transform, running): in 1200, out 1100, failed 3, dropped 0,
    /// dead-lettered 0, 5400.0 items/s, queues in 128 / out -; last error:
    /// bad digit`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let queue = |q: Option<u64>| q.map_or_else(|| "-".to_owned(), |q| q.to_string());
        write!(
            f,
            "{} ({}, {}): in {}, out {}, failed {}, dropped {}, dead-lettered {}, {:.1} items/s, queues in {} / out {}",
            self.name,
            self.kind,
            self.status,
            self.items_in,
            self.items_out,
            self.failed,
            self.dropped,
            self.dead_lettered,
            self.items_per_sec,
            queue(self.input_queue),
            queue(self.output_queue),
        )?;
        if let Some(breaker) = &self.breaker {
            write!(f, "; {breaker}")?;
        }
        if let Some(error) = &self.last_error {
            write!(f, "; last error: {error}")?;
        }
        Ok(())
    }
}

/// The items queued on the channel edges among `edges`, each channel
/// counted once; `None` if none of them is a channel.
fn queued<'a>(edges: impl Iterator<Item = &'a Arc<EdgeStats>>) -> Option<u64> {
    let mut seen: Vec<usize> = Vec::new();
    let mut total = None;
    for edge in edges {
        let Some((queue, items)) = edge.queue_probe() else {
            continue;
        };
        if !seen.contains(&queue) {
            seen.push(queue);
            *total.get_or_insert(0) += items;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reads_counters_status_rate_and_last_error() {
        let started = Instant::now();
        let stats = StageStats::new("parse", NodeKind::Transform);
        stats.record_chunk(100, 90, 5, 5);
        stats.record_error("bad digit");
        tokio::time::advance(Duration::from_secs(2)).await;
        let live = StageState::read(&stats, &[], started);
        assert_eq!(live.status, StageStatus::Running);
        assert_eq!((live.items_in, live.items_out, live.failed), (100, 90, 5));
        assert_eq!(live.elapsed, Duration::from_secs(2));
        assert_eq!(live.items_per_sec, 50.0);
        assert_eq!(live.last_error.as_deref(), Some("bad digit"));
        assert_eq!((live.input_queue, live.output_queue), (None, None));
        stats.finish(true);
        stats.finish(false); // only the first call counts
        tokio::time::advance(Duration::from_secs(2)).await;
        let done = StageState::read(&stats, &[], started);
        assert_eq!(done.status, StageStatus::Finished);
        assert_eq!(done.elapsed, Duration::from_secs(2), "the clock stopped");
        assert!(
            done.to_string()
                .starts_with("parse (transform, finished): in 100, out 90, failed 5"),
            "{done}"
        );
    }

    #[test]
    fn a_source_rates_what_it_produced() {
        let stats = StageStats::new("iter", NodeKind::Source);
        stats.record_produced(10);
        let started = Instant::now() - Duration::from_secs(5);
        stats.finish(true);
        let state = StageState::read(&stats, &[], started);
        assert!((state.items_per_sec - 2.0).abs() < 0.1, "{state}");
    }
}
