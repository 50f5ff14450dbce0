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
pub use pipeline_runtime::{
    Error, accumulate, batch, chain, channel, envelope, error, graph, io, lifecycle, metrics,
    stage as stages, trace, transform,
};

pub use pipeline_runtime::batch::Batch;
pub use pipeline_runtime::envelope::Envelope;
pub use pipeline_runtime::io::Collected;
pub use pipeline_runtime::lifecycle::{Pipeline, PipelineHandle};
pub use pipeline_runtime::metrics::{Report, StageReport};
pub use pipeline_runtime::stage::{Emit, Source, Stage, StageContext, SyncStage};

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
