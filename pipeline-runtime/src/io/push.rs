use std::error::Error;
use std::fmt;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::control::Control;
use crate::stage::{BoxError, Never, Pull, Source, StageContext};

/// A source fed through [`PushHandle`]s. See [`push`].
pub struct Push<T> {
    rx: mpsc::Receiver<T>,
    closed: CancellationToken,
    /// The channel was closed: only what it holds is left to read.
    draining: bool,
    on_stop: PushStop,
}

/// What a [`push`] source does, when its pipeline is stopped gracefully,
/// with the items its handles sent that the pipeline has not read yet
/// (each one a `send` or `try_send` that returned `Ok`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PushStop {
    /// The pipeline reads them all before the source ends, so a stop loses
    /// nothing a producer handed over. The default.
    #[default]
    Drain,
    /// They are dropped, and counted in the source's `dropped` (in the
    /// [`Report`](crate::metrics::Report) and the stage's state): for a
    /// stop that must be quick whatever is queued.
    Drop,
}

/// Sends items into a [`push`] source, from any task.
///
/// Clones send into the same source. The source ends when every handle is
/// dropped or one of them calls [`close`](PushHandle::close), once the
/// items already sent have been read.
pub struct PushHandle<T> {
    tx: mpsc::Sender<T>,
    closed: CancellationToken,
}

/// A source that other code pushes items into, through the returned
/// [`PushHandle`], with back-pressure: at most `capacity` items wait for the
/// pipeline, and [`send`](PushHandle::send) waits while that many do.
///
/// The source ends when every handle is dropped, or when
/// [`close`](PushHandle::close) is called, after yielding the items already
/// sent.
///
/// When the pipeline is [stopped](crate::lifecycle::PipelineHandle::stop),
/// the source closes at once, whatever the rest of the pipeline is doing:
/// later sends fail with [`PushClosed`], and so do sends waiting for room,
/// which hand their item back. Every item a send already took (it returned
/// `Ok`) is still read and processed before the source ends, unless the
/// source was made with [`on_stop(PushStop::Drop)`](Push::on_stop), which
/// drops them and counts them as `dropped`. A pipeline that ends otherwise
/// (it failed, or was aborted) closes the source too, and counts the items
/// it did not read as `dropped` where it still can (not on abort).
///
/// ```
/// use pipeline_runtime::io::{TryPushError, push};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (orders, handle) = push::<u64>(2);
/// // Give `orders` to the pipeline; send from anywhere.
/// handle.send(1).await.unwrap();
/// handle.try_send(2).unwrap();
/// // Two items wait for the pipeline: `send` would wait, `try_send` says why not.
/// assert!(matches!(handle.try_send(3), Err(TryPushError::Full(3))));
/// handle.close();
/// assert!(matches!(handle.try_send(3), Err(TryPushError::Closed(3))));
/// # drop(orders);
/// # }
/// ```
///
/// # Panics
///
/// If `capacity` is zero.
pub fn push<T>(capacity: usize) -> (Push<T>, PushHandle<T>) {
    assert!(capacity > 0, "a push source needs a capacity of at least 1");
    let (tx, rx) = mpsc::channel(capacity);
    let closed = CancellationToken::new();
    let source = Push {
        rx,
        closed: closed.clone(),
        draining: false,
        on_stop: PushStop::Drain,
    };
    (source, PushHandle { tx, closed })
}

impl<T> PushHandle<T> {
    /// Sends `item`, waiting while the source holds `capacity` items the
    /// pipeline has not taken yet.
    ///
    /// Fails, handing the item back, if the source is closed (by
    /// [`close`](Self::close), or because the pipeline stopped or ended),
    /// including while waiting.
    pub async fn send(&self, item: T) -> Result<(), PushClosed<T>> {
        if self.closed.is_cancelled() {
            return Err(PushClosed(item));
        }
        tokio::select! {
            biased;
            () = self.closed.cancelled() => Err(PushClosed(item)),
            permit = self.tx.reserve() => match permit {
                Ok(permit) => {
                    permit.send(item);
                    Ok(())
                }
                Err(_) => Err(PushClosed(item)),
            },
        }
    }

    /// Sends `item` if the source has room now, without waiting.
    ///
    /// Fails, handing the item back, with [`TryPushError::Full`] if
    /// `capacity` items are waiting for the pipeline, or
    /// [`TryPushError::Closed`] if the source is closed.
    pub fn try_send(&self, item: T) -> Result<(), TryPushError<T>> {
        if self.closed.is_cancelled() {
            return Err(TryPushError::Closed(item));
        }
        self.tx.try_send(item).map_err(|error| match error {
            mpsc::error::TrySendError::Full(item) => TryPushError::Full(item),
            mpsc::error::TrySendError::Closed(item) => TryPushError::Closed(item),
        })
    }

    /// Closes the source for every handle: later sends fail, sends waiting
    /// for room fail now, and the source ends once it has yielded the items
    /// already sent.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Whether the source is closed: by [`close`](Self::close), or because
    /// the pipeline stopped, ended or was dropped.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled() || self.tx.is_closed()
    }

    /// Completes when the source is closed (see [`is_closed`](Self::is_closed)).
    pub async fn closed(&self) {
        tokio::select! {
            () = self.closed.cancelled() => {}
            () = self.tx.closed() => {}
        }
    }

    /// How many more items the source can take now without waiting.
    pub fn room(&self) -> usize {
        self.tx.capacity()
    }

    /// The `capacity` the source was made with.
    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }
}

impl<T> Clone for PushHandle<T> {
    fn clone(&self) -> Self {
        PushHandle {
            tx: self.tx.clone(),
            closed: self.closed.clone(),
        }
    }
}

impl<T> fmt::Debug for PushHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushHandle")
            .field("capacity", &self.capacity())
            .field("room", &self.room())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T> Source for Push<T> {
    type Out = T;
    type Error = Never;

    async fn fill(
        &mut self,
        out: &mut Vec<T>,
        max: usize,
        _: &StageContext,
    ) -> Result<Pull, Never> {
        let limit = max.saturating_sub(out.len());
        if limit == 0 {
            return Ok(Pull::More);
        }
        if !self.draining {
            tokio::select! {
                biased;
                taken = self.rx.recv_many(out, limit) => {
                    return Ok(if taken == 0 { Pull::Done } else { Pull::More });
                }
                () = self.closed.cancelled() => self.drain(),
            }
        }
        let taken = self.rx.recv_many(out, limit).await;
        Ok(if taken == 0 { Pull::Done } else { Pull::More })
    }

    async fn close(&mut self, ctx: &StageContext) -> Result<(), BoxError> {
        // Senders learn at once that nobody will read what they send.
        self.closed.cancel();
        self.rx.close();
        // Only a run that did not drain (it failed) leaves items here:
        // they were accepted, so they are counted, not lost silently.
        self.drop_queued(ctx).await;
        Ok(())
    }

    fn watch_stop(&mut self, control: &Control) {
        // A stop releases waiting senders at once, even while the chain
        // this source heads is busy and nobody polls it.
        control.cancel_on_stop(self.closed.clone());
    }

    async fn drain_accepted(&mut self, out: &mut Vec<T>, max: usize, ctx: &StageContext) -> Pull {
        // No new items; a send that already holds a permit still lands,
        // and `recv` waits for it, never for new input.
        self.closed.cancel();
        self.drain();
        match self.on_stop {
            PushStop::Drain => {
                let limit = max.saturating_sub(out.len());
                if limit == 0 {
                    return Pull::More;
                }
                if self.rx.recv_many(out, limit).await == 0 {
                    Pull::Done
                } else {
                    Pull::More
                }
            }
            PushStop::Drop => {
                self.drop_queued(ctx).await;
                Pull::Done
            }
        }
    }
}

impl<T> Push<T> {
    /// Says what happens, on a graceful stop of the pipeline, to the items
    /// the handles sent that the pipeline has not read yet: read and
    /// processed ([`PushStop::Drain`], the default), or dropped and counted
    /// ([`PushStop::Drop`]).
    ///
    /// ```
    /// use pipeline_runtime::io::{PushStop, push};
    ///
    /// let (orders, handle) = push::<u64>(1024);
    /// let orders = orders.on_stop(PushStop::Drop);
    /// # let _ = (orders, handle);
    /// ```
    pub fn on_stop(mut self, policy: PushStop) -> Self {
        self.on_stop = policy;
        self
    }

    /// Drops the items queued in the closed channel, counting them as the
    /// source's `dropped`. Awaits `recv` rather than calling `try_recv`,
    /// which can park the thread while a sender finishes its write (see
    /// `channel::take_now`); on a closed channel it waits only for sends
    /// already under way.
    async fn drop_queued(&mut self, ctx: &StageContext) {
        let mut dropped = 0;
        while self.rx.recv().await.is_some() {
            dropped += 1;
        }
        if dropped > 0 {
            ctx.stats().record_dropped(dropped);
        }
    }

    /// Refuses new items; those already sent can still be read.
    fn drain(&mut self) {
        self.rx.close();
        self.draining = true;
    }
}

impl<T> fmt::Debug for Push<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Push")
            .field("queued", &self.rx.len())
            .finish()
    }
}

/// The error of [`PushHandle::send`]: the source is closed. Holds the item
/// that was not sent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PushClosed<T>(pub T);

impl<T> PushClosed<T> {
    /// The item that was not sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for PushClosed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PushClosed(..)")
    }
}

impl<T> fmt::Display for PushClosed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the push source is closed: its pipeline stopped, or a handle closed it")
    }
}

impl<T> Error for PushClosed<T> {}

/// The error of [`PushHandle::try_send`]: why the item was not sent. Holds
/// the item.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TryPushError<T> {
    /// The source already holds `capacity` items the pipeline has not taken
    /// yet. Try later, or [`send`](PushHandle::send) to wait for room.
    Full(T),
    /// The source is closed: its pipeline stopped, or a handle closed it.
    Closed(T),
}

impl<T> TryPushError<T> {
    /// The item that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TryPushError::Full(item) | TryPushError::Closed(item) => item,
        }
    }

    /// Whether the source was full (rather than closed).
    pub fn is_full(&self) -> bool {
        matches!(self, TryPushError::Full(_))
    }

    /// Whether the source was closed (rather than full).
    pub fn is_closed(&self) -> bool {
        matches!(self, TryPushError::Closed(_))
    }
}

impl<T> fmt::Debug for TryPushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPushError::Full(_) => f.write_str("Full(..)"),
            TryPushError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TryPushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPushError::Full(_) => f.write_str(
                "the push source is full: the pipeline has not taken the items already sent",
            ),
            TryPushError::Closed(_) => f.write_str(
                "the push source is closed: its pipeline stopped, or a handle closed it",
            ),
        }
    }
}

impl<T> Error for TryPushError<T> {}
