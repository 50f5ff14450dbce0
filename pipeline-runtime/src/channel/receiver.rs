use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::ring::{Popped, Ring};
use super::{Chunk, Shared, take_now};
use crate::channel::backpressure::Demand;
use crate::options::{Backpressure, OnFull};

/// Where a receiver's chunks come from.
pub(super) enum Rx<T> {
    /// A `Block` edge's channel.
    Channel(mpsc::UnboundedReceiver<Chunk<T>>),
    /// A dropping edge's shared queue.
    Ring(Arc<Ring<T>>),
}

/// The receiving half of an edge; see [`edge`](super::edge) and
/// [`edge_with`](super::edge_with).
///
/// If the edge has a [`Backpressure::Credit`] or [`Backpressure::Pull`]
/// strategy, the receiver runs its consumer side: it grants credits as it
/// takes items, or requests items each time it is asked for some. Whoever
/// reads the edge (an [`Inlet`](crate::fan::Inlet), an accumulator) thereby
/// takes part without doing anything.
///
/// Dropping the receiver closes the edge: blocked and future sends fail with
/// [`Closed`](super::Closed), returning their items.
pub struct EdgeReceiver<T> {
    shared: Arc<Shared>,
    rx: Rx<T>,
    demand: Option<Demand>,
}

impl<T> EdgeReceiver<T> {
    pub(super) fn new(shared: Arc<Shared>, rx: Rx<T>) -> Self {
        let demand = shared.link.as_ref().and_then(Demand::new);
        EdgeReceiver { shared, rx, demand }
    }

    /// Waits for the next chunk and returns it, freeing its capacity for the
    /// senders. Returns `None` once every sender has been dropped and the
    /// queue is drained. Cancel-safe.
    pub async fn recv_chunk(&mut self) -> Option<Vec<T>> {
        if let Some(demand) = &mut self.demand {
            demand.ask();
        }
        self.next_chunk().await
    }

    /// Returns the next chunk if one is queued right now, without waiting
    /// and without blocking the thread: a chunk that a sender on another
    /// thread is still queueing is not seen until it is queued.
    pub fn try_recv_chunk(&mut self) -> Option<Vec<T>> {
        if let Some(demand) = &mut self.demand {
            demand.ask();
        }
        self.next_chunk_now()
    }

    /// Appends whole chunks to `out`: waits for one chunk, then keeps taking
    /// chunks that are immediately available while `out.len() < max`. Since
    /// chunks are not split, `out` may end up longer than `max`.
    ///
    /// Returns `false` only when the edge is closed and drained (nothing was
    /// appended); `true` otherwise. Cancel-safe: if cancelled, nothing was
    /// taken from the edge.
    pub async fn recv_into(&mut self, out: &mut Vec<T>, max: usize) -> bool {
        if let Some(demand) = &mut self.demand {
            demand.ask();
        }
        let Some(first) = self.next_chunk().await else {
            return false;
        };
        if out.is_empty() && out.capacity() <= first.capacity() {
            // Reuse the chunk's allocation instead of copying.
            *out = first;
        } else {
            out.extend(first);
        }
        while out.len() < max {
            match self.next_chunk_now() {
                Some(chunk) => out.extend(chunk),
                None => break,
            }
        }
        true
    }

    /// Items currently queued on the edge (shipped by senders, not yet
    /// received). Never above [`capacity`](Self::capacity) except transiently
    /// on a `Block` edge after a sender was dropped with unflushed items.
    pub fn queued_items(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// The edge capacity in items (after clamping).
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// What the edge does when it is full.
    pub fn on_full(&self) -> OnFull {
        self.shared.on_full
    }

    /// The edge's back-pressure strategy (with its values clamped), if any.
    pub fn backpressure(&self) -> Option<Backpressure> {
        self.shared.backpressure()
    }

    /// Items the edge has dropped so far under its `on_full` policy, from
    /// every sender.
    pub fn dropped_items(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Waits for a chunk without asking for more items first.
    async fn next_chunk(&mut self) -> Option<Vec<T>> {
        let items = match &mut self.rx {
            Rx::Channel(rx) => release(&self.shared, rx.recv().await?),
            Rx::Ring(ring) => match ring.try_pop(&self.shared) {
                Popped::Items(items) => items,
                Popped::Ended => return None,
                // Boxed: only a dropping edge's consumer pays for the wait's
                // state, and only when it has to wait.
                Popped::Empty => Box::pin(ring.pop(&self.shared)).await?,
            },
        };
        if let Some(demand) = &mut self.demand {
            demand.received(items.len());
        }
        Some(items)
    }

    /// Takes a chunk queued right now, without asking for more items first.
    fn next_chunk_now(&mut self) -> Option<Vec<T>> {
        let items = match &mut self.rx {
            Rx::Channel(rx) => release(&self.shared, take_now(rx)?),
            Rx::Ring(ring) => match ring.try_pop(&self.shared) {
                Popped::Items(items) => items,
                Popped::Empty | Popped::Ended => return None,
            },
        };
        if let Some(demand) = &mut self.demand {
            demand.received(items.len());
        }
        Some(items)
    }
}

/// Accounts for a chunk taken from a `Block` edge: returns its permits.
fn release<T>(shared: &Shared, chunk: Chunk<T>) -> Vec<T> {
    shared
        .queued
        .fetch_sub(chunk.items.len(), Ordering::Relaxed);
    if chunk.permits > 0 {
        shared.permits.add_permits(chunk.permits as usize);
    }
    shared.queue_changed();
    chunk.items
}

impl<T> Drop for EdgeReceiver<T> {
    fn drop(&mut self) {
        // Wake senders blocked on capacity, credits or requests; they observe
        // `Closed`.
        self.shared.permits.close();
        if let Some(link) = &self.shared.link {
            link.close();
        }
        match &mut self.rx {
            Rx::Channel(rx) => rx.close(),
            Rx::Ring(ring) => ring.close(),
        }
    }
}

impl<T> fmt::Debug for EdgeReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EdgeReceiver")
            .field("capacity", &self.shared.capacity)
            .field("on_full", &self.shared.on_full)
            .field("backpressure", &self.backpressure())
            .field("queued", &self.queued_items())
            .field("dropped", &self.dropped_items())
            .finish()
    }
}
