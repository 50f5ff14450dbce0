use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;

use futures::Sink;

use crate::stage::{BoxError, Emit, Failures, IsSink, Never, Stage, StageContext};

/// A sink stage over a [`futures::Sink`]. See [`sink`].
pub struct SinkStage<S> {
    sink: Pin<Box<S>>,
}

/// A sink stage that hands each item to a [`futures::Sink`], such as a
/// tokio-util `FramedWrite`, waiting for `poll_ready` before each item: the
/// sink's back-pressure paces the pipeline.
///
/// The sink is flushed after each chunk (a chunk ends when no more input is
/// ready, so nothing waits for more input) and closed when the pipeline
/// completes; a failed close fails the run.
///
/// An item counts as delivered once the flush after it succeeds. If the
/// sink fails (in `poll_ready`, `start_send` or `poll_flush`), the item it
/// was given and those it had accepted since the last flush fail with a
/// [`SinkError`], and the stage's error policy applies (the `errors` port
/// keeps the items). Later items are still offered to the sink.
///
/// ```
/// use futures::SinkExt;
/// use pipeline_runtime::io::sink;
///
/// let (tx, rx) = futures::channel::mpsc::channel::<String>(16);
/// let into_sink = sink(tx.sink_map_err(|e| e.to_string()));
/// # let _ = (into_sink, rx);
/// ```
pub fn sink<S>(sink: S) -> SinkStage<S> {
    SinkStage {
        sink: Box::pin(sink),
    }
}

impl<S> SinkStage<S> {
    /// Offers one item: waits for room, then starts sending it.
    async fn offer<T>(&mut self, item: T) -> Result<(), S::Error>
    where
        S: Sink<T>,
    {
        poll_fn(|cx| self.sink.as_mut().poll_ready(cx)).await?;
        self.sink.as_mut().start_send(item)
    }

    async fn flush<T>(&mut self) -> Result<(), S::Error>
    where
        S: Sink<T>,
    {
        poll_fn(|cx| self.sink.as_mut().poll_flush(cx)).await
    }
}

impl<T, S> Stage<T> for SinkStage<S>
where
    S: Sink<T>,
    S::Error: fmt::Display,
{
    type Out = Never;
    type Error = SinkError<S::Error>;

    async fn process(
        &mut self,
        item: T,
        _: &mut Emit<'_, Never>,
        _: &StageContext,
    ) -> Result<(), Self::Error> {
        self.offer(item).await.map_err(SinkError::new)?;
        self.flush::<T>().await.map_err(SinkError::new)
    }

    async fn process_chunk(
        &mut self,
        input: &mut Vec<T>,
        _: &mut Vec<Never>,
        failures: &mut Failures<Self::Error>,
        _: &StageContext,
    ) {
        // Items the sink accepted since the last flush: not delivered yet.
        let mut accepted = 0;
        for item in input.drain(..) {
            if let Err(error) = self.offer(item).await {
                let error = SinkError::new(error);
                for _ in 0..=accepted {
                    failures.fail(error.clone());
                }
                accepted = 0;
                continue;
            }
            accepted += 1;
        }
        if accepted > 0 {
            match self.flush::<T>().await {
                Ok(()) => failures.note_passed(accepted),
                Err(error) => {
                    let error = SinkError::new(error);
                    for _ in 0..accepted {
                        failures.fail(error.clone());
                    }
                }
            }
        }
    }

    async fn close(&mut self, _: &StageContext) -> Result<(), BoxError> {
        poll_fn(|cx| self.sink.as_mut().poll_close(cx))
            .await
            .map_err(|error| format!("closing the sink failed: {error}").into())
    }
}

impl<S> IsSink for SinkStage<S> {}

impl<S> fmt::Debug for SinkStage<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SinkStage")
    }
}

/// Why [`sink`] failed an item: the `futures::Sink`'s error.
///
/// Shared, since one failure of the sink fails every item it had not
/// delivered.
pub struct SinkError<E> {
    error: Arc<E>,
}

impl<E> SinkError<E> {
    fn new(error: E) -> Self {
        SinkError {
            error: Arc::new(error),
        }
    }

    /// The sink's error.
    pub fn error(&self) -> &E {
        &self.error
    }
}

impl<E> Clone for SinkError<E> {
    fn clone(&self) -> Self {
        SinkError {
            error: Arc::clone(&self.error),
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for SinkError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SinkError").field(&self.error).finish()
    }
}

impl<E: fmt::Display> fmt::Display for SinkError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the sink failed: {}", self.error)
    }
}

impl<E: std::error::Error + 'static> std::error::Error for SinkError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}
