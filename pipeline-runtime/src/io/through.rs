use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::{Sink, Stream};
use tokio::sync::oneshot;

use super::sink::{SinkStage, sink};
use crate::chain::{Chain, Outputs};
use crate::control::Control;
use crate::error::Error;
use crate::graph::NodeKind;
use crate::metrics::StageStats;
use crate::stage::{Failures, Pull, Stage, StageContext};

/// A `futures::Sink` and the `futures::Stream` paired with it, to sit in
/// the middle of a pipeline. See [`through`].
pub struct Through<Si, St> {
    sink: Si,
    stream: St,
    linger: Option<Duration>,
}

/// Sends each item of a pipeline into `sink` and emits what `stream`
/// yields: the two halves of one conversation, such as a framed TCP
/// connection split in two, or the request and response channels of
/// another task.
///
/// Nothing pairs an input with an output: the stream's items are emitted
/// as they come, whatever their number and order. (To await the answer to
/// each item, see [`duplex`](super::duplex).)
///
/// - **Back-pressure**: each item waits for the sink's `poll_ready`, as in
///   [`sink`](super::sink()), and the sink is flushed after each chunk. The
///   stream is read while the sink waits, so a peer that stops reading
///   until its answers are read does not deadlock the pipeline. The
///   stream is read only as fast as the stages after it take its items.
/// - **Sink errors**: an item the sink fails is counted as a failed item of
///   the stage and logged at `warn` with a [`SinkError`](super::SinkError);
///   the next items are still offered to the sink.
/// - **The end**: when the input ends, the sink is closed (`poll_close`:
///   for a socket, the write half is shut down, which tells a well-behaved
///   peer that nothing more comes). Then the stream is read until it ends.
///   The output ends when both have: the input (and the sink closed) and
///   the stream. A stream that ends first ends the output only once the
///   input has ended too; until then, items are still sent into the sink.
/// - **A stream that does not end**: once the input has ended, reading the
///   stream stops if the pipeline is [stopped](crate::lifecycle::PipelineHandle::stop),
///   or after the [`linger`](Through::linger) time if one is set; the
///   stream's later items are not read. Without either, a stream that
///   never ends keeps the pipeline running. A stop while the input still
///   flows ends the input (the sources stop), and every item already read
///   is still sent into the sink first.
///
/// A `Through` is not a [`Stage`]: a stage emits only in answer to an
/// input, and this one emits after its input has ended. It wraps the chain
/// before it instead ([`attach`](Through::attach)), which the expansion of
/// `pipeline!` does for it.
///
/// ```
/// use futures::{SinkExt, StreamExt};
/// use pipeline_runtime::chain::{Chain, Head};
/// use pipeline_runtime::graph::NodeKind;
/// use pipeline_runtime::io::{iter, through};
/// use pipeline_runtime::lifecycle::Control;
/// use pipeline_runtime::metrics::StageStats;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // Another task doubles what it is sent, and ends when its input does.
/// let (requests, mut rx) = futures::channel::mpsc::channel::<u64>(4);
/// let (mut tx, answers) = futures::channel::mpsc::channel::<u64>(4);
/// tokio::spawn(async move {
///     while let Some(n) = rx.next().await {
///         tx.send(n * 2).await.unwrap();
///     }
/// });
///
/// let stats = |name| Arc::new(StageStats::new(name, NodeKind::Transform));
/// let numbers = Head::new(iter([1, 2, 3u64]), stats("iter"), 512);
/// let mut doubled = through(requests, answers).attach(numbers, stats("double"), 512);
/// doubled.init().await.unwrap();
/// let (mut out, control) = (Vec::new(), Control::new());
/// while doubled.pull(&mut out, &control).await.unwrap() == pipeline_runtime::stage::Pull::More {}
/// doubled.close().await.unwrap();
/// assert_eq!(out, [2, 4, 6]);
/// # }
/// ```
pub fn through<Si, St>(sink: Si, stream: St) -> Through<Si, St> {
    Through {
        sink,
        stream,
        linger: None,
    }
}

impl<Si, St> Through<Si, St> {
    /// Once the input has ended and the sink is closed, reads the stream
    /// for at most `limit` more, then ends the output even if the stream
    /// has not ended (logged at `warn`). Without it, the stream is read
    /// until it ends or the pipeline stops.
    pub fn linger(mut self, limit: Duration) -> Self {
        self.linger = Some(limit);
        self
    }

    /// `upstream >> self`: the chain that sends the items of `upstream`
    /// into the sink and emits the stream's items, in chunks of up to
    /// `chunk`, counting into `stats` (items taken in, failed by the sink,
    /// and emitted).
    ///
    /// `upstream` is initialised by [`init`](Chain::init); from the first
    /// [`pull`](Chain::pull) on, it is driven whenever the chain is, so
    /// that it feeds the sink while the stream is read.
    pub fn attach<A>(
        self,
        upstream: A,
        stats: Arc<StageStats>,
        chunk: usize,
    ) -> ThroughChain<A, St, impl Future<Output = Result<(), Error>>>
    where
        A: Chain,
        Si: Sink<A::Out>,
        Si::Error: fmt::Display,
        St: Stream,
    {
        let (start, started) = oneshot::channel();
        let feeder = feed(started, sink(self.sink), Arc::clone(&stats));
        ThroughChain {
            upstream: Some((upstream, start)),
            feeder: Feeder::Waiting(Box::pin(feeder)),
            stream: Some(Box::pin(self.stream)),
            stream_done: false,
            stats,
            chunk: chunk.max(1),
            linger: self.linger,
            lingering: None,
            deferred: None,
        }
    }
}

impl<Si, St> fmt::Debug for Through<Si, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Through")
            .field("linger", &self.linger)
            .finish_non_exhaustive()
    }
}

/// The chain `upstream >> through(sink, stream)`. See [`Through::attach`].
pub struct ThroughChain<A, St, Fut> {
    /// The chain before, until the first pull hands it to the feeder,
    /// with the pipeline's stop signal.
    upstream: Option<(A, oneshot::Sender<(A, Control)>)>,
    /// Sends the chain before into the sink, then closes both.
    feeder: Feeder<Fut>,
    stream: Option<Pin<Box<St>>>,
    stream_done: bool,
    stats: Arc<StageStats>,
    chunk: usize,
    linger: Option<Duration>,
    /// The linger time, running once the input has ended.
    lingering: Option<Pin<Box<tokio::time::Sleep>>>,
    /// An error of the feeder that lets the rest drain
    /// ([`Error::ItemFailed`]), returned by `close`.
    deferred: Option<Error>,
}

enum Feeder<Fut> {
    Waiting(Pin<Box<Fut>>),
    Ended,
}

/// Sends every item of the chain before into the sink, waiting for the
/// sink's room, flushing it after each chunk, and counting into `stats`;
/// then closes the chain before and the sink.
async fn feed<A, Si>(
    started: oneshot::Receiver<(A, Control)>,
    mut sink: SinkStage<Si>,
    stats: Arc<StageStats>,
) -> Result<(), Error>
where
    A: Chain,
    Si: Sink<A::Out>,
    Si::Error: fmt::Display,
{
    let Ok((mut upstream, control)) = started.await else {
        // Closed without being started: nothing to send; close the sink.
        return close_sink::<A::Out, Si>(&mut sink, &stats).await;
    };
    let ctx = StageContext::new(Arc::clone(&stats));
    let stage = stats.name();
    let mut input = Vec::new();
    let mut none = Vec::new();
    let mut failures = Failures::for_kind(NodeKind::Sink);
    loop {
        let pull = upstream.pull(&mut input, &control).await?;
        let taken = input.len() as u64;
        if taken > 0 {
            sink.process_chunk(&mut input, &mut none, &mut failures, &ctx)
                .await;
            let mut failed = 0;
            let mut last = None;
            let filtered = failures.take_all(|position, error| {
                tracing::warn!(stage, position, %error, "item failed; dropped");
                failed += 1;
                last = Some(error);
            });
            if let Some(error) = last {
                stats.record_error(error);
            }
            stats.record_chunk(taken, 0, filtered, failed);
        }
        if pull == Pull::Done {
            break;
        }
    }
    let upstream = upstream.close().await;
    let closed = close_sink::<A::Out, Si>(&mut sink, &stats).await;
    upstream?;
    closed
}

async fn close_sink<T, Si>(sink: &mut SinkStage<Si>, stats: &Arc<StageStats>) -> Result<(), Error>
where
    Si: Sink<T>,
    Si::Error: fmt::Display,
{
    let ctx = StageContext::new(Arc::clone(stats));
    Stage::<T>::close(sink, &ctx).await.map_err(|source| {
        stats.record_error(format_args!("close failed: {source}"));
        Error::Close {
            stage: stats.name(),
            source,
        }
    })
}

impl<A, St: Stream, Fut> Outputs for ThroughChain<A, St, Fut> {
    type Out = St::Item;
}

impl<A, St, Fut> ThroughChain<A, St, Fut>
where
    A: Chain,
    Fut: Future<Output = Result<(), Error>>,
{
    /// Hands the chain before to the feeder, once.
    fn start(&mut self, control: &Control) {
        if let Some((upstream, start)) = self.upstream.take() {
            // The feeder is alive as long as `self.feeder` holds it.
            let _ = start.send((upstream, control.clone()));
        }
    }

    /// Notes the end of the feeder: `Err` if it failed in a way that ends
    /// the run at once.
    fn fed(&mut self, result: Result<(), Error>) -> Result<(), Error> {
        self.feeder = Feeder::Ended;
        match result {
            Ok(()) => Ok(()),
            Err(error) if error.drains() => {
                self.deferred.get_or_insert(error);
                Ok(())
            }
            Err(error) => {
                // The run ends with it, without closing this chain.
                self.stats.finish(false);
                Err(error)
            }
        }
    }
}

impl<A, St, Fut> Chain for ThroughChain<A, St, Fut>
where
    A: Chain,
    St: Stream,
    Fut: Future<Output = Result<(), Error>>,
{
    type Out = St::Item;

    async fn init(&mut self) -> Result<(), Error> {
        if let Some((upstream, _)) = &mut self.upstream {
            upstream.init().await?;
        }
        self.stats.observe(crate::metrics::DEFAULT_PIPELINE_NAME);
        Ok(())
    }

    /// Drives the feeder and reads the stream, until a chunk of the
    /// stream's items is ready, or nothing more is (after at least one
    /// item), or the output ends (see [`through`] for when).
    async fn pull(&mut self, out: &mut Vec<St::Item>, control: &Control) -> Result<Pull, Error> {
        self.start(control);
        let start = out.len();
        let max = start + self.chunk;
        let mut stopping = std::pin::pin!(control.stopping());
        let pulled = std::future::poll_fn(|cx| {
            if let Feeder::Waiting(feeder) = &mut self.feeder
                && let Poll::Ready(result) = feeder.as_mut().poll(cx)
                && let Err(error) = self.fed(result)
            {
                return Poll::Ready(Err(error));
            }
            if let Some(stream) = self.stream.as_mut().filter(|_| !self.stream_done) {
                while out.len() < max {
                    match stream.as_mut().poll_next(cx) {
                        Poll::Ready(Some(item)) => out.push(item),
                        Poll::Ready(None) => {
                            self.stream_done = true;
                            break;
                        }
                        Poll::Pending => break,
                    }
                }
            }
            if matches!(self.feeder, Feeder::Ended) {
                // The input has ended: the output ends with the stream, at
                // a stop, or after the linger time, even while the stream
                // still has items ready.
                if self.stream_done || control.is_stopping() {
                    return Poll::Ready(Ok(Pull::Done));
                }
                if let Some(limit) = self.linger {
                    let lingering = self
                        .lingering
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                    if lingering.as_mut().poll(cx).is_ready() {
                        tracing::warn!(
                            stage = self.stats.name(),
                            linger = ?limit,
                            "the stream did not end within the linger time after the input \
                             ended; it is no longer read"
                        );
                        return Poll::Ready(Ok(Pull::Done));
                    }
                }
                if stopping.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Ok(Pull::Done));
                }
            }
            if out.len() > start {
                return Poll::Ready(Ok(Pull::More));
            }
            Poll::Pending
        })
        .await;
        self.stats.record_produced((out.len() - start) as u64);
        pulled
    }

    /// Waits for the feeder (which closes the chain before and the sink),
    /// drops the stream, and returns the first error of the feeder.
    async fn close(&mut self) -> Result<(), Error> {
        if let Some((mut upstream, start)) = self.upstream.take() {
            // Never pulled: the chain before is closed without being read,
            // and the feeder only closes the sink.
            drop(start);
            let closed = upstream.close().await;
            let fed = match std::mem::replace(&mut self.feeder, Feeder::Ended) {
                Feeder::Waiting(feeder) => feeder.await,
                Feeder::Ended => Ok(()),
            };
            self.stream = None;
            let result = closed.and(fed);
            self.stats.finish(result.is_ok());
            return result;
        }
        let fed = match std::mem::replace(&mut self.feeder, Feeder::Ended) {
            Feeder::Waiting(feeder) => feeder.await,
            Feeder::Ended => Ok(()),
        };
        self.stream = None;
        let result = match self.deferred.take() {
            Some(error) => Err(error),
            None => fed,
        };
        self.stats.finish(result.is_ok());
        result
    }
}

impl<A, St, Fut> fmt::Debug for ThroughChain<A, St, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThroughChain")
            .field("stage", &self.stats.name())
            .field("fed", &matches!(self.feeder, Feeder::Ended))
            .field("stream_done", &self.stream_done)
            .finish_non_exhaustive()
    }
}
