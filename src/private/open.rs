//! A pipeline whose chain ends in `output()`: its items are read as a
//! stream.

use pipeline_runtime::lifecycle::Pipeline;

pub use pipeline_runtime::io::stream_sink;
pub use pipeline_runtime::open::OpenPipeline;

/// `pipeline`, whose `output()` hands its items to `outputs`.
pub fn open<F: pipeline_runtime::lifecycle::Body, T>(
    pipeline: Pipeline<F>,
    outputs: pipeline_runtime::io::OutputStream<T>,
) -> OpenPipeline<F, T> {
    OpenPipeline::new(pipeline, outputs)
}
