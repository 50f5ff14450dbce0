use std::error::Error;
use std::fmt;

use tokio::sync::mpsc;

use crate::stage::{Emit, Failures, IsSink, Never, Stage, StageContext};

/// A sink sending items into a tokio channel. See [`channel`].
pub struct ChannelSink<T> {
    sender: mpsc::Sender<T>,
}

/// A sink that sends each item into a bounded tokio `mpsc` channel, waiting
/// while the channel is full: the channel's receiver paces the pipeline.
///
/// If the receiver is gone, each item fails with [`ChannelClosed`], so the
/// stage's error policy applies (the `errors` port keeps the item).
///
/// ```
/// use pipeline_runtime::io::channel;
///
/// let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(128);
/// let into_channel = channel(tx);
/// // ... run the pipeline, and read from `rx` elsewhere.
/// # let _ = (into_channel, rx.try_recv());
/// ```
pub fn channel<T>(sender: mpsc::Sender<T>) -> ChannelSink<T> {
    ChannelSink { sender }
}

impl<T> Stage<T> for ChannelSink<T> {
    type Out = Never;
    type Error = ChannelClosed;

    async fn process(
        &mut self,
        item: T,
        _: &mut Emit<'_, Never>,
        _: &StageContext,
    ) -> Result<(), ChannelClosed> {
        self.sender.send(item).await.map_err(|_| ChannelClosed)
    }

    async fn process_chunk(
        &mut self,
        input: &mut Vec<T>,
        _: &mut Vec<Never>,
        failures: &mut Failures<ChannelClosed>,
        _: &StageContext,
    ) {
        for item in input.drain(..) {
            match self.sender.send(item).await {
                Ok(()) => failures.note_passed(1),
                Err(_) => failures.fail(ChannelClosed),
            }
        }
    }
}

impl<T> IsSink for ChannelSink<T> {}

// Cloned for each worker of a `parallel` sink: all send into one channel.
impl<T> Clone for ChannelSink<T> {
    fn clone(&self) -> Self {
        ChannelSink {
            sender: self.sender.clone(),
        }
    }
}

impl<T> fmt::Debug for ChannelSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelSink")
            .field("capacity", &self.sender.max_capacity())
            .finish()
    }
}

/// Why [`channel`] failed an item: the channel's receiver was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelClosed;

impl fmt::Display for ChannelClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the channel's receiver was dropped")
    }
}

impl Error for ChannelClosed {}
