//! A pipeline with an open output: `output()` in `pipeline!` instead of a
//! sink, read as a `futures::Stream` of what reaches it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use crate::error::Error;
use crate::graph::PipelineGraph;
use crate::io::OutputStream;
use crate::lifecycle::{Body, Pipeline};
use crate::metrics::Report;

/// A pipeline whose chain ends in `output()`: nothing runs until
/// [`into_stream`](Self::into_stream) is read.
///
/// ```
/// use futures::StreamExt;
/// use pipeline_runtime::chain::{Fuse, Head, drive};
/// use pipeline_runtime::graph::NodeKind;
/// use pipeline_runtime::io::{iter, stream_sink};
/// use pipeline_runtime::lifecycle::{Control, Pipeline};
/// use pipeline_runtime::metrics::StageStats;
/// use pipeline_runtime::open::OpenPipeline;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stats = |name| Arc::new(StageStats::new(name, NodeKind::Transform));
/// let (source, sink) = (stats("iter"), stats("output"));
/// let (out, outputs) = stream_sink::<u64>(8);
/// let pipeline = Pipeline::new(vec![source.clone(), sink.clone()], move |control: Control| {
///     drive(Fuse::new(Head::new(iter(1..=3u64), source, 512), out, sink), control)
/// });
/// let items: Vec<u64> = OpenPipeline::new(pipeline, outputs)
///     .into_stream()
///     .map(Result::unwrap)
///     .collect()
///     .await;
/// assert_eq!(items, [1, 2, 3]);
/// # }
/// ```
pub struct OpenPipeline<F, T> {
    pipeline: Pipeline<F>,
    outputs: OutputStream<T>,
}

impl<F: Body, T> OpenPipeline<F, T> {
    /// `pipeline`, whose `output()` hands its items to `outputs`.
    pub fn new(pipeline: Pipeline<F>, outputs: OutputStream<T>) -> Self {
        OpenPipeline { pipeline, outputs }
    }

    /// The graph the macro saw.
    pub fn graph(&self) -> &PipelineGraph {
        self.pipeline.graph()
    }

    /// The outputs as a stream, in the order they reach `output()`. The
    /// pipeline runs as the stream is read (in the reading task; nothing
    /// is spawned) and at the reader's pace: an `output()` with no room
    /// waits, which holds back the stages before it. If the run fails,
    /// its error is the stream's last item; then the stream ends. After
    /// the end, [`PipelineStream::report`] has the run's report.
    pub fn into_stream(self) -> PipelineStream<impl Future<Output = Result<Report, Error>>, T> {
        PipelineStream {
            run: Some(Box::pin(self.pipeline.run())),
            outputs: self.outputs,
            failed: None,
            report: None,
        }
    }
}

impl<F, T> fmt::Debug for OpenPipeline<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenPipeline").finish_non_exhaustive()
    }
}

/// The outputs of an [`OpenPipeline`], running it as they are read.
pub struct PipelineStream<R, T> {
    run: Option<Pin<Box<R>>>,
    outputs: OutputStream<T>,
    failed: Option<Error>,
    report: Option<Report>,
}

impl<R, T> PipelineStream<R, T> {
    /// The run's report, once the stream has ended and the run completed.
    pub fn report(&self) -> Option<&Report> {
        self.report.as_ref()
    }
}

impl<R, T> Stream for PipelineStream<R, T>
where
    R: Future<Output = Result<Report, Error>>,
{
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(run) = this.run.as_mut()
            && let Poll::Ready(result) = run.as_mut().poll(cx)
        {
            this.run = None;
            match result {
                Ok(report) => this.report = Some(report),
                Err(error) => this.failed = Some(error),
            }
        }
        match Pin::new(&mut this.outputs).poll_next(cx) {
            Poll::Ready(Some(item)) => Poll::Ready(Some(Ok(item))),
            // The output closed: the run is over, or about to be (its last
            // poll above registered the waker).
            Poll::Ready(None) if this.run.is_none() => Poll::Ready(this.failed.take().map(Err)),
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

impl<R, T> fmt::Debug for PipelineStream<R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineStream")
            .field("running", &self.run.is_some())
            .finish_non_exhaustive()
    }
}
