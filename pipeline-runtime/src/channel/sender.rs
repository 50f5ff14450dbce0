use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{TryAcquireError, mpsc};

use super::ring::Ring;
use super::{Chunk, Closed, Shared, TrySendError};
use crate::metrics::{EdgeQueue, EdgeStats};
use crate::options::{Backpressure, OnFull};

/// Where a sender's chunks go.
pub(super) enum Tx<T> {
    /// A `Block` edge: a channel, with capacity enforced by the semaphore.
    Channel(mpsc::UnboundedSender<Chunk<T>>),
    /// A dropping edge: the shared queue, which makes room itself.
    Ring(Arc<Ring<T>>),
}

/// The sending half of an edge; see [`edge`](super::edge) and
/// [`edge_with`](super::edge_with).
///
/// Items are buffered locally and shipped in chunks of `chunk` items; call
/// [`flush`](Self::flush) to ship a partial chunk. Clones share the edge's
/// capacity but each has its own local buffer (fan-in).
///
/// On an [`OnFull::Block`] edge, shipping a chunk waits until the edge has
/// room for all of it. On an [`OnFull::DropNewest`] or [`OnFull::DropOldest`]
/// edge it never waits: the part of the chunk that does not fit, or the
/// oldest queued items, are dropped and counted (see
/// [`count_drops_in`](Self::count_drops_in)).
///
/// # Cancellation
///
/// The async methods are cancel-safe in the sense that no item is lost: if a
/// future returned by `send`, `send_chunk` or `flush` is dropped while waiting
/// for capacity, every item passed so far stays in this sender's buffer and is
/// shipped, in order, by the next `send`/`flush` (or by `Drop`).
///
/// # Dropping
///
/// Callers should `flush().await` (or [`close`](Self::close)`.await`) before
/// dropping a sender, so buffered items are delivered under back-pressure.
/// As a safety net, `Drop` ships any remaining items without waiting. On a
/// `Block` edge it takes capacity permits if available and otherwise enqueues
/// the items anyway, temporarily exceeding the edge capacity by at most this
/// sender's buffer, rather than losing them. On a dropping edge it applies the
/// edge's policy, as any send does. Items are lost only if the receiver is
/// already gone (logged at `debug` level).
pub struct EdgeSender<T> {
    shared: Arc<Shared>,
    tx: Tx<T>,
    /// Partial chunk being filled by `send`.
    buf: Vec<T>,
    /// Sealed pieces (each `1..=capacity` items) awaiting capacity, in order;
    /// all of them precede `buf`.
    ready: VecDeque<Vec<T>>,
    chunk: usize,
    /// Where this sender's dropped items are counted, besides the edge.
    stats: Option<Arc<EdgeStats>>,
}

impl<T> EdgeSender<T> {
    pub(super) fn new(shared: Arc<Shared>, tx: Tx<T>, chunk: usize) -> Self {
        EdgeSender {
            shared,
            tx,
            buf: Vec::new(),
            ready: VecDeque::new(),
            chunk,
            stats: None,
        }
    }

    /// Counts the items this sender's sends drop (on a dropping edge) in
    /// `stats`, as well as on the edge. On a [`OnFull::DropOldest`] edge, an
    /// item evicted later is charged to the counters its sender had when it
    /// was queued. [`Output::new`](crate::fan::Output::new) calls this.
    ///
    /// It also attaches the edge's queue to `stats`, which then reports its
    /// depth ([`EdgeStats::queued`]).
    pub fn count_drops_in(&mut self, stats: Arc<EdgeStats>) {
        stats.attach_queue(Arc::clone(&self.shared) as Arc<dyn EdgeQueue>);
        self.stats = Some(stats);
    }

    /// Buffers `item`, shipping the buffer as a chunk once it holds `chunk`
    /// items. Shipping waits until the edge has room for the whole chunk
    /// (back-pressure) on a `Block` edge, and never waits on a dropping edge;
    /// otherwise this returns without waiting.
    ///
    /// # Errors
    ///
    /// Returns `Closed(item)` if the receiver has been dropped. Other items
    /// this sender still buffers are kept; [`flush`](Self::flush) or
    /// [`take_buffered`](Self::take_buffered) return them.
    pub async fn send(&mut self, item: T) -> Result<(), Closed<T>> {
        if self.is_closed() {
            return Err(Closed(item));
        }
        self.push(item);
        if self.buf.len() >= self.chunk {
            self.seal();
            if self.ship_ready().await.is_err() {
                return Err(Closed(self.pop_last()));
            }
        }
        Ok(())
    }

    /// Non-blocking [`send`](Self::send): buffers `item` and, if the buffer is
    /// full, ships it only if the edge has room right now (a dropping edge
    /// always makes room).
    ///
    /// # Errors
    ///
    /// - `Full(item)` if the buffer was full and a `Block` edge lacks
    ///   capacity; the item is not accepted, earlier items stay buffered.
    /// - `Closed(item)` if the receiver has been dropped.
    pub fn try_send(&mut self, item: T) -> Result<(), TrySendError<T>> {
        if self.is_closed() {
            return Err(TrySendError::Closed(item));
        }
        self.push(item);
        if self.buf.len() >= self.chunk {
            self.seal();
            match self.try_ship_ready() {
                Ok(true) => {}
                Ok(false) => return Err(TrySendError::Full(self.pop_last())),
                Err(()) => return Err(TrySendError::Closed(self.pop_last())),
            }
        }
        Ok(())
    }

    /// Ships `items` as one or more chunks, after anything already buffered
    /// (order is preserved). Chunks larger than the edge capacity are split
    /// into pieces of at most `capacity` items, so this never deadlocks.
    /// Waits for capacity for each piece on a `Block` edge. An empty `items`
    /// is a no-op.
    ///
    /// # Errors
    ///
    /// If the receiver has been dropped, returns every item this sender had
    /// not delivered: those buffered by earlier calls followed by those of
    /// `items` not yet shipped.
    pub async fn send_chunk(&mut self, items: Vec<T>) -> Result<(), Closed<Vec<T>>> {
        if items.is_empty() {
            return Ok(());
        }
        if self.is_closed() {
            let mut all = self.take_buffered();
            all.extend(items);
            return Err(Closed(all));
        }
        let capacity = self.shared.capacity;
        if !self.buf.is_empty() && self.buf.len() + items.len() <= capacity {
            self.buf.extend(items);
            self.seal();
        } else {
            self.seal();
            self.stage_pieces(items, capacity);
        }
        self.ship_ready()
            .await
            .map_err(|()| Closed(self.take_buffered()))
    }

    /// Ships any buffered items as a partial chunk, waiting for capacity on a
    /// `Block` edge. Returns immediately if nothing is buffered.
    ///
    /// # Errors
    ///
    /// If the receiver has been dropped, returns all undelivered buffered
    /// items, in order, and leaves the buffer empty.
    pub async fn flush(&mut self) -> Result<(), Closed<Vec<T>>> {
        if self.buf.is_empty() && self.ready.is_empty() {
            return Ok(());
        }
        self.seal();
        self.ship_ready()
            .await
            .map_err(|()| Closed(self.take_buffered()))
    }

    /// Non-blocking [`flush`](Self::flush): ships buffered items as far as the
    /// edge has room right now. Returns `Ok(true)` if nothing remains
    /// buffered, `Ok(false)` if some items are still waiting for capacity.
    ///
    /// # Errors
    ///
    /// As [`flush`](Self::flush).
    pub fn try_flush(&mut self) -> Result<bool, Closed<Vec<T>>> {
        if self.buf.is_empty() && self.ready.is_empty() {
            return Ok(true);
        }
        self.seal();
        self.try_ship_ready()
            .map_err(|()| Closed(self.take_buffered()))
    }

    /// Flushes, then drops this sender. When the last sender is gone the
    /// receiver sees end-of-stream after draining.
    ///
    /// # Errors
    ///
    /// As [`flush`](Self::flush).
    pub async fn close(mut self) -> Result<(), Closed<Vec<T>>> {
        self.flush().await
    }

    /// Number of items buffered in this sender and not yet shipped.
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.ready.iter().map(Vec::len).sum::<usize>()
    }

    /// Removes and returns all buffered, unshipped items, in order (e.g. to
    /// account for them as dropped after the edge closed).
    pub fn take_buffered(&mut self) -> Vec<T> {
        let mut out = self.ready.pop_front().unwrap_or_default();
        for piece in self.ready.drain(..) {
            out.extend(piece);
        }
        out.append(&mut self.buf);
        out
    }

    /// Whether the receiver has been dropped.
    pub fn is_closed(&self) -> bool {
        match &self.tx {
            Tx::Channel(tx) => tx.is_closed(),
            Tx::Ring(ring) => ring.is_closed(),
        }
    }

    /// The edge capacity in items (after clamping).
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// The chunk size in items (after clamping).
    pub fn chunk_size(&self) -> usize {
        self.chunk
    }

    /// Items currently queued on the edge (shipped, not yet received).
    pub fn queued_items(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
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

    /// The back-pressure strategy's shared state, for the producer side.
    pub(crate) fn link(&self) -> Option<&Arc<crate::channel::backpressure::Link>> {
        self.shared.link.as_ref()
    }

    fn push(&mut self, item: T) {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(self.chunk);
        }
        self.buf.push(item);
    }

    /// Moves the partial buffer, if any, to the back of the ready queue.
    fn seal(&mut self) {
        if !self.buf.is_empty() {
            self.ready.push_back(std::mem::take(&mut self.buf));
        }
    }

    /// Splits `items` into pieces of at most `max` items (all full but the
    /// last) and appends them to the ready queue. Linear in `items.len()`.
    fn stage_pieces(&mut self, mut items: Vec<T>, max: usize) {
        let mut tails = Vec::new();
        while items.len() > max {
            let tail_len = (items.len() - 1) % max + 1;
            tails.push(items.split_off(items.len() - tail_len));
        }
        self.ready.push_back(items);
        self.ready.extend(tails.into_iter().rev());
    }

    /// Removes the most recently buffered item, after a failed ship of the
    /// piece containing it (which is then the last ready piece).
    fn pop_last(&mut self) -> T {
        let item = self
            .ready
            .back_mut()
            .and_then(Vec::pop)
            .expect("the item just sent is the last one of the last unshipped piece");
        if self.ready.back().is_some_and(Vec::is_empty) {
            self.ready.pop_back();
        }
        item
    }

    /// Ships ready pieces in order, waiting for permits on a `Block` edge. On
    /// `Err` the receiver is gone and unshipped pieces remain in `ready`.
    async fn ship_ready(&mut self) -> Result<(), ()> {
        if let Tx::Ring(ring) = &self.tx {
            return push_ready(ring, &self.shared, &mut self.ready, self.stats.as_ref());
        }
        while let Some(front) = self.ready.front() {
            let n = permits_for(front);
            // Cancel-safe: nothing is moved out of `ready` before this await.
            let permit = self.shared.permits.acquire_many(n).await.map_err(|_| ())?;
            permit.forget();
            self.ship_front(n)?;
        }
        Ok(())
    }

    /// Ships ready pieces in order while permits are available without
    /// waiting. `Ok(true)`: all shipped; `Ok(false)`: out of capacity.
    fn try_ship_ready(&mut self) -> Result<bool, ()> {
        if let Tx::Ring(ring) = &self.tx {
            return push_ready(ring, &self.shared, &mut self.ready, self.stats.as_ref())
                .map(|()| true);
        }
        while let Some(front) = self.ready.front() {
            let n = permits_for(front);
            match self.shared.permits.try_acquire_many(n) {
                Ok(permit) => permit.forget(),
                Err(TryAcquireError::NoPermits) => return Ok(false),
                Err(TryAcquireError::Closed) => return Err(()),
            }
            self.ship_front(n)?;
        }
        Ok(true)
    }

    /// Enqueues the front ready piece holding `permits` permits. On failure
    /// (receiver gone) the piece is put back.
    fn ship_front(&mut self, permits: u32) -> Result<(), ()> {
        let Some(items) = self.ready.pop_front() else {
            return Ok(());
        };
        self.enqueue(items, permits).map_err(|items| {
            self.ready.push_front(items);
        })
    }

    /// Sends a piece into a `Block` edge's channel.
    fn enqueue(&self, items: Vec<T>, permits: u32) -> Result<(), Vec<T>> {
        let Tx::Channel(tx) = &self.tx else {
            unreachable!("only `Block` edges enqueue into a channel")
        };
        let len = items.len();
        self.shared.queued.fetch_add(len, Ordering::Relaxed);
        let sent = tx.send(Chunk { items, permits }).map_err(|err| {
            self.shared.queued.fetch_sub(len, Ordering::Relaxed);
            err.0.items
        });
        self.shared.queue_changed();
        sent
    }
}

/// Pushes every ready piece into a dropping edge's queue, in order. Never
/// waits. On `Err` the receiver is gone and unshipped pieces remain in
/// `ready`.
fn push_ready<T>(
    ring: &Ring<T>,
    shared: &Shared,
    ready: &mut VecDeque<Vec<T>>,
    stats: Option<&Arc<EdgeStats>>,
) -> Result<(), ()> {
    while let Some(items) = ready.pop_front() {
        if let Err(items) = ring.push(shared, items, stats) {
            ready.push_front(items);
            return Err(());
        }
    }
    Ok(())
}

/// Permits needed for a ready piece. Pieces never exceed the capacity, which
/// is clamped to `u32::MAX`, so the conversion cannot actually saturate.
fn permits_for<T>(piece: &[T]) -> u32 {
    u32::try_from(piece.len()).unwrap_or(u32::MAX)
}

impl<T> Clone for EdgeSender<T> {
    /// Creates another sender on the same edge with its own, empty buffer.
    /// It counts its drops where this one does, until told otherwise.
    fn clone(&self) -> Self {
        let tx = match &self.tx {
            Tx::Channel(tx) => Tx::Channel(tx.clone()),
            Tx::Ring(ring) => {
                ring.add_sender();
                Tx::Ring(Arc::clone(ring))
            }
        };
        Self {
            shared: Arc::clone(&self.shared),
            tx,
            buf: Vec::new(),
            ready: VecDeque::new(),
            chunk: self.chunk,
            stats: self.stats.clone(),
        }
    }
}

impl<T> Drop for EdgeSender<T> {
    /// Best-effort, non-blocking delivery of buffered items; see the type's
    /// documentation. Prefer `flush().await` or `close().await`.
    fn drop(&mut self) {
        self.seal();
        match &self.tx {
            Tx::Ring(ring) => {
                let _ = push_ready(ring, &self.shared, &mut self.ready, self.stats.as_ref());
                ring.remove_sender();
            }
            Tx::Channel(_) => {
                while let Some(items) = self.ready.pop_front() {
                    let n = permits_for(&items);
                    let permits = match self.shared.permits.try_acquire_many(n) {
                        Ok(permit) => {
                            permit.forget();
                            n
                        }
                        // Over-commit rather than lose items: no permits are
                        // held, so the receiver returns none for this chunk.
                        Err(TryAcquireError::NoPermits) => 0,
                        Err(TryAcquireError::Closed) => {
                            self.ready.push_front(items);
                            break;
                        }
                    };
                    if let Err(items) = self.enqueue(items, permits) {
                        self.ready.push_front(items);
                        break;
                    }
                }
            }
        }
        let lost = self.buffered();
        if lost > 0 {
            tracing::debug!(
                lost,
                "edge sender dropped after its receiver; buffered items discarded"
            );
        }
    }
}

impl<T> fmt::Debug for EdgeSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EdgeSender")
            .field("capacity", &self.shared.capacity)
            .field("chunk", &self.chunk)
            .field("on_full", &self.shared.on_full)
            .field("backpressure", &self.backpressure())
            .field("buffered", &self.buffered())
            .field("queued", &self.queued_items())
            .field("dropped", &self.dropped_items())
            .field("closed", &self.is_closed())
            .finish()
    }
}
