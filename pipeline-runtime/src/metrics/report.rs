use std::fmt;
use std::time::Duration;

use super::{EdgeStats, FlushCounts, FlushReason, StageStats};
use crate::graph::NodeKind;
use crate::policy::BreakerReport;

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
    /// For an accumulator: what it holds and how its states were let go
    /// of. `None` for every other kind of stage.
    pub accumulator: Option<AccumulatorReport>,
    /// Calls made to retry failed items (`on_error = retry(..)`); an item
    /// retried twice counts 2. Each item still counts once above, by how
    /// it finally ended.
    pub retries: u64,
    /// The stage's circuit breaker: where it is and how often it moved.
    /// `None` for a stage without `breaker(..)`.
    pub breaker: Option<BreakerReport>,
}

/// The counts of an accumulator (an `accumulate(..)` or `batch(..)` node).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccumulatorReport {
    /// Keys with an open state (zero once it has finished).
    pub open_keys: u64,
    /// Items held in open states: in flight, neither out nor lost yet (zero
    /// once it has finished).
    pub items_held: u64,
    /// Bytes of the items held, as the accumulation's `size` measures them.
    pub bytes_held: u64,
    /// Keys whose state is on disk.
    pub spilled_keys: u64,
    /// Bytes written to the spill store over the run.
    pub bytes_spilled: u64,
    /// States let go of, by reason.
    pub flushes: FlushCounts,
}

impl AccumulatorReport {
    /// Reads the accumulator counters of a stage.
    pub fn from_stats(stats: &StageStats) -> Self {
        AccumulatorReport {
            open_keys: stats.open_keys(),
            items_held: stats.items_held(),
            bytes_held: stats.bytes_held(),
            spilled_keys: stats.spilled_keys(),
            bytes_spilled: stats.bytes_spilled(),
            flushes: stats.flushes(),
        }
    }
}

impl fmt::Display for AccumulatorReport {
    /// `2 open keys, 7 items held (70 B), 0 B spilled; flushes: 3 items, 1 latency`
    /// (reasons with no flush are left out).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} open keys, {} items held ({} B), {} B spilled",
            self.open_keys, self.items_held, self.bytes_held, self.bytes_spilled
        )?;
        if self.spilled_keys != 0 {
            write!(f, " ({} keys on disk)", self.spilled_keys)?;
        }
        f.write_str("; flushes:")?;
        let mut any = false;
        for reason in FlushReason::ALL {
            let n = self.flushes.get(reason);
            if n != 0 {
                write!(f, "{} {n} {reason}", if any { "," } else { "" })?;
                any = true;
            }
        }
        if !any {
            f.write_str(" none")?;
        }
        Ok(())
    }
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
            accumulator: (stats.kind() == NodeKind::Accumulator)
                .then(|| AccumulatorReport::from_stats(stats)),
            retries: stats.retries(),
            breaker: BreakerReport::from_stats(stats),
        }
    }

    /// Items an accumulator holds in open states: in flight (zero for
    /// other stages, and for an accumulator that has finished).
    pub fn items_held(&self) -> u64 {
        self.accumulator.map_or(0, |a| a.items_held)
    }

    /// Whether every input is accounted for:
    /// `items_in = passed + filtered + failed + dropped + dead_lettered`,
    /// plus, for an accumulator still running, the
    /// [items it holds](Self::items_held).
    pub fn is_balanced(&self) -> bool {
        self.kind == NodeKind::Source
            || self.items_in
                == self.passed
                    + self.filtered
                    + self.failed
                    + self.dropped
                    + self.dead_lettered
                    + self.items_held()
    }
}

/// Counts of one edge at the end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EdgeReport {
    /// The upstream stage's name.
    pub from: &'static str,
    /// The downstream stage's name.
    pub to: &'static str,
    /// The named port the edge leaves from, or `None` for the main output.
    pub port: Option<&'static str>,
    /// Items sent over the edge.
    pub sent: u64,
    /// Items dropped at the edge because its buffer was full.
    pub dropped: u64,
    /// Items queued on the edge when it was read (see
    /// [`EdgeStats::queued`]); zero for an edge inside a fused chain. At
    /// the end of a completed run, zero.
    pub queued: u64,
}

impl EdgeReport {
    /// Reads the current values of an edge's counters.
    pub fn from_stats(stats: &EdgeStats) -> Self {
        EdgeReport {
            from: stats.from(),
            to: stats.to(),
            port: stats.port(),
            sent: stats.sent(),
            dropped: stats.dropped(),
            queued: stats.queued().unwrap_or(0),
        }
    }
}

/// What a finished run did: per-stage and per-edge counts and the run's
/// duration.
///
/// `Display` renders it as a table of stages, then one line per
/// accumulator (see [`AccumulatorReport`]), then one line per stage that
/// retried or has a circuit breaker (`call_api: 3 retries; breaker closed
/// (opened 1, half-opened 1, closed 1)`), then, if the pipeline reported
/// any edges, a table of edges (`-` for the main output port), then how the
/// run ended:
///
/// ```text
/// stage         kind       in    out  filtered  failed
/// iter          source      -      4         -       -
/// parse         transform   4      3         0       1
/// by_user       accumulator 3      2         0       0
/// by_user: 0 open keys, 0 items held (0 B), 0 B spilled; flushes: 1 items, 1 stop
///
/// from   port    to          sent  dropped
/// iter   -       parse          4        0
/// parse  errors  dead           1        0
/// completed in 1.204ms
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
    /// One entry per edge the pipeline counts, in the order they were given
    /// to [`Pipeline::with_edges`](crate::lifecycle::Pipeline::with_edges);
    /// empty if it counts none.
    pub edges: Vec<EdgeReport>,
}

impl Report {
    /// The counts of the stage called `name`, if there is one.
    pub fn stage(&self, name: &str) -> Option<&StageReport> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The counts of the first edge from the stage `from` to the stage `to`,
    /// whichever port it leaves from.
    pub fn edge(&self, from: &str, to: &str) -> Option<&EdgeReport> {
        self.edges.iter().find(|e| e.from == from && e.to == to)
    }

    /// The edges leaving the named `port` of the stage `from` (for example
    /// `port("split", "big")` or `port("parse", "errors")`), in order.
    pub fn port(&self, from: &str, port: &str) -> impl Iterator<Item = &EdgeReport> {
        self.edges
            .iter()
            .filter(move |e| e.from == from && e.port == Some(port))
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
        for s in &self.stages {
            if let Some(acc) = &s.accumulator {
                writeln!(f, "{}: {acc}", s.name)?;
            }
        }
        for s in &self.stages {
            match (s.retries, &s.breaker) {
                (0, None) => {}
                (retries, None) => writeln!(f, "{}: {retries} retries", s.name)?,
                (0, Some(breaker)) => writeln!(f, "{}: {breaker}", s.name)?,
                (retries, Some(breaker)) => {
                    writeln!(f, "{}: {retries} retries; {breaker}", s.name)?
                }
            }
        }
        if !self.edges.is_empty() {
            let width = |f: fn(&EdgeReport) -> usize, header: usize| {
                self.edges
                    .iter()
                    .map(f)
                    .chain([header])
                    .max()
                    .unwrap_or(header)
            };
            let from_width = width(|e| e.from.chars().count(), 4);
            let port_width = width(|e| e.port.map_or(1, |p| p.chars().count()), 4);
            let to_width = width(|e| e.to.chars().count(), 2);
            writeln!(f)?;
            writeln!(
                f,
                "{:<from_width$}  {:<port_width$}  {:<to_width$} {:>10} {:>8}",
                "from", "port", "to", "sent", "dropped"
            )?;
            for e in &self.edges {
                writeln!(
                    f,
                    "{:<from_width$}  {:<port_width$}  {:<to_width$} {:>10} {:>8}",
                    e.from,
                    e.port.unwrap_or("-"),
                    e.to,
                    e.sent,
                    e.dropped,
                )?;
            }
        }
        write!(
            f,
            "{} in {:.3?}",
            if self.stopped { "stopped" } else { "completed" },
            self.duration
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(edges: Vec<EdgeReport>) -> Report {
        let source = StageStats::new("iter", NodeKind::Source);
        source.record_produced(4);
        let parse = StageStats::new("parse", NodeKind::Transform);
        parse.record_chunk(4, 3, 0, 1);
        Report {
            stages: vec![
                StageReport::from_stats(&source),
                StageReport::from_stats(&parse),
            ],
            duration: Duration::from_millis(2),
            stopped: false,
            edges,
        }
    }

    fn edge(from: &'static str, port: Option<&'static str>, to: &'static str) -> EdgeReport {
        let stats = EdgeStats::new(from, to, port);
        stats.record_sent(3);
        stats.record_dropped(1);
        EdgeReport::from_stats(&stats)
    }

    #[test]
    fn edges_are_found_by_ends_and_port() {
        let report = report(vec![
            edge("iter", None, "parse"),
            edge("parse", None, "split"),
            edge("parse", Some("errors"), "dead"),
            edge("split", Some("big"), "a"),
            edge("split", Some("big"), "b"),
            edge("split", Some("small"), "c"),
        ]);
        let e = report.edge("parse", "dead").unwrap();
        assert_eq!((e.port, e.sent, e.dropped), (Some("errors"), 3, 1));
        assert!(report.edge("dead", "parse").is_none());
        let big: Vec<_> = report.port("split", "big").map(|e| e.to).collect();
        assert_eq!(big, ["a", "b"]);
        assert_eq!(report.port("parse", "errors").count(), 1);
        assert_eq!(report.port("iter", "errors").count(), 0);
    }

    #[test]
    fn an_accumulator_reports_its_counters_and_held_items_balance() {
        use crate::metrics::{AccumulatorDelta, AccumulatorGauges};
        let stats = StageStats::new("by_user", NodeKind::Accumulator);
        let mut delta = AccumulatorDelta {
            taken: 5,
            outputs: 1,
            passed: 2,
            ..AccumulatorDelta::default()
        };
        delta.flushes.add(FlushReason::Items);
        let holding = AccumulatorGauges {
            open_keys: 2,
            items_held: 3,
            bytes_held: 30,
            spilled_keys: 1,
        };
        stats.record_accumulated(&delta, &holding);
        let running = StageReport::from_stats(&stats);
        assert_eq!(running.items_held(), 3);
        assert!(running.is_balanced(), "held items are in flight");
        assert_eq!(
            running.accumulator.unwrap().to_string(),
            "2 open keys, 3 items held (30 B), 0 B spilled (1 keys on disk); flushes: 1 items"
        );

        let mut rest = AccumulatorDelta {
            outputs: 1,
            passed: 2,
            dead_lettered: 1,
            bytes_spilled: 64,
            ..AccumulatorDelta::default()
        };
        rest.flushes.add(FlushReason::Stop);
        rest.flushes.add(FlushReason::Expired);
        assert!(!rest.is_empty());
        stats.record_accumulated(&rest, &AccumulatorGauges::default());
        let done = StageReport::from_stats(&stats);
        assert!(done.is_balanced());
        assert_eq!(
            (
                done.items_in,
                done.items_out,
                done.passed,
                done.dead_lettered
            ),
            (5, 2, 4, 1)
        );
        let acc = done.accumulator.unwrap();
        assert_eq!((acc.bytes_spilled, acc.flushes.total()), (64, 3));
        let report = Report {
            stages: vec![done],
            duration: Duration::from_millis(1),
            stopped: false,
            edges: Vec::new(),
        };
        let text = report.to_string();
        assert!(
            text.contains("\nby_user: 0 open keys, 0 items held (0 B), 64 B spilled; flushes: 1 items, 1 expired, 1 stop\n"),
            "{text}"
        );
        assert!(report.is_balanced());

        // Held items that never come out unbalance it.
        stats.record_accumulated(
            &AccumulatorDelta {
                taken: 1,
                ..AccumulatorDelta::default()
            },
            &AccumulatorGauges::default(),
        );
        assert!(!StageReport::from_stats(&stats).is_balanced());
        assert_eq!(
            StageReport::from_stats(&StageStats::new("map", NodeKind::Transform)).accumulator,
            None
        );
    }

    #[test]
    fn display_without_edges_has_no_edge_table() {
        let text = report(Vec::new()).to_string();
        assert!(!text.contains("from"), "{text}");
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.ends_with("completed in 2.000ms"), "{text}");
    }

    #[test]
    fn display_with_edges_lists_them_after_the_stages() {
        let text = report(vec![
            edge("iter", None, "parse"),
            edge("parse", Some("errors"), "dead_letters"),
        ])
        .to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8, "{text}");
        assert_eq!(lines[3], "");
        assert_eq!(
            &lines[4..7],
            [
                "from   port    to                 sent  dropped",
                "iter   -       parse                 3        1",
                "parse  errors  dead_letters          3        1",
            ],
            "{text}"
        );
        assert_eq!(lines[7], "completed in 2.000ms");
    }
}
