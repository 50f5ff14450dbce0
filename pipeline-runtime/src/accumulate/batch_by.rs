//! The built-in accumulator of `accumulate(key = ..)` and `batch(..)`:
//! [`BatchBy`].

use std::hash::Hash;
use std::sync::OnceLock;
use std::time::Duration;

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
/// ([`COUNTS_ITSELF`](Accumulator::COUNTS_ITSELF)), so the accumulation
/// keeps nothing else per key.
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

/// The state of one key in a [`BatchBy`]: the batch being gathered.
///
/// Kept small, as an accumulation holds one per open key: the window start
/// is stored as nanoseconds from an instant taken once per process (exact,
/// also under paused `tokio` time; a start more than 292 years away from it
/// is clamped).
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(C)]
pub struct BatchState<T> {
    items: Vec<T>,
    bytes: u64,
    start: i64,
}

impl<T> BatchState<T> {
    /// The items gathered so far, in order.
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// When the first item arrived.
    pub fn window_start(&self) -> Instant {
        from_offset(self.start)
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
    fn open(&mut self, key: &K) -> BatchState<T> {
        self.open_at(key, Instant::now())
    }

    /// The window starts at `now`: the engine's time for the chunk that
    /// holds the first item.
    #[inline]
    fn open_at(&mut self, _: &K, now: Instant) -> BatchState<T> {
        BatchState {
            items: Vec::with_capacity(self.reserve),
            bytes: 0,
            start: to_offset(now),
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

    fn flush(&mut self, key: K, state: BatchState<T>) -> Option<Batch<T, K>> {
        self.flush_at(key, state, Instant::now())
    }

    /// The window ends at `now`: the engine's time when it let go of the
    /// batch.
    fn flush_at(&mut self, key: K, state: BatchState<T>, now: Instant) -> Option<Batch<T, K>> {
        self.reserve = state.items.len().min(self.cap);
        let start = from_offset(state.start);
        Some(Batch::new(key, state.items, start, now, state.bytes))
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

/// The instant window starts are measured from, taken once per process
/// (spill files never outlive the process that wrote them).
fn instant_base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// `instant` as signed nanoseconds from [`instant_base`], clamped to what
/// an `i64` holds (292 years either way).
fn to_offset(instant: Instant) -> i64 {
    let base = instant_base();
    match instant.checked_duration_since(base) {
        Some(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        None => i64::try_from(base.duration_since(instant).as_nanos()).map_or(-i64::MAX, |n| -n),
    }
}

/// The instant `offset` nanoseconds from [`instant_base`].
fn from_offset(offset: i64) -> Instant {
    let base = instant_base();
    let nanos = Duration::from_nanos(offset.unsigned_abs());
    let instant = if offset >= 0 {
        base.checked_add(nanos)
    } else {
        base.checked_sub(nanos)
    };
    // Offsets come from instants, which are back where they were.
    instant.unwrap_or(base)
}

/// Encoded as its items (a `Vec<T>`), its byte total (`u64`), and its window
/// start as a signed offset from a base instant taken once per process (a
/// direction byte, `0` after and `1` before the base, then a `Duration`), so
/// it comes back exact, also under paused `tokio` time.
impl<T: Spill> Spill for BatchState<T> {
    const MIN_ENCODED_LEN: usize = 8 + 8 + 1 + 12;

    fn encode(&self, out: &mut Vec<u8>) {
        self.items.encode(out);
        self.bytes.encode(out);
        out.push(u8::from(self.start < 0));
        Duration::from_nanos(self.start.unsigned_abs()).encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        let items = Vec::<T>::decode(input)?;
        let bytes = u64::decode(input)?;
        let direction = u8::decode(input)?;
        let offset = Duration::decode(input)?;
        let nanos = i64::try_from(offset.as_nanos()).ok();
        let start = match direction {
            0 => nanos,
            1 => nanos.map(|n| -n),
            other => {
                return Err(SpillError::InvalidData {
                    what: "BatchState",
                    detail: format!("direction byte {other:#04x} is neither 0 nor 1"),
                });
            }
        };
        let start = start.ok_or_else(|| SpillError::InvalidData {
            what: "BatchState",
            detail: format!("window start offset {offset:?} is out of range"),
        })?;
        Ok(BatchState {
            items,
            bytes,
            start,
        })
    }
}
