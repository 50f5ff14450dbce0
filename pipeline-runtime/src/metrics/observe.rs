//! The handles a stage or an edge reports through: `metrics` counters,
//! gauges and histograms, and a `tracing` span.
//!
//! They are registered once, when the pipeline starts
//! ([`StageStats::observe`](super::StageStats::observe),
//! [`EdgeStats::observe`](super::EdgeStats::observe)), with whichever
//! recorder is in effect then, and used once per chunk afterwards.

use std::time::Instant;

use metrics::{Counter, Gauge, Histogram, Unit};
use tracing::Span;

use super::FlushReason;
use crate::graph::NodeKind;

/// Counter `pipeline_items_in_total{pipeline, stage}`: items a stage took in.
pub const ITEMS_IN_TOTAL: &str = "pipeline_items_in_total";
/// Counter `pipeline_items_out_total{pipeline, stage}`: items a stage emitted.
pub const ITEMS_OUT_TOTAL: &str = "pipeline_items_out_total";
/// Counter `pipeline_items_failed_total{pipeline, stage}`: items a stage
/// failed and did not dead-letter (for a source: reads that failed).
pub const ITEMS_FAILED_TOTAL: &str = "pipeline_items_failed_total";
/// Counter `pipeline_items_dropped_total{pipeline, stage}`: items of a stage
/// dropped by a full buffer, or on an edge out of it.
pub const ITEMS_DROPPED_TOTAL: &str = "pipeline_items_dropped_total";
/// Counter `pipeline_items_dead_lettered_total{pipeline, stage}`: failed
/// items a stage sent to its `errors` port.
pub const ITEMS_DEAD_LETTERED_TOTAL: &str = "pipeline_items_dead_lettered_total";
/// Counter `pipeline_batch_flushes_total{pipeline, stage, reason}`: states an
/// accumulator let go of, by [`FlushReason`].
pub const BATCH_FLUSHES_TOTAL: &str = "pipeline_batch_flushes_total";
/// Gauge `pipeline_queue_depth{pipeline, from, to}`: items queued on an edge.
pub const QUEUE_DEPTH: &str = "pipeline_queue_depth";
/// Histogram `pipeline_stage_chunk_seconds{pipeline, stage}`: time a stage
/// took over one chunk.
pub const STAGE_CHUNK_SECONDS: &str = "pipeline_stage_chunk_seconds";
/// Histogram `pipeline_send_wait_seconds{pipeline, from, to}`: time a
/// producer took to hand a chunk to an edge, waiting for room included.
pub const SEND_WAIT_SECONDS: &str = "pipeline_send_wait_seconds";

/// The value of the `pipeline` label of a pipeline that was not
/// [named](crate::lifecycle::Pipeline::named).
pub const DEFAULT_PIPELINE_NAME: &str = "pipeline";

/// Whether the recorder in effect here records anything.
///
/// `metrics` offers no way to ask; its no-op recorder is the only
/// zero-sized one in practice (every real recorder holds its registry), so
/// a recorder that takes no room is taken for it. Only clock readings and
/// queue-depth updates depend on this: counters always go through their
/// handles, which are no-ops under the no-op recorder.
fn recorder_records() -> bool {
    metrics::with_recorder(|recorder| size_of_val(recorder) != 0)
}

/// Gives each metric its unit and description, for recorders that show
/// them (Prometheus prints them as `# HELP`).
pub(crate) fn describe() {
    metrics::describe_counter!(ITEMS_IN_TOTAL, Unit::Count, "Items a stage took in.");
    metrics::describe_counter!(ITEMS_OUT_TOTAL, Unit::Count, "Items a stage emitted.");
    metrics::describe_counter!(
        ITEMS_FAILED_TOTAL,
        Unit::Count,
        "Items a stage failed and did not dead-letter."
    );
    metrics::describe_counter!(
        ITEMS_DROPPED_TOTAL,
        Unit::Count,
        "Items of a stage dropped by a full buffer or on an edge out of it."
    );
    metrics::describe_counter!(
        ITEMS_DEAD_LETTERED_TOTAL,
        Unit::Count,
        "Failed items a stage sent to its errors port."
    );
    metrics::describe_counter!(
        BATCH_FLUSHES_TOTAL,
        Unit::Count,
        "States an accumulator let go of, by reason."
    );
    metrics::describe_gauge!(QUEUE_DEPTH, Unit::Count, "Items queued on an edge.");
    metrics::describe_histogram!(
        STAGE_CHUNK_SECONDS,
        Unit::Seconds,
        "Time a stage took over one chunk."
    );
    metrics::describe_histogram!(
        SEND_WAIT_SECONDS,
        Unit::Seconds,
        "Time a producer took to hand a chunk to an edge, waiting for room included."
    );
}

/// A stage's metric handles and span.
#[derive(Debug)]
pub(crate) struct StageObservers {
    pub(crate) pipeline: &'static str,
    /// Whether a recorder records: chunks are timed only then.
    pub(crate) timed: bool,
    pub(crate) items_in: Counter,
    pub(crate) items_out: Counter,
    pub(crate) failed: Counter,
    pub(crate) dropped: Counter,
    pub(crate) dead_lettered: Counter,
    /// For an accumulator: flushes by reason, in [`FlushReason::ALL`]
    /// order.
    pub(crate) flushes: Option<Box<[Counter; 6]>>,
    pub(crate) chunk_seconds: Histogram,
    pub(crate) span: Span,
}

impl StageObservers {
    pub(crate) fn register(pipeline: &'static str, stage: &'static str, kind: NodeKind) -> Self {
        let flushes = (kind == NodeKind::Accumulator).then(|| {
            Box::new(FlushReason::ALL.map(|reason| {
                metrics::counter!(
                    BATCH_FLUSHES_TOTAL,
                    "pipeline" => pipeline,
                    "stage" => stage,
                    "reason" => reason.as_str()
                )
            }))
        });
        StageObservers {
            pipeline,
            timed: recorder_records(),
            items_in: metrics::counter!(ITEMS_IN_TOTAL, "pipeline" => pipeline, "stage" => stage),
            items_out: metrics::counter!(ITEMS_OUT_TOTAL, "pipeline" => pipeline, "stage" => stage),
            failed: metrics::counter!(ITEMS_FAILED_TOTAL, "pipeline" => pipeline, "stage" => stage),
            dropped: metrics::counter!(ITEMS_DROPPED_TOTAL, "pipeline" => pipeline, "stage" => stage),
            dead_lettered: metrics::counter!(
                ITEMS_DEAD_LETTERED_TOTAL,
                "pipeline" => pipeline,
                "stage" => stage
            ),
            flushes,
            chunk_seconds: metrics::histogram!(
                STAGE_CHUNK_SECONDS,
                "pipeline" => pipeline,
                "stage" => stage
            ),
            span: tracing::info_span!("stage", pipeline, stage, kind = %kind),
        }
    }

    /// The current time, if chunks are timed.
    #[inline]
    pub(crate) fn start(&self) -> Option<Instant> {
        self.timed.then(Instant::now)
    }
}

/// An edge's metric handles.
#[derive(Debug)]
pub(crate) struct EdgeObservers {
    /// Whether a recorder records: sends are timed, and the queue depth
    /// published, only then.
    pub(crate) timed: bool,
    /// `pipeline_items_dropped_total` of the producing stage.
    pub(crate) dropped: Counter,
    pub(crate) depth: Gauge,
    pub(crate) send_wait: Histogram,
}

impl EdgeObservers {
    /// The handles of a channel edge.
    pub(crate) fn register(pipeline: &'static str, from: &'static str, to: &'static str) -> Self {
        EdgeObservers {
            timed: recorder_records(),
            dropped: metrics::counter!(ITEMS_DROPPED_TOTAL, "pipeline" => pipeline, "stage" => from),
            depth: metrics::gauge!(QUEUE_DEPTH, "pipeline" => pipeline, "from" => from, "to" => to),
            send_wait: metrics::histogram!(
                SEND_WAIT_SECONDS,
                "pipeline" => pipeline,
                "from" => from,
                "to" => to
            ),
        }
    }

    /// The handles of an edge inside a fused chain, which has no queue,
    /// never waits and never drops: none, so that no empty series is
    /// registered for it.
    pub(crate) fn fused() -> Self {
        EdgeObservers {
            timed: false,
            dropped: Counter::noop(),
            depth: Gauge::noop(),
            send_wait: Histogram::noop(),
        }
    }
}
