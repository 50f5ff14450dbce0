use std::fmt;
use std::time::Duration;

use super::StageStats;
use crate::graph::NodeKind;

/// Counts of one stage at the end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StageReport {
    /// The stage's name, as written in the `pipeline!`.
    pub name: &'static str,
    /// What kind of node it is.
    pub kind: NodeKind,
    /// Items taken in (zero for a source).
    pub items_in: u64,
    /// Items emitted (zero for a sink).
    pub items_out: u64,
    /// Inputs that produced at least one output.
    pub passed: u64,
    /// Inputs that produced no output and no error.
    pub filtered: u64,
    /// Inputs that failed (for a source: reads that failed).
    pub failed: u64,
    /// Items dropped by a full buffer.
    pub dropped: u64,
    /// Failed items routed to an error port.
    pub dead_lettered: u64,
}

impl StageReport {
    /// Reads the final values of a stage's counters.
    pub fn from_stats(stats: &StageStats) -> Self {
        StageReport {
            name: stats.name(),
            kind: stats.kind(),
            items_in: stats.items_in(),
            items_out: stats.items_out(),
            passed: stats.passed(),
            filtered: stats.filtered(),
            failed: stats.failed(),
            dropped: stats.dropped(),
            dead_lettered: stats.dead_lettered(),
        }
    }

    /// Whether every input is accounted for:
    /// `items_in = passed + filtered + failed + dropped + dead_lettered`.
    pub fn is_balanced(&self) -> bool {
        self.kind == NodeKind::Source
            || self.items_in
                == self.passed + self.filtered + self.failed + self.dropped + self.dead_lettered
    }
}

/// What a finished run did: per-stage counts and the run's duration.
///
/// `Display` renders it as a table:
///
/// ```text
/// stage         kind       in    out  filtered  failed
/// iter          source      -      4         -       -
/// parse         transform   4      3         0       1
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// One entry per stage, in the order they appear in the `pipeline!`.
    pub stages: Vec<StageReport>,
    /// How long the run took, from start to the last stage closing.
    pub duration: Duration,
    /// Whether the run was stopped early by [`stop`](crate::lifecycle::PipelineHandle::stop).
    pub stopped: bool,
}

impl Report {
    /// The counts of the stage called `name`, if there is one.
    pub fn stage(&self, name: &str) -> Option<&StageReport> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// Total items that failed in any stage.
    pub fn failed(&self) -> u64 {
        self.stages.iter().map(|s| s.failed).sum()
    }

    /// Whether every stage accounts for all of its inputs.
    pub fn is_balanced(&self) -> bool {
        self.stages.iter().all(StageReport::is_balanced)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name_width = self
            .stages
            .iter()
            .map(|s| s.name.chars().count())
            .chain([5])
            .max()
            .unwrap_or(5);
        writeln!(
            f,
            "{:<name_width$}  {:<11} {:>10} {:>10} {:>10} {:>8} {:>8}",
            "stage", "kind", "in", "out", "filtered", "failed", "dropped"
        )?;
        for s in &self.stages {
            let dash = |show: bool, n: u64| if show { n.to_string() } else { "-".into() };
            let is_source = s.kind == NodeKind::Source;
            let is_sink = s.kind == NodeKind::Sink;
            writeln!(
                f,
                "{:<name_width$}  {:<11} {:>10} {:>10} {:>10} {:>8} {:>8}",
                s.name,
                s.kind.to_string(),
                dash(!is_source, s.items_in),
                dash(!is_sink, s.items_out),
                dash(!is_source, s.filtered),
                s.failed,
                s.dropped,
            )?;
        }
        write!(
            f,
            "{} in {:.3?}",
            if self.stopped { "stopped" } else { "completed" },
            self.duration
        )
    }
}
