//! Batched, bounded edges between pipeline tasks.
//!
//! An edge carries `Vec<T>` chunks, but its capacity is counted in **items**:
//! at most `capacity` items are queued between the senders and the receiver
//! at any time (see [`EdgeSender`]'s `Drop` for the one documented exception).
//! A [`Semaphore`] with `capacity` permits enforces the bound: a sender
//! acquires one permit per item of a chunk before enqueueing it, and the
//! receiver returns them when it takes the chunk. Waiting for permits is the
//! back-pressure.
//!
//! Each [`EdgeSender`] accumulates items in a local buffer and ships it as a
//! chunk when it holds `chunk` items. The runtime calls
//! [`EdgeSender::flush`] whenever its own input is momentarily empty, so
//! batching amortises per-item channel costs without ever adding latency.
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

use std::collections::VecDeque;
use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Semaphore, TryAcquireError, mpsc};

/// Largest supported capacity: permits are acquired in `u32` batches and the
/// semaphore has its own upper limit.
const MAX_CAPACITY: usize = if (u32::MAX as usize) < Semaphore::MAX_PERMITS {
    u32::MAX as usize
} else {
    Semaphore::MAX_PERMITS
};

/// Creates a batched bounded edge.
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
    let capacity = capacity.clamp(1, MAX_CAPACITY);
    let chunk = chunk.clamp(1, capacity);
    let shared = Arc::new(Shared {
        permits: Semaphore::new(capacity),
        queued: AtomicUsize::new(0),
        capacity,
    });
    let (tx, rx) = mpsc::unbounded_channel();
    let sender = EdgeSender {
        shared: Arc::clone(&shared),
        tx,
        buf: Vec::new(),
        ready: VecDeque::new(),
        chunk,
    };
    (sender, EdgeReceiver { shared, rx })
}

/// State shared by all ends of one edge.
struct Shared {
    /// One permit per item of free capacity. Closed when the receiver drops.
    permits: Semaphore,
    /// Items currently in the chunk queue.
    queued: AtomicUsize,
    /// Clamped capacity in items.
    capacity: usize,
}

/// A chunk in flight, with the number of permits it holds.
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
    /// The edge is at capacity; the item was not accepted.
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

/// The sending half of an edge; see [`edge`].
///
/// Items are buffered locally and shipped in chunks of `chunk` items; call
/// [`flush`](Self::flush) to ship a partial chunk. Clones share the edge's
/// capacity but each has its own local buffer (fan-in).
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
/// As a safety net, `Drop` ships any remaining items without waiting: it takes
/// capacity permits if available and otherwise enqueues the items anyway,
/// temporarily exceeding the edge capacity by at most this sender's buffer,
/// rather than losing them. Items are lost only if the receiver is already
/// gone (logged at `debug` level).
pub struct EdgeSender<T> {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Chunk<T>>,
    /// Partial chunk being filled by `send`.
    buf: Vec<T>,
    /// Sealed pieces (each `1..=capacity` items) awaiting capacity, in order;
    /// all of them precede `buf`.
    ready: VecDeque<Vec<T>>,
    chunk: usize,
}

impl<T> EdgeSender<T> {
    /// Buffers `item`, shipping the buffer as a chunk once it holds `chunk`
    /// items. Shipping waits until the edge has room for the whole chunk
    /// (back-pressure); otherwise this returns without waiting.
    ///
    /// # Errors
    ///
    /// Returns `Closed(item)` if the receiver has been dropped. Other items
    /// this sender still buffers are kept; [`flush`](Self::flush) or
    /// [`take_buffered`](Self::take_buffered) return them.
    pub async fn send(&mut self, item: T) -> Result<(), Closed<T>> {
        if self.tx.is_closed() {
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
    /// full, ships it only if the edge has room right now.
    ///
    /// # Errors
    ///
    /// - `Full(item)` if the buffer was full and the edge lacks capacity; the
    ///   item is not accepted, earlier items stay buffered.
    /// - `Closed(item)` if the receiver has been dropped.
    pub fn try_send(&mut self, item: T) -> Result<(), TrySendError<T>> {
        if self.tx.is_closed() {
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
    /// Waits for capacity for each piece. An empty `items` is a no-op.
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
        if self.tx.is_closed() {
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

    /// Ships any buffered items as a partial chunk, waiting for capacity.
    /// Returns immediately if nothing is buffered.
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
        self.tx.is_closed()
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

    /// Ships ready pieces in order, waiting for permits. On `Err` the receiver
    /// is gone and unshipped pieces remain in `ready`.
    async fn ship_ready(&mut self) -> Result<(), ()> {
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

    fn enqueue(&self, items: Vec<T>, permits: u32) -> Result<(), Vec<T>> {
        let len = items.len();
        self.shared.queued.fetch_add(len, Ordering::Relaxed);
        self.tx.send(Chunk { items, permits }).map_err(|err| {
            self.shared.queued.fetch_sub(len, Ordering::Relaxed);
            err.0.items
        })
    }
}

/// Permits needed for a ready piece. Pieces never exceed the capacity, which
/// is clamped to `u32::MAX`, so the conversion cannot actually saturate.
fn permits_for<T>(piece: &[T]) -> u32 {
    u32::try_from(piece.len()).unwrap_or(u32::MAX)
}

impl<T> Clone for EdgeSender<T> {
    /// Creates another sender on the same edge with its own, empty buffer.
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            tx: self.tx.clone(),
            buf: Vec::new(),
            ready: VecDeque::new(),
            chunk: self.chunk,
        }
    }
}

impl<T> Drop for EdgeSender<T> {
    /// Best-effort, non-blocking delivery of buffered items; see the type's
    /// documentation. Prefer `flush().await` or `close().await`.
    fn drop(&mut self) {
        if self.buf.is_empty() && self.ready.is_empty() {
            return;
        }
        self.seal();
        while let Some(items) = self.ready.pop_front() {
            let n = permits_for(&items);
            let permits = match self.shared.permits.try_acquire_many(n) {
                Ok(permit) => {
                    permit.forget();
                    n
                }
                // Over-commit rather than lose items: no permits are held, so
                // the receiver returns none for this chunk.
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
            .field("buffered", &self.buffered())
            .field("queued", &self.queued_items())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The receiving half of an edge; see [`edge`].
///
/// Dropping the receiver closes the edge: blocked and future sends fail with
/// [`Closed`], returning their items.
pub struct EdgeReceiver<T> {
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Chunk<T>>,
}

impl<T> EdgeReceiver<T> {
    /// Waits for the next chunk and returns it, freeing its capacity for the
    /// senders. Returns `None` once every sender has been dropped and the
    /// queue is drained. Cancel-safe.
    pub async fn recv_chunk(&mut self) -> Option<Vec<T>> {
        let chunk = self.rx.recv().await?;
        Some(self.release(chunk))
    }

    /// Returns the next chunk if one is queued right now, without waiting.
    pub fn try_recv_chunk(&mut self) -> Option<Vec<T>> {
        let chunk = self.rx.try_recv().ok()?;
        Some(self.release(chunk))
    }

    /// Appends whole chunks to `out`: waits for one chunk, then keeps taking
    /// chunks that are immediately available while `out.len() < max`. Since
    /// chunks are not split, `out` may end up longer than `max`.
    ///
    /// Returns `false` only when the edge is closed and drained (nothing was
    /// appended); `true` otherwise. Cancel-safe: if cancelled, nothing was
    /// taken from the edge.
    pub async fn recv_into(&mut self, out: &mut Vec<T>, max: usize) -> bool {
        let Some(first) = self.recv_chunk().await else {
            return false;
        };
        if out.is_empty() && out.capacity() <= first.capacity() {
            // Reuse the chunk's allocation instead of copying.
            *out = first;
        } else {
            out.extend(first);
        }
        while out.len() < max {
            match self.try_recv_chunk() {
                Some(chunk) => out.extend(chunk),
                None => break,
            }
        }
        true
    }

    /// Items currently queued on the edge (shipped by senders, not yet
    /// received). Never above [`capacity`](Self::capacity) except transiently
    /// after a sender was dropped with unflushed items.
    pub fn queued_items(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// The edge capacity in items (after clamping).
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    fn release(&self, chunk: Chunk<T>) -> Vec<T> {
        self.shared
            .queued
            .fetch_sub(chunk.items.len(), Ordering::Relaxed);
        if chunk.permits > 0 {
            self.shared.permits.add_permits(chunk.permits as usize);
        }
        chunk.items
    }
}

impl<T> Drop for EdgeReceiver<T> {
    fn drop(&mut self) {
        // Wake senders blocked on capacity; they observe `Closed`.
        self.shared.permits.close();
        self.rx.close();
    }
}

impl<T> fmt::Debug for EdgeReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EdgeReceiver")
            .field("capacity", &self.shared.capacity)
            .field("queued", &self.queued_items())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::time::Duration;
    use tokio::time::timeout;

    /// Drains every remaining chunk after all senders are gone.
    async fn drain<T>(rx: &mut EdgeReceiver<T>) -> Vec<Vec<T>> {
        let mut chunks = Vec::new();
        while let Some(chunk) = rx.recv_chunk().await {
            chunks.push(chunk);
        }
        chunks
    }

    #[test]
    fn clamps_capacity_and_chunk() {
        let (tx, rx) = edge::<u8>(0, 0);
        assert_eq!((tx.capacity(), tx.chunk_size(), rx.capacity()), (1, 1, 1));
        let (tx, _rx) = edge::<u8>(4, 100);
        assert_eq!((tx.capacity(), tx.chunk_size()), (4, 4));
        let (tx, _rx) = edge::<u8>(usize::MAX, 8);
        assert_eq!(tx.capacity(), MAX_CAPACITY);
    }

    #[tokio::test]
    async fn items_arrive_in_order() {
        let (mut tx, mut rx) = edge(64, 4);
        for i in 0..10 {
            tx.send(i).await.unwrap();
        }
        tx.close().await.unwrap();
        let chunks = drain(&mut rx).await;
        assert_eq!(chunks, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
    }

    #[tokio::test]
    async fn chunk_is_sent_only_when_full() {
        let (mut tx, mut rx) = edge(16, 3);
        tx.send('a').await.unwrap();
        tx.send('b').await.unwrap();
        assert_eq!(rx.try_recv_chunk(), None);
        assert_eq!(tx.buffered(), 2);
        assert_eq!(rx.queued_items(), 0);

        tx.send('c').await.unwrap();
        assert_eq!(tx.buffered(), 0);
        assert_eq!(rx.queued_items(), 3);
        assert_eq!(rx.try_recv_chunk(), Some(vec!['a', 'b', 'c']));
        assert_eq!(rx.queued_items(), 0);
    }

    #[tokio::test]
    async fn flush_sends_partial_chunk() {
        let (mut tx, mut rx) = edge(16, 8);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        assert_eq!(rx.try_recv_chunk(), None);
        tx.flush().await.unwrap();
        assert_eq!(rx.try_recv_chunk(), Some(vec![1, 2]));
        // Flushing an empty buffer sends nothing.
        tx.flush().await.unwrap();
        assert_eq!(rx.try_recv_chunk(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn sender_blocks_at_capacity_and_resumes_after_recv() {
        let (mut tx, mut rx) = edge(4, 2);
        for i in 0..4 {
            tx.send(i).await.unwrap();
        }
        assert_eq!(rx.queued_items(), 4);

        // The fifth item is only buffered; the sixth completes a chunk that
        // cannot fit.
        tx.send(4).await.unwrap();
        assert!(
            timeout(Duration::from_secs(60), tx.send(5)).await.is_err(),
            "send must wait for capacity"
        );
        // The cancelled send left item 5 buffered, nothing was lost.
        assert_eq!(tx.buffered(), 2);

        assert_eq!(rx.recv_chunk().await, Some(vec![0, 1]));
        // Capacity for two items is free again: the buffered chunk ships.
        tx.flush()
            .now_or_never()
            .expect("flush must not block once capacity is free")
            .unwrap();
        drop(tx);
        assert_eq!(drain(&mut rx).await, vec![vec![2, 3], vec![4, 5]]);
    }

    #[tokio::test(start_paused = true)]
    async fn blocked_sender_is_woken_by_receiver() {
        let (mut tx, mut rx) = edge(2, 2);
        let producer = tokio::spawn(async move {
            for i in 0..6 {
                tx.send(i).await.unwrap();
            }
            tx.close().await.unwrap();
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!producer.is_finished());
        assert_eq!(rx.queued_items(), 2);
        let chunks = drain(&mut rx).await;
        assert_eq!(chunks, vec![vec![0, 1], vec![2, 3], vec![4, 5]]);
        producer.await.unwrap();
    }

    #[tokio::test]
    async fn capacity_counts_items_not_chunks() {
        // Three single-item chunks fill a capacity of 3 items.
        let (mut tx, mut rx) = edge(3, 1);
        for i in 0..3 {
            tx.send(i).await.unwrap();
        }
        assert_eq!(rx.queued_items(), 3);
        assert!(tx.send(3).now_or_never().is_none(), "fourth item must wait");

        // A chunk of 2 items needs 2 permits: one free slot is not enough.
        let (mut tx, mut rx2) = edge(3, 1);
        tx.send(0).await.unwrap();
        tx.send(1).await.unwrap();
        assert!(tx.send_chunk(vec![2, 3]).now_or_never().is_none());
        assert_eq!(rx2.try_recv_chunk(), Some(vec![0]));
        tx.flush().now_or_never().unwrap().unwrap();
        assert_eq!(rx2.try_recv_chunk(), Some(vec![1]));
        assert_eq!(rx2.try_recv_chunk(), Some(vec![2, 3]));

        assert_eq!(rx.try_recv_chunk(), Some(vec![0]));
    }

    #[tokio::test(start_paused = true)]
    async fn cloned_senders_all_deliver_then_end_of_stream() {
        let (tx, mut rx) = edge(8, 4);
        let mut producers = Vec::new();
        for p in 0..3u32 {
            let mut tx = tx.clone();
            producers.push(tokio::spawn(async move {
                for i in 0..50u32 {
                    tx.send(p * 1000 + i).await.unwrap();
                    if i % 7 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                tx.close().await.unwrap();
            }));
        }
        drop(tx);

        let mut received = Vec::new();
        while let Some(chunk) = rx.recv_chunk().await {
            assert!(chunk.len() <= 4);
            received.extend(chunk);
        }
        assert_eq!(received.len(), 150);
        for p in 0..3u32 {
            let from_p: Vec<u32> = received.iter().copied().filter(|x| x / 1000 == p).collect();
            let expected: Vec<u32> = (0..50).map(|i| p * 1000 + i).collect();
            assert_eq!(from_p, expected, "per-sender order is preserved");
        }
        for producer in producers {
            producer.await.unwrap();
        }
        assert_eq!(rx.recv_chunk().await, None);
    }

    #[tokio::test]
    async fn dropping_sender_delivers_buffered_items() {
        let (mut tx, mut rx) = edge(8, 4);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        drop(tx);
        assert_eq!(rx.recv_chunk().await, Some(vec![1, 2]));
        assert_eq!(rx.recv_chunk().await, None);
    }

    #[tokio::test]
    async fn dropping_sender_at_capacity_overcommits_instead_of_losing() {
        let (mut tx, mut rx) = edge(2, 2);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        tx.send(3).await.unwrap();
        drop(tx);
        assert_eq!(rx.queued_items(), 3);
        assert_eq!(drain(&mut rx).await, vec![vec![1, 2], vec![3]]);
        assert_eq!(rx.queued_items(), 0);
    }

    #[tokio::test]
    async fn overcommitted_chunk_does_not_inflate_capacity() {
        let (mut tx, mut rx) = edge(2, 2);
        let mut extra = tx.clone();
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        extra.send(3).await.unwrap();
        drop(extra); // over-committed: no permits held
        assert_eq!(rx.recv_chunk().await, Some(vec![1, 2]));
        assert_eq!(rx.recv_chunk().await, Some(vec![3]));
        // Exactly `capacity` permits are free again, not more.
        tx.send(4).await.unwrap();
        tx.send(5).await.unwrap();
        tx.send(6).await.unwrap();
        assert!(tx.send(7).now_or_never().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn oversized_send_chunk_is_split_without_deadlock() {
        let (mut tx, mut rx) = edge(3, 2);
        let consumer = tokio::spawn(async move { drain(&mut rx).await });
        tx.send(0).await.unwrap();
        tx.send_chunk((1..=10).collect()).await.unwrap();
        drop(tx);
        let chunks = consumer.await.unwrap();
        assert!(chunks.iter().all(|c| c.len() <= 3), "{chunks:?}");
        assert_eq!(chunks.concat(), (0..=10).collect::<Vec<_>>());
        assert_eq!(
            chunks[1..],
            [vec![1, 2, 3], vec![4, 5, 6], vec![7, 8, 9], vec![10]]
        );
    }

    #[tokio::test]
    async fn send_chunk_merges_small_chunk_with_partial_buffer() {
        let (mut tx, mut rx) = edge(8, 4);
        tx.send(1).await.unwrap();
        tx.send_chunk(vec![2, 3]).await.unwrap();
        assert_eq!(rx.try_recv_chunk(), Some(vec![1, 2, 3]));
        tx.send_chunk(Vec::new()).await.unwrap();
        assert_eq!(rx.try_recv_chunk(), None);
    }

    #[tokio::test]
    async fn recv_into_appends_available_chunks_up_to_max() {
        let (mut tx, mut rx) = edge(16, 2);
        for i in 0..7 {
            tx.send(i).await.unwrap();
        }
        tx.flush().await.unwrap();

        let mut out = Vec::new();
        assert!(rx.recv_into(&mut out, 3).await);
        // Whole chunks: [0, 1] then [2, 3] since 2 < 3.
        assert_eq!(out, vec![0, 1, 2, 3]);

        out.clear();
        assert!(rx.recv_into(&mut out, 100).await);
        assert_eq!(out, vec![4, 5, 6]);

        drop(tx);
        let mut rest = vec![42];
        assert!(!rx.recv_into(&mut rest, 10).await);
        assert_eq!(rest, vec![42]);
    }

    #[tokio::test]
    async fn dropped_receiver_returns_items_to_senders() {
        let (mut tx, rx) = edge(4, 2);
        tx.send(1).await.unwrap();
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.send(2).await, Err(Closed(2)));
        assert_eq!(tx.flush().await, Err(Closed(vec![1])));
        assert_eq!(tx.send_chunk(vec![3, 4]).await, Err(Closed(vec![3, 4])));
        assert_eq!(tx.try_send(5), Err(TrySendError::Closed(5)));
        assert_eq!(
            Closed(7).to_string(),
            "edge closed: the receiver was dropped"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_receiver_wakes_blocked_sender() {
        let (mut tx, mut rx) = edge(2, 2);
        let producer = tokio::spawn(async move {
            for i in 0..6 {
                if let Err(Closed(item)) = tx.send(i).await {
                    return (item, tx.take_buffered());
                }
            }
            panic!("the edge should have closed");
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(rx.try_recv_chunk(), Some(vec![0, 1]));
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Items 2 and 3 now hold the capacity, so the chunk [4, 5] waits.
        assert_eq!(rx.queued_items(), 2);
        drop(rx);
        let (failed, rest) = producer.await.unwrap();
        assert_eq!(failed, 5);
        assert_eq!(rest, vec![4]);
    }

    #[tokio::test]
    async fn try_send_and_try_flush() {
        let (mut tx, mut rx) = edge(2, 2);
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.try_send(2), Ok(()));
        assert_eq!(tx.try_send(3), Ok(()), "buffered locally");
        assert_eq!(tx.try_send(4), Err(TrySendError::Full(4)));
        assert_eq!(tx.buffered(), 1);
        assert_eq!(tx.try_flush(), Ok(false));

        assert_eq!(rx.try_recv_chunk(), Some(vec![1, 2]));
        assert_eq!(tx.try_flush(), Ok(true));
        assert_eq!(tx.buffered(), 0);
        assert_eq!(rx.try_recv_chunk(), Some(vec![3]));
        assert_eq!(TrySendError::Full(9).into_inner(), 9);
    }
}
