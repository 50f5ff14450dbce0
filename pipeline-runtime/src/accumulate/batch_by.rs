//! The built-in accumulator of `accumulate(key = ..)` and `batch(..)`:
//! [`BatchBy`].

use std::hash::Hash;

use tokio::time::Instant;

use super::codec::{Spill, SpillError};
use super::{Accumulator, Policy};
use crate::batch::Batch;

/// A new batch never reserves room for more items than this up front; it
/// grows beyond it as items arrive.
const MAX_RESERVE: usize = 4096;

/// Before any batch has been flushed, a new batch reserves room for at most
/// this many items (and at most `max_items`), so that many sparse keys do
/// not each reserve a large batch they never fill.
const FIRST_RESERVE: usize = 128;

/// Gathers the items of each key into a [`Batch<T, K>`], in arrival order:
/// the accumulator of `accumulate(key = |item| ..)`, and, with the key
/// `()`, of `batch(..)`.
///
/// A batch is never complete on its own: the policy's limits, latency, ttl
/// and the end of the input flush it. Its window starts when its first item
/// arrives and ends when it is flushed (in an accumulation, which reads the
/// clock once per chunk of input: when it took the chunk holding that item,
/// and when it let go of the batch); its byte total is the sum of its
/// items' sizes. A batch counts its items and bytes itself
/// ([`COUNTS_ITSELF`](Accumulator::COUNTS_ITSELF)), and the accumulation
/// keeps the window start for it ([`flush_window`](Accumulator::flush_window)),
/// so that it keeps nothing else per key. Flushed without a window start
/// ([`flush`](Accumulator::flush), [`flush_at`](Accumulator::flush_at), as
/// when a `BatchBy` is used by hand), a batch's window is empty, at the
/// time of the flush.
///
/// A new batch reserves room for as many items as the last batch flushed
/// had (at most `max_items`, and at most 4096), and for at most 128 before
/// the first flush, so full batches are allocated once and sparse keys stay
/// small.
///
/// ```
/// use pipeline_runtime::accumulate::{Accumulator, batch_by};
///
/// let mut by_parity = batch_by(|n: &u32| n % 2);
/// let mut odd = by_parity.open(&1);
/// by_parity.update_sized(&1, &mut odd, 3, 4);
/// by_parity.update_sized(&1, &mut odd, 5, 4);
/// let batch = by_parity.flush(1, odd).unwrap();
/// assert_eq!((batch.key(), batch.items(), batch.total_bytes()), (&1, &[3, 5][..], 8));
/// ```
#[derive(Debug, Clone)]
pub struct BatchBy<F> {
    key: F,
    /// Room a new batch reserves.
    reserve: usize,
    /// The most `reserve` may become.
    cap: usize,
}

/// `accumulate(key = f)`: batches items per key `f(&item)`.
pub fn batch_by<T, K, F>(key: F) -> BatchBy<F>
where
    F: FnMut(&T) -> K,
{
    BatchBy {
        key,
        reserve: 0,
        cap: MAX_RESERVE,
    }
}

/// `batch(..)`: batches all items together, under the key `()`.
pub fn batch<T>() -> BatchBy<fn(&T)> {
    BatchBy {
        key: |_| (),
        reserve: 0,
        cap: MAX_RESERVE,
    }
}

impl<F> BatchBy<F> {
    /// Makes new batches reserve room for `items` items up front (at most
    /// 4096) until the first batch is flushed; then each reserves as many as
    /// the last one flushed had. [`configure`](Accumulator::configure) sets
    /// it from `max_items`.
    pub fn with_capacity(mut self, items: usize) -> Self {
        self.reserve = items.min(self.cap);
        self
    }
}

/// The state of one key in a [`BatchBy`]: the batch being gathered, its
/// items and their byte total.
///
/// Kept small, as an accumulation holds one per open key: the window start
/// is not in it but kept by the accumulation, which hands it to
/// [`flush_window`](Accumulator::flush_window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchState<T> {
    items: Vec<T>,
    bytes: u64,
}

impl<T> BatchState<T> {
    /// The items gathered so far, in order.
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// The items' sizes, summed.
    pub fn total_bytes(&self) -> u64 {
        self.bytes
    }
}

impl<T, K, F> Accumulator<T> for BatchBy<F>
where
    F: FnMut(&T) -> K,
    K: Hash + Eq + Clone,
{
    type Key = K;
    type State = BatchState<T>;
    type Out = Batch<T, K>;

    #[inline]
    fn key(&mut self, item: &T) -> K {
        (self.key)(item)
    }

    #[inline]
    fn open(&mut self, _: &K) -> BatchState<T> {
        BatchState {
            items: Vec::with_capacity(self.reserve),
            bytes: 0,
        }
    }

    #[inline]
    fn update(&mut self, key: &K, state: &mut BatchState<T>, item: T) {
        self.update_sized(key, state, item, 0);
    }

    #[inline]
    fn update_sized(&mut self, _: &K, state: &mut BatchState<T>, item: T, size: u64) {
        state.items.push(item);
        state.bytes += size;
    }

    /// A batch counts its items (its length) and their sizes (its byte
    /// total): the engine reads them rather than counting.
    const COUNTS_ITSELF: bool = true;

    #[inline]
    fn held(&self, state: &BatchState<T>) -> (usize, u64) {
        (state.items.len(), state.bytes)
    }

    /// The window is empty, now.
    fn flush(&mut self, key: K, state: BatchState<T>) -> Option<Batch<T, K>> {
        self.flush_at(key, state, Instant::now())
    }

    /// The window is empty, at `now`.
    fn flush_at(&mut self, key: K, state: BatchState<T>, now: Instant) -> Option<Batch<T, K>> {
        self.flush_window(key, state, now, now)
    }

    /// The window starts at `opened`, the engine's time for the chunk that
    /// held the first item, and ends at `now`, its time when it let go of
    /// the batch.
    #[inline]
    fn flush_window(
        &mut self,
        key: K,
        state: BatchState<T>,
        opened: Instant,
        now: Instant,
    ) -> Option<Batch<T, K>> {
        self.reserve = state.items.len().min(self.cap);
        Some(Batch::new(key, state.items, opened, now, state.bytes))
    }

    /// The state, plus the items' own size times the room the batch has
    /// for them (memory they point to is not counted).
    fn state_bytes(&self, state: &BatchState<T>) -> usize {
        size_of::<BatchState<T>>() + state.items.capacity() * size_of::<T>()
    }

    fn configure(&mut self, policy: &Policy) {
        if let Some(max) = policy.max_items {
            self.cap = max.clamp(1, MAX_RESERVE);
            self.reserve = self.cap.min(FIRST_RESERVE);
        }
    }
}

/// Encoded as its items (a `Vec<T>`) and its byte total (`u64`).
impl<T: Spill> Spill for BatchState<T> {
    const MIN_ENCODED_LEN: usize = 8 + 8;

    fn encode(&self, out: &mut Vec<u8>) {
        self.items.encode(out);
        self.bytes.encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        let items = Vec::<T>::decode(input)?;
        let bytes = u64::decode(input)?;
        Ok(BatchState { items, bytes })
    }
}
