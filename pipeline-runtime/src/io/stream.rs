use std::fmt;
use std::pin::Pin;
use std::task::Poll;

use futures::Stream;

use crate::stage::{Never, Pull, Source, StageContext};

/// A source over a [`futures::Stream`]. See [`stream`].
pub struct StreamSource<S> {
    stream: Pin<Box<S>>,
}

/// A source that yields every item of a [`futures::Stream`], then ends.
///
/// Items that are ready together travel together: a chunk is handed on as
/// soon as the stream has nothing more ready, so batching adds no latency.
///
/// ```
/// # use pipeline_runtime::io::stream;
/// let numbers = stream(futures::stream::iter(1..=3u64));
/// # let _ = numbers;
/// ```
pub fn stream<S: Stream>(stream: S) -> StreamSource<S> {
    StreamSource {
        stream: Box::pin(stream),
    }
}

impl<S: Stream> Source for StreamSource<S> {
    type Out = S::Item;
    type Error = Never;

    async fn fill(
        &mut self,
        out: &mut Vec<S::Item>,
        max: usize,
        _: &StageContext,
    ) -> Result<Pull, Never> {
        let start = out.len();
        std::future::poll_fn(|cx| {
            loop {
                if out.len() >= max {
                    return Poll::Ready(Ok(Pull::More));
                }
                match self.stream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(item)) => out.push(item),
                    Poll::Ready(None) => return Poll::Ready(Ok(Pull::Done)),
                    Poll::Pending if out.len() > start => return Poll::Ready(Ok(Pull::More)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await
    }
}

impl<S> fmt::Debug for StreamSource<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StreamSource")
    }
}
