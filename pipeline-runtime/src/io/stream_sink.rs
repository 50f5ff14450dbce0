use std::error::Error;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use crate::stage::{BoxError, Emit, Failures, IsSink, Never, Stage, StageContext};

/// A sink whose items come out of an [`OutputStream`]. See [`stream_sink`].
pub struct StreamSink<T> {
    /// Dropped when the sink closes, which ends the stream.
    sender: Option<mpsc::Sender<T>>,
}

/// The items a [`StreamSink`] took, as a [`futures::Stream`]. See
/// [`stream_sink`].
pub struct OutputStream<T> {
    receiver: mpsc::Receiver<T>,
}

/// A sink whose items can be consumed as a [`futures::Stream`]: the way to
/// read a pipeline's outputs from other code, one at a time and as they
/// come.
///
/// The sink sends each item into a bounded queue of `capacity` items and
/// waits while it is full, so the stream's reader paces the pipeline. The
/// [`OutputStream`] yields the items in the order the sink took them, and
/// ends after the last one once the sink has closed: when the pipeline
/// ends (completes, is stopped, or fails), or is dropped or aborted.
///
/// If the stream is dropped, each later item fails with [`StreamClosed`],
/// so the stage's error policy applies.
///
/// ```
/// use futures::StreamExt;
/// use pipeline_runtime::chain::{Fuse, Head, drive};
/// use pipeline_runtime::graph::NodeKind;
/// use pipeline_runtime::io::{iter, stream_sink};
/// use pipeline_runtime::lifecycle::Control;
/// use pipeline_runtime::metrics::StageStats;
/// use pipeline_runtime::stage::Never;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (into_stream, outputs) = stream_sink::<u64>(16);
/// let stats = |name, kind| Arc::new(StageStats::new(name, kind));
/// let chain: Fuse<_, _, u64, Never, _> = Fuse::new(
///     Head::new(iter(1..=3u64), stats("iter", NodeKind::Source), 512),
///     into_stream,
///     stats("out", NodeKind::Sink),
/// );
/// let run = drive(chain, Control::new());
/// // The pipeline runs while the stream is read.
/// let (ran, read) = tokio::join!(run, outputs.collect::<Vec<_>>());
/// ran.unwrap();
/// assert_eq!(read, [1, 2, 3]);
/// # }
/// ```
///
/// # Panics
///
/// If `capacity` is zero.
pub fn stream_sink<T>(capacity: usize) -> (StreamSink<T>, OutputStream<T>) {
    assert!(capacity > 0, "a stream sink needs a capacity of at least 1");
    let (sender, receiver) = mpsc::channel(capacity);
    (
        StreamSink {
            sender: Some(sender),
        },
        OutputStream { receiver },
    )
}

impl<T> Stage<T> for StreamSink<T> {
    type Out = Never;
    type Error = StreamClosed;

    async fn process(
        &mut self,
        item: T,
        _: &mut Emit<'_, Never>,
        _: &StageContext,
    ) -> Result<(), StreamClosed> {
        let sender = self.sender.as_ref().ok_or(StreamClosed)?;
        sender.send(item).await.map_err(|_| StreamClosed)
    }

    async fn process_chunk(
        &mut self,
        input: &mut Vec<T>,
        _: &mut Vec<Never>,
        failures: &mut Failures<StreamClosed>,
        _: &StageContext,
    ) {
        let Some(sender) = &self.sender else {
            for _ in input.drain(..) {
                failures.fail(StreamClosed);
            }
            return;
        };
        let mut items = input.drain(..);
        while items.len() > 0 {
            // The room the queue has now (or one slot, waited for), at
            // most the items left: one permit call for a run of items,
            // never a wait for more room than one item needs.
            let want = items.len().min(sender.capacity().max(1));
            match sender.reserve_many(want).await {
                Ok(permits) => {
                    let mut sent = 0;
                    for (permit, item) in permits.zip(&mut items) {
                        permit.send(item);
                        sent += 1;
                    }
                    failures.note_passed(sent);
                }
                Err(_) => {
                    for _ in items.by_ref() {
                        failures.fail(StreamClosed);
                    }
                }
            }
        }
    }

    /// Ends the stream, after the items already sent.
    async fn close(&mut self, _: &StageContext) -> Result<(), BoxError> {
        self.sender = None;
        Ok(())
    }
}

impl<T> IsSink for StreamSink<T> {}

impl<T> fmt::Debug for StreamSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamSink")
            .field("closed", &self.sender.is_none())
            .finish()
    }
}

impl<T> Stream for OutputStream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.receiver.poll_recv(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.receiver.len(), None)
    }
}

impl<T> OutputStream<T> {
    /// How many items wait to be read.
    pub fn queued(&self) -> usize {
        self.receiver.len()
    }
}

impl<T> fmt::Debug for OutputStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputStream")
            .field("queued", &self.receiver.len())
            .finish()
    }
}

/// Why a [`stream_sink`] failed an item: its [`OutputStream`] was dropped,
/// so nobody reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamClosed;

impl fmt::Display for StreamClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the output stream was dropped")
    }
}

impl Error for StreamClosed {}
