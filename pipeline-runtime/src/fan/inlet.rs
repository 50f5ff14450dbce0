use std::fmt;

use crate::chain::{Chain, Outputs};
use crate::channel::EdgeReceiver;
use crate::control::Control;
use crate::error::Error;
use crate::stage::Pull;

/// The start of a chain fed by an edge rather than a source.
///
/// An inlet ignores a graceful stop: a stop ends the sources, and every
/// item already on its way drains through the inlet until the chains
/// upstream have finished and dropped their senders.
///
/// The consumer side of the edge's back-pressure strategy, if it has one
/// (granting credits, requesting items; see [`crate::channel::backpressure`]), runs in
/// the [`EdgeReceiver`] itself, so an inlet needs nothing more than the
/// receiver of an edge built with [`edge_with`](crate::channel::edge_with).
pub struct Inlet<T> {
    rx: EdgeReceiver<T>,
    chunk: usize,
}

impl<T> Inlet<T> {
    /// A chain head reading chunks of about `chunk` items from `rx`.
    pub fn new(rx: EdgeReceiver<T>, chunk: usize) -> Self {
        Inlet {
            rx,
            chunk: chunk.max(1),
        }
    }
}

impl<T> Outputs for Inlet<T> {
    type Out = T;
}

impl<T> Chain for Inlet<T> {
    type Out = T;

    async fn init(&mut self) -> Result<(), Error> {
        Ok(())
    }

    async fn pull(&mut self, out: &mut Vec<T>, _: &Control) -> Result<Pull, Error> {
        if self.rx.recv_into(out, self.chunk).await {
            Ok(Pull::More)
        } else {
            Ok(Pull::Done)
        }
    }

    async fn close(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

impl<T> fmt::Debug for Inlet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inlet").field("rx", &self.rx).finish()
    }
}
