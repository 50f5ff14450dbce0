//! Counters kept per stage ([`StageStats`]) and per edge ([`EdgeStats`])
//! while a pipeline runs, the live [`StageState`] of a stage, the
//! [`Report`] built from them when it ends, and what the pipeline reports
//! through the `metrics` and `tracing` crates.
//!
//! Counters are updated once per chunk, not per item, so keeping them costs
//! nothing measurable on the fast path.
//!
//! # Metrics
//!
//! A pipeline reports through the [`metrics`](https://docs.rs/metrics)
//! facade, to whichever recorder is installed (globally, or for the thread
//! that starts the pipeline) when it [runs](crate::lifecycle::Pipeline::run)
//! or is [spawned](crate::lifecycle::Pipeline::spawn): its handles are
//! registered then, once, and updated once per chunk, never per item. The
//! label `pipeline` is the pipeline's [name](crate::lifecycle::Pipeline::named)
//! ([`DEFAULT_PIPELINE_NAME`] unless named); `stage` is a stage's name as
//! the [`Report`] gives it; `from` and `to` name the stages at the ends of
//! an edge between two fused chains.
//!
//! | name | type | labels | what |
//! | --- | --- | --- | --- |
//! | `pipeline_items_in_total` | counter | `pipeline`, `stage` | items a stage took in (its [`items_in`](StageReport::items_in)) |
//! | `pipeline_items_out_total` | counter | `pipeline`, `stage` | items a stage emitted ([`items_out`](StageReport::items_out)) |
//! | `pipeline_items_failed_total` | counter | `pipeline`, `stage` | items a stage failed and did not dead-letter; for a source, failed reads ([`failed`](StageReport::failed)) |
//! | `pipeline_items_dropped_total` | counter | `pipeline`, `stage` | items of a stage dropped by a full buffer of its own, or on an edge out of it: refused or evicted by a full `drop_newest` / `drop_oldest` edge, or lost because the consumer was gone ([`StageState::dropped`]) |
//! | `pipeline_items_dead_lettered_total` | counter | `pipeline`, `stage` | failed items a stage sent to its `errors` port ([`dead_lettered`](StageReport::dead_lettered)) |
//! | `pipeline_batch_flushes_total` | counter | `pipeline`, `stage`, `reason` | states an accumulator (`accumulate(..)`, `batch(..)`) let go of, by `reason`: `items`, `bytes`, `latency`, `complete`, `expired` or `stop` ([`FlushReason`]); registered for accumulators only |
//! | `pipeline_queue_depth` | gauge | `pipeline`, `from`, `to` | items queued on the edge (a channel), set each time a chunk is queued or taken; on a merge, every edge into the node reports the one queue they share |
//! | `pipeline_stage_chunk_seconds` | histogram | `pipeline`, `stage` | time a stage took over one chunk: for a fused stage, the stage's own work (retries and its `errors` port included, the stages before it excluded); for a source, reading the chunk, waits included |
//! | `pipeline_send_wait_seconds` | histogram | `pipeline`, `from`, `to` | time a producer took to hand a chunk to an edge, waiting for room (or for credits, requests or tokens of the edge's back-pressure strategy) included |
//!
//! The counters add what the [`StageStats`] count, so at the end of a run
//! they agree with the [`Report`]. Fused stages, sources, edges and the
//! stages that count through [`StageStats`] (`branch`, parallel heads,
//! accumulators) all report; a stage that runs outside a fused chain
//! reports its chunk time only if it times its chunks with
//! [`StageStats::start_chunk`] / [`StageStats::finish_chunk`].
//!
//! With no recorder installed, the handles are the facade's no-ops and
//! using one is a branch; clocks are read, and queue depths published,
//! only when a recorder records. (The facade cannot say whether one does:
//! the no-op recorder is told apart by taking no room, which every real
//! recorder, holding its registry, does.)
//!
//! # Tracing
//!
//! Each stage has a [`tracing`](https://docs.rs/tracing) span, `stage`, at
//! level `INFO`, with the fields `pipeline`, `stage` and `kind`
//! ([`StageStats::span`]). A fused stage or a source enters it around each
//! chunk it processes, so the events it logs (a failed item, at `warn`)
//! carry them; with no subscriber interested, the span is disabled and
//! entering it is a branch.
//!
//! Items travel through a pipeline as bare values unless the stages use
//! [`Envelope`](crate::envelope::Envelope)s, which carry an item's trace
//! context. A source that reads headers extracts it
//! ([`Envelope::extract_trace_from_headers`](crate::envelope::Envelope::extract_trace_from_headers)),
//! a stage wrapped in [`traced`](crate::trace::traced) runs each item in a
//! span of its own, a child of the item's context, and passes the context
//! on one hop further; a sink that writes headers injects it
//! ([`Envelope::inject_trace_into_headers`](crate::envelope::Envelope::inject_trace_into_headers))
//! as W3C `traceparent` and `baggage`. See [`crate::trace`].

mod edge;
mod observe;
mod report;
mod state;
mod stats;

pub(crate) use edge::EdgeQueue;
pub use edge::EdgeStats;
pub(crate) use observe::describe;
pub use observe::{
    BATCH_FLUSHES_TOTAL, DEFAULT_PIPELINE_NAME, ITEMS_DEAD_LETTERED_TOTAL, ITEMS_DROPPED_TOTAL,
    ITEMS_FAILED_TOTAL, ITEMS_IN_TOTAL, ITEMS_OUT_TOTAL, QUEUE_DEPTH, SEND_WAIT_SECONDS,
    STAGE_CHUNK_SECONDS,
};
pub use report::{AccumulatorReport, EdgeReport, Report, StageReport};
pub use state::{StageState, StageStatus};
pub use stats::{AccumulatorDelta, AccumulatorGauges, FlushCounts, FlushReason, StageStats};
#[cfg(test)]
mod tests;
