//! The built-in accumulator of `accumulate(key = ..)` and `batch(..)`:
//! [`BatchBy`].

use std::hash::Hash;
use std::marker::PhantomData;

use tokio::time::Instant;

use std::fmt;

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
/// `N` is how a batch keeps its byte total: a `u64` sum of its items'
/// sizes, or, for items that all weigh their in-memory size, nothing at
/// all ([`FixedSize`], from [`with_fixed_size`](BatchBy::with_fixed_size)),
/// which makes every open key's state 8 bytes smaller.
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
pub struct BatchBy<F, N = u64> {
    key: F,
    /// Room a new batch reserves.
    reserve: usize,
    /// The most `reserve` may become.
    cap: usize,
    total: PhantomData<fn() -> N>,
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
        total: PhantomData,
    }
}

/// `batch(..)`: batches all items together, under the key `()`.
pub fn batch<T>() -> BatchBy<fn(&T)> {
    BatchBy {
        key: |_| (),
        reserve: 0,
        cap: MAX_RESERVE,
        total: PhantomData,
    }
}

impl<F, N> BatchBy<F, N> {
    /// Makes new batches reserve room for `items` items up front (at most
    /// 4096) until the first batch is flushed; then each reserves as many as
    /// the last one flushed had. [`configure`](Accumulator::configure) sets
    /// it from `max_items`.
    pub fn with_capacity(mut self, items: usize) -> Self {
        self.reserve = items.min(self.cap);
        self
    }

    /// Keeps no byte total in each batch: every item counts as its
    /// in-memory size, `size_of::<T>()`, so a batch's byte total is its
    /// length times that, and a key's state is 8 bytes smaller (which
    /// shows when there are many keys).
    ///
    /// Only for an accumulation that measures items with
    /// [`default_size`](super::default_size) (no `size` function, no
    /// `max_bytes`): it checks limits and counts bytes held with the sizes
    /// its size function gives, and a batch's total must agree with them.
    /// The `pipeline!` macro makes this choice itself.
    ///
    /// ```
    /// use pipeline_runtime::accumulate::{Accumulator, batch_by};
    ///
    /// let mut by_parity = batch_by(|n: &u32| n % 2).with_fixed_size();
    /// let mut odd = by_parity.open(&1);
    /// by_parity.update_sized(&1, &mut odd, 3, 4);
    /// by_parity.update_sized(&1, &mut odd, 5, 4);
    /// let batch = by_parity.flush(1, odd).unwrap();
    /// assert_eq!(batch.total_bytes(), 2 * 4);
    /// ```
    pub fn with_fixed_size(self) -> BatchBy<F, FixedSize> {
        BatchBy {
            key: self.key,
            reserve: self.reserve,
            cap: self.cap,
            total: PhantomData,
        }
    }
}

/// How a [`BatchState`] keeps the byte total of its items of type `T`.
pub trait ByteTotal<T>: Copy + Default + fmt::Debug {
    /// Adds an item of `size` bytes.
    fn add(&mut self, size: u64);

    /// The total of a batch of `items` items.
    fn total(&self, items: usize) -> u64;
}

/// The sum of the sizes given, whatever the items.
impl<T> ByteTotal<T> for u64 {
    #[inline(always)]
    fn add(&mut self, size: u64) {
        *self += size;
    }

    #[inline(always)]
    fn total(&self, _: usize) -> u64 {
        *self
    }
}

/// A byte total that is not kept, because every item weighs its
/// in-memory size: see [`BatchBy::with_fixed_size`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedSize;

impl<T> ByteTotal<T> for FixedSize {
    #[inline(always)]
    fn add(&mut self, _: u64) {}

    #[inline(always)]
    fn total(&self, items: usize) -> u64 {
        (items as u64).saturating_mul(size_of::<T>() as u64)
    }
}

/// Encoded as nothing: there is nothing to keep.
impl Spill for FixedSize {
    fn encode(&self, _: &mut Vec<u8>) {}

    fn decode(_: &mut &[u8]) -> Result<Self, SpillError> {
        Ok(FixedSize)
    }
}

/// The state of one key in a [`BatchBy`]: the batch being gathered, its
/// items and their byte total (`N`: a `u64`, or [`FixedSize`], kept by
/// the length).
///
/// Kept small, as an accumulation holds one per open key: the window start
/// is not in it but kept by the accumulation, which hands it to
/// [`flush_window`](Accumulator::flush_window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchState<T, N = u64> {
    items: Vec<T>,
    bytes: N,
}

impl<T, N: ByteTotal<T>> BatchState<T, N> {
    /// The items gathered so far, in order.
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// The items' sizes, summed.
    pub fn total_bytes(&self) -> u64 {
        self.bytes.total(self.items.len())
    }
}

impl<T, K, F, N> Accumulator<T> for BatchBy<F, N>
where
    F: FnMut(&T) -> K,
    K: Hash + Eq + Clone,
    N: ByteTotal<T>,
{
    type Key = K;
    type State = BatchState<T, N>;
    type Out = Batch<T, K>;

    #[inline]
    fn key(&mut self, item: &T) -> K {
        (self.key)(item)
    }

    #[inline]
    fn open(&mut self, _: &K) -> BatchState<T, N> {
        BatchState {
            items: Vec::with_capacity(self.reserve),
            bytes: N::default(),
        }
    }

    #[inline]
    fn update(&mut self, key: &K, state: &mut BatchState<T, N>, item: T) {
        self.update_sized(key, state, item, 0);
    }

    #[inline]
    fn update_sized(&mut self, _: &K, state: &mut BatchState<T, N>, item: T, size: u64) {
        state.items.push(item);
        state.bytes.add(size);
    }

    /// A batch counts its items (its length) and their sizes (its byte
    /// total): the engine reads them rather than counting.
    const COUNTS_ITSELF: bool = true;

    #[inline]
    fn held(&self, state: &BatchState<T, N>) -> (usize, u64) {
        (state.items.len(), state.total_bytes())
    }

    /// The window is empty, now.
    fn flush(&mut self, key: K, state: BatchState<T, N>) -> Option<Batch<T, K>> {
        self.flush_at(key, state, Instant::now())
    }

    /// The window is empty, at `now`.
    fn flush_at(&mut self, key: K, state: BatchState<T, N>, now: Instant) -> Option<Batch<T, K>> {
        self.flush_window(key, state, now, now)
    }

    /// The window starts at `opened`, the engine's time for the chunk that
    /// held the first item, and ends at `now`, its time when it let go of
    /// the batch.
    #[inline]
    fn flush_window(
        &mut self,
        key: K,
        state: BatchState<T, N>,
        opened: Instant,
        now: Instant,
    ) -> Option<Batch<T, K>> {
        self.reserve = state.items.len().min(self.cap);
        let bytes = state.total_bytes();
        Some(Batch::new(key, state.items, opened, now, bytes))
    }

    /// The state, plus the items' own size times the room the batch has
    /// for them (memory they point to is not counted).
    fn state_bytes(&self, state: &BatchState<T, N>) -> usize {
        size_of::<BatchState<T, N>>() + state.items.capacity() * size_of::<T>()
    }

    fn configure(&mut self, policy: &Policy) {
        if let Some(max) = policy.max_items {
            self.cap = max.clamp(1, MAX_RESERVE);
            self.reserve = self.cap.min(FIRST_RESERVE);
        }
    }
}

/// Encoded as its items (a `Vec<T>`) and its byte total (a `u64`, or
/// nothing for [`FixedSize`]).
impl<T: Spill, N: Spill> Spill for BatchState<T, N> {
    const MIN_ENCODED_LEN: usize = 8 + N::MIN_ENCODED_LEN;

    fn encode(&self, out: &mut Vec<u8>) {
        self.items.encode(out);
        self.bytes.encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        let items = Vec::<T>::decode(input)?;
        let bytes = N::decode(input)?;
        Ok(BatchState { items, bytes })
    }
}
