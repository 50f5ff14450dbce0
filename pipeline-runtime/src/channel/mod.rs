//! Batched, bounded edges between pipeline tasks.
//!
//! An edge carries `Vec<T>` chunks, but its capacity is counted in **items**:
//! at most `capacity` items are queued between the senders and the receiver
//! at any time (see [`EdgeSender`]'s `Drop` for the one documented exception,
//! which only concerns [`OnFull::Block`] edges).
//!
//! Each [`EdgeSender`] accumulates items in a local buffer and ships it as a
//! chunk when it holds `chunk` items. The runtime calls
//! [`EdgeSender::flush`] whenever its own input is momentarily empty, so
//! batching amortises per-item channel costs without ever adding latency.
//!
//! # What a full edge does
//!
//! [`edge_with`] picks the edge's [`OnFull`] policy:
//!
//! - [`OnFull::Block`] (the default, and what [`edge`] builds): a sender waits
//!   for room. A [`Semaphore`] with `capacity` permits enforces the bound: a
//!   sender acquires one permit per item of a chunk before enqueueing it, and
//!   the receiver returns them when it takes the chunk. Nothing is lost.
//! - [`OnFull::DropNewest`]: a sender never waits. The part of a chunk that
//!   does not fit is dropped: the edge keeps the oldest items.
//! - [`OnFull::DropOldest`]: a sender never waits. The oldest queued items are
//!   evicted (whole chunks, then the front of a chunk) to make room: the edge
//!   keeps the newest items.
//!
//! The two drop policies share one queue (a mutex-protected deque of chunks
//! and a [`Notify`](tokio::sync::Notify) for the receiver), since eviction
//! needs the receiver's queue; `Block` keeps its lock-free channel. Either
//! way the capacity bound holds.
//!
//! Every dropped item is counted: on the edge ([`EdgeSender::dropped_items`])
//! and on the [`EdgeStats`] of the producer whose item it was, registered with
//! [`EdgeSender::count_drops_in`] (which [`Output::new`](crate::fan::Output::new)
//! does). An item evicted by `DropOldest` is charged to the producer that sent
//! it, which matters on a merge, where several producers share one edge.
//!
//! # Back-pressure strategies
//!
//! [`edge_with`] also takes an optional [`Backpressure`] strategy; see
//! [`crate::channel::backpressure`]. The edge carries it to both of its ends: the
//! consumer side (granting credits, requesting items) runs inside
//! [`EdgeReceiver`], so every consumer of the edge takes part, and the
//! producer side (waiting for credits, requests or tokens, sizing chunks)
//! runs in [`Output`](crate::fan::Output), which picks the strategy up from
//! the sender it wraps. A bare [`EdgeSender`] ignores it.
//!
//! ```
//! use pipeline_runtime::channel::edge;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (mut tx, mut rx) = edge::<u32>(1024, 64);
//! tx.send(1).await?;
//! tx.send(2).await?;
//! assert_eq!(rx.try_recv_chunk(), None); // still buffered in `tx`
//! tx.flush().await?;
//! assert_eq!(rx.recv_chunk().await, Some(vec![1, 2]));
//! drop(tx);
//! assert_eq!(rx.recv_chunk().await, None);
//! # Ok(())
//! # }
//! ```
//!
//! With a drop policy:
//!
//! ```
//! use pipeline_runtime::channel::edge_with;
//! use pipeline_runtime::options::OnFull;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (mut tx, mut rx) = edge_with::<u32>(4, 2, OnFull::DropOldest, None);
//! for i in 0..10 {
//!     tx.send(i).await?; // never waits
//! }
//! assert_eq!(rx.recv_chunk().await, Some(vec![6, 7]));
//! assert_eq!(rx.recv_chunk().await, Some(vec![8, 9]));
//! assert_eq!(rx.dropped_items(), 6);
//! # Ok(())
//! # }
//! ```

pub mod backpressure;
mod receiver;
mod ring;
mod sender;
#[cfg(test)]
mod tests;

use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Semaphore, mpsc};

use crate::metrics::{EdgeQueue, EdgeStats};
use crate::options::{Backpressure, OnFull};
use backpressure::Link;

pub use receiver::EdgeReceiver;
pub use sender::EdgeSender;

use receiver::Rx;
use ring::Ring;
use sender::Tx;

/// Largest supported capacity: permits are acquired in `u32` batches and the
/// semaphore has its own upper limit.
const MAX_CAPACITY: usize = if (u32::MAX as usize) < Semaphore::MAX_PERMITS {
    u32::MAX as usize
} else {
    Semaphore::MAX_PERMITS
};

/// Creates a batched bounded edge whose senders wait for room
/// ([`OnFull::Block`]), with no back-pressure strategy.
///
/// - `capacity` is the maximum number of items queued on the edge. It is
///   clamped to `1..=MAX` (where `MAX` is `min(u32::MAX, Semaphore::MAX_PERMITS)`),
///   so `0` means `1`; this function never panics.
/// - `chunk` is the number of items a sender buffers before shipping them as
///   one chunk. It is clamped to `1..=capacity`.
///
/// The sender can be cloned for fan-in; the receiver sees
/// [`recv_chunk`](EdgeReceiver::recv_chunk) return `None` once every sender is
/// gone and the queue is drained.
pub fn edge<T>(capacity: usize, chunk: usize) -> (EdgeSender<T>, EdgeReceiver<T>) {
    edge_with(capacity, chunk, OnFull::Block, None)
}

/// The capacity, in items, of an edge whose options set no `buffer`.
pub const DEFAULT_BUFFER: usize = 1024;

/// A node's input edge as its options say: `buffer` (else
/// [`DEFAULT_BUFFER`]), `on_full` and `backpressure`, read in chunks of up
/// to `chunk` items.
pub fn edge_for<T>(
    options: &crate::options::StageOptions,
    chunk: usize,
) -> (EdgeSender<T>, EdgeReceiver<T>) {
    edge_with(
        options.buffer.unwrap_or(DEFAULT_BUFFER),
        chunk,
        options.on_full(),
        options.backpressure,
    )
}

/// Creates a batched bounded edge with the policy `on_full` and, if given, the
/// back-pressure strategy `backpressure`.
///
/// `capacity` and `chunk` are clamped as for [`edge`];
/// `edge_with(capacity, chunk, OnFull::Block, None)` is [`edge`]. The
/// strategy's own values are clamped so that it cannot hang (see
/// [`crate::channel::backpressure`]).
///
/// Drops are counted on the edge ([`EdgeReceiver::dropped_items`]) and on the
/// [`EdgeStats`] each sender was given with
/// [`EdgeSender::count_drops_in`]; wrapping a sender in
/// [`Output::new`](crate::fan::Output::new) does that, and applies the
/// producer side of `backpressure`.
pub fn edge_with<T>(
    capacity: usize,
    chunk: usize,
    on_full: OnFull,
    backpressure: Option<Backpressure>,
) -> (EdgeSender<T>, EdgeReceiver<T>) {
    let capacity = capacity.clamp(1, MAX_CAPACITY);
    let chunk = chunk.clamp(1, capacity);
    let link = backpressure.map(|bp| Arc::new(Link::new(bp, capacity)));
    let shared = Arc::new(Shared {
        permits: Semaphore::new(capacity),
        queued: AtomicUsize::new(0),
        dropped: AtomicU64::new(0),
        capacity,
        on_full,
        link,
        watched: AtomicBool::new(false),
        gauges: Mutex::new(Vec::new()),
    });
    let (tx, rx) = match on_full {
        OnFull::Block => {
            let (tx, rx) = mpsc::unbounded_channel();
            (Tx::Channel(tx), Rx::Channel(rx))
        }
        OnFull::DropNewest | OnFull::DropOldest => {
            let ring = Arc::new(Ring::new(on_full));
            (Tx::Ring(Arc::clone(&ring)), Rx::Ring(ring))
        }
    };
    (
        EdgeSender::new(Arc::clone(&shared), tx, chunk),
        EdgeReceiver::new(shared, rx),
    )
}

/// Takes a message queued on `rx` right now, if there is one, without
/// waiting and without ever blocking the thread: what the runtime uses
/// instead of tokio's `try_recv`, on its edges and on a parallel stage's
/// results.
///
/// Tokio's `UnboundedReceiver::try_recv`, when it meets a message that a
/// sender on another thread is still writing, parks the thread until the
/// write completes, on the thread-local parker that `Runtime::block_on`
/// also sleeps on. A pipeline `run().await` in a `block_on` (as in
/// `#[tokio::main]` or `#[tokio::test]` on a multi-thread runtime) polls
/// its whole body on that thread, with a waker that unparks that parker:
/// a wake-up of the body delivered earlier in the same poll (a worker's
/// result for another parallel stage, an edge's freed capacity) would be
/// consumed by that park, and `block_on` would then sleep with every part
/// of the pipeline waiting on an event that had already happened.
///
/// Polling `recv` once instead never parks: a message being written reads
/// as "nothing yet" (a reader that needs it waits on the receiver, and
/// that wait sees it). The poll registers a no-op waker, harmless as nothing else of the
/// receiver's only owner is waiting on it meanwhile, and every wait
/// registers its own; `unconstrained`, so the task's tokio budget is
/// neither spent nor able to hide a queued message, as with `try_recv`.
pub(crate) fn take_now<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> Option<T> {
    use futures::FutureExt;
    // Nothing sent, not even a message being written: the usual answer,
    // found without swapping the receiver's waker.
    if rx.is_empty() {
        return None;
    }
    tokio::task::unconstrained(rx.recv())
        .now_or_never()
        .flatten()
}

/// State shared by all ends of one edge.
struct Shared {
    /// One permit per item of free capacity (`Block` edges only). Closed when
    /// the receiver drops.
    permits: Semaphore,
    /// Items currently in the chunk queue.
    queued: AtomicUsize,
    /// Items dropped by the `on_full` policy.
    dropped: AtomicU64,
    /// Clamped capacity in items.
    capacity: usize,
    /// What a full edge does.
    on_full: OnFull,
    /// The back-pressure strategy both ends follow, if any.
    link: Option<Arc<Link>>,
    /// Whether `gauges` holds any: checked on every change of the queue,
    /// so an edge nobody watches pays one load.
    watched: AtomicBool,
    /// The `pipeline_queue_depth` gauges of the edge's producers (one per
    /// producer on a merge), set to `queued` whenever it changes.
    gauges: Mutex<Vec<metrics::Gauge>>,
}

impl Shared {
    /// Counts `items` dropped by the `on_full` policy, on the edge and on
    /// `stats`, and gives back the credits or requests they held.
    fn record_dropped(&self, items: usize, stats: Option<&EdgeStats>) {
        if items == 0 {
            return;
        }
        self.dropped.fetch_add(items as u64, Ordering::Relaxed);
        if let Some(stats) = stats {
            stats.record_dropped(items as u64);
        }
        if let Some(link) = &self.link {
            link.returned(items);
        }
    }

    fn backpressure(&self) -> Option<Backpressure> {
        self.link.as_deref().map(Link::backpressure)
    }

    /// Publishes the queue's depth to the gauges watching it, if any. Called
    /// once per chunk queued or taken.
    #[inline]
    fn queue_changed(&self) {
        if self.watched.load(Ordering::Relaxed) {
            self.publish_depth();
        }
    }

    #[cold]
    fn publish_depth(&self) {
        let gauges = self.gauges.lock().unwrap_or_else(PoisonError::into_inner);
        // Read under the lock, so that the last writer publishes the
        // latest depth.
        let depth = self.queued.load(Ordering::Relaxed) as f64;
        for gauge in gauges.iter() {
            gauge.set(depth);
        }
    }
}

impl EdgeQueue for Shared {
    fn queued_items(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    fn watch(&self, gauge: metrics::Gauge) {
        self.gauges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(gauge);
        self.watched.store(true, Ordering::Relaxed);
        self.publish_depth();
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("capacity", &self.capacity)
            .field("on_full", &self.on_full)
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A chunk in flight on a `Block` edge, with the number of permits it holds.
struct Chunk<T> {
    items: Vec<T>,
    /// Permits acquired for `items`; returned to the semaphore by the receiver.
    /// Equals `items.len()` except for chunks over-committed by `Drop`.
    permits: u32,
}

/// Error returned when the receiving end of an edge has been dropped. Carries
/// the value(s) that could not be delivered.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Closed<T>(pub T);

impl<T> Closed<T> {
    /// Returns the undelivered value(s).
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Closed").finish_non_exhaustive()
    }
}

impl<T> fmt::Display for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("edge closed: the receiver was dropped")
    }
}

impl<T> Error for Closed<T> {}

/// Error returned by [`EdgeSender::try_send`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The edge is at capacity; the item was not accepted. Only a
    /// [`OnFull::Block`] edge reports it: the drop policies never refuse.
    Full(T),
    /// The receiver has been dropped; the item was not accepted.
    Closed(T),
}

impl<T> TrySendError<T> {
    /// Returns the rejected item.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(item) | Self::Closed(item) => item,
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("edge full: capacity reached"),
            Self::Closed(_) => f.write_str("edge closed: the receiver was dropped"),
        }
    }
}

impl<T> Error for TrySendError<T> {}
