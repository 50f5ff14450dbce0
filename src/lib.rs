//! Typed async dataflow for tokio, checked at compile time.
//!
//! Write a graph of stages inline with [`pipeline!`], turn functions into
//! stages with [`#[stage]`](macro@stage), and run the result:
//!
//! ```
//! use pipeline::prelude::*;
//!
//! #[stage]
//! fn double(x: u64) -> u64 {
//!     x * 2
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), pipeline::Error> {
//! let out = Collected::new();
//! let report = pipeline! {
//!     iter(1..=4u64) >> double >> filter(|x| *x > 2) >> collect(&out);
//! }
//! .run()
//! .await?;
//! assert_eq!(out.take(), vec![4, 6, 8]);
//! assert_eq!(report.stage("filter").unwrap().filtered, 1);
//! # Ok(())
//! # }
//! ```
//!
//! The macro checks the graph while it compiles: a chain that does not end
//! in a sink, a stage fed the wrong type, or a stage written after a sink is
//! an error under the tokens that caused it. It then expands to one task per
//! fused chain of stages, with no boxing and no dynamic typing.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use pipeline_macros::{pipeline, stage};

pub use pipeline_runtime::Error;
pub use pipeline_runtime::batch::Batch;
pub use pipeline_runtime::envelope::Envelope;
pub use pipeline_runtime::io::Collected;
pub use pipeline_runtime::lifecycle::{Pipeline, PipelineHandle};
pub use pipeline_runtime::metrics::{Report, StageReport};
/// What a [`Pipeline`] runs: the bounds of [`Pipeline::run`] (`Body`) and
/// [`Pipeline::spawn`] (`SpawnBody`), for a function generic over the
/// pipelines it takes.
pub use pipeline_runtime::segments::{Body, SpawnBody};
pub use pipeline_runtime::stage::{Emit, Source, Stage, StageContext, SyncStage};

// The modules below choose their items one by one. The runtime has many
// public items that only the generated code needs; it reaches them through
// `__private`, never through these. `tests/public_api.rs` names every item
// kept here, so that none is dropped by accident.

pub mod stages {
    //! Writing a stage by hand: the stage traits, what a stage emits into,
    //! how it fails an item, and how a source says it is done.
    //!
    //! Implement [`Stage`] (async) or [`SyncStage`] (then [`sync_stage!`]
    //! makes it a `Stage`) for a stage with state or `init` / `close` hooks;
    //! a sink emits [`Never`] and implements [`IsSink`]; a source implements
    //! [`Source`]. A stage's `errors` port carries [`Failed`] items.

    pub use pipeline_runtime::stage::{
        BoxError, Emit, Failed, Failures, IsSink, Never, Pull, Source, Stage, StageContext,
        StageError, SyncStage,
    };
    pub use pipeline_runtime::sync_stage;
}

pub mod accumulate {
    //! Keyed accumulation, `accumulate(..)` and `batch(..)`: the
    //! [`Accumulator`] trait for an accumulator of one's own, the [`Policy`]
    //! the macro gives it, what its `errors` port carries ([`Unfinished`]),
    //! the built-in [`BatchBy`], and [`Spill`], which state must implement
    //! to be spilled to disk.

    pub use pipeline_runtime::accumulate::{
        Accumulator, BatchBy, BatchState, ByteTotal, Completeness, FixedSize, Policy, Spill,
        SpillError, SpillPolicy, Unfinished, UnfinishedReason,
    };

    pub mod codec {
        //! The binary encoding of spilled state: [`Spill`], its errors, and
        //! [`to_bytes`] / [`from_bytes`] to check an implementation. The
        //! encoding of each built-in implementation is listed in
        //! [`pipeline_runtime::accumulate::codec`].

        pub use pipeline_runtime::accumulate::codec::{
            MAX_ZERO_SIZED_ELEMENTS, RecordLocation, Spill, SpillError, from_bytes, to_bytes,
        };
    }
}

pub mod envelope {
    //! An item with its metadata: [`Envelope`], its [`Headers`] and
    //! [`Cost`]. Its trace context is a [`TraceContext`](crate::trace::TraceContext).

    pub use pipeline_runtime::envelope::{
        Attributes, Cost, Envelope, Headers, HeadersIter, Metadata,
    };
}

pub mod graph {
    //! The shape of a pipeline as the macro saw it: the [`PipelineGraph`] of
    //! `Pipeline::graph()`, drawn with `to_mermaid` and `to_dot`.

    pub use pipeline_runtime::graph::{GraphEdge, GraphNode, NodeKind, PipelineGraph};
}

pub mod io {
    //! The built-in sources and sinks, as the functions that make them, the
    //! types they return and the errors they fail with.
    //!
    //! In a pipeline they are written by name (`iter(..)`, `lines(..)`,
    //! `collect(&out)`, ..). Some are made before the macro: [`push`] (a
    //! source with a handle that sends into it), [`duplex`] (a pipeline
    //! answering calls), [`stream_sink`], or a source given options, as
    //! `lines(reader).max_line(..)`.

    pub use pipeline_runtime::io::{
        AsBytes, Bytes, ChannelClosed, ChannelSink, Collect, Collected, DEFAULT_MAX_LINE, Discard,
        DuplexClient, DuplexError, DuplexSink, DuplexSource, FILE_HEADER, FRAME_HEADER, FileError,
        FileErrorKind, FileFrames, FileLines, Files, ForEach, ForEachAsync, ForeignTag, FrameError,
        Frames, Interval, Iter, LINE_HEADER, LineError, Lines, OkItems, OutputStream, Push,
        PushClosed, PushHandle, PushStop, Results, Sink, SinkError, SinkResult, SinkStage, Stream,
        StreamClosed, StreamSink, StreamSource, Tag, Tagged, Through, TryPushError, WriteError,
        WriteSink, channel, collect, discard, duplex, files, for_each, for_each_async, frames,
        interval, iter, lines, ok, push, results, sink, stream, stream_sink, through, write,
        write_lines,
    };
}

pub mod metrics {
    //! What a pipeline reports: the [`Report`] of a run, the [`StageState`]
    //! of each stage of a running pipeline, the counters of an edge, and
    //! the names of what it records through the `metrics` crate (the table
    //! of them is in [`pipeline_runtime::metrics`]).

    pub use pipeline_runtime::metrics::{
        AccumulatorReport, BATCH_FLUSHES_TOTAL, DEFAULT_PIPELINE_NAME, EdgeReport, EdgeStats,
        FlushCounts, FlushReason, ITEMS_DEAD_LETTERED_TOTAL, ITEMS_DROPPED_TOTAL,
        ITEMS_FAILED_TOTAL, ITEMS_IN_TOTAL, ITEMS_OUT_TOTAL, QUEUE_DEPTH, Report,
        SEND_WAIT_SECONDS, STAGE_CHUNK_SECONDS, StageReport, StageState, StageStatus,
    };
    pub use pipeline_runtime::policy::{BreakerReport, BreakerState};
}

pub mod trace {
    //! Following an item's W3C trace context through the stages: a stage
    //! wrapped in [`traced`] runs each [`Envelope`](crate::Envelope) in a
    //! span of its [`TraceContext`] and passes the context on. The whole
    //! path, from the headers a source reads to those a sink writes, is in
    //! [`pipeline_runtime::trace`].

    pub use pipeline_runtime::trace::context::{BAGGAGE_HEADER, TRACEPARENT_HEADER};
    pub use pipeline_runtime::trace::{TraceContext, Traced, current, inject_current, traced};
}

// The DSL reference lives in `docs/dsl.md` so it reads well on its own;
// including it here makes every example in it a doctest.
#[doc = include_str!("../docs/dsl.md")]
pub mod dsl {}

/// Everything a file that writes pipelines needs: `use pipeline::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Batch, Collected, Emit, Envelope, Error, Pipeline, PipelineHandle, Report, Source, Stage,
        StageContext, SyncStage, pipeline, stage,
    };
}

#[doc(hidden)]
#[path = "private/mod.rs"]
pub mod __private;
