//! What the engine keeps for one key: the map's key ([`Keyed`], the key
//! with the `seq` of its open state), the state as held ([`Held`]), and the
//! slot around it in one of two forms ([`Bare`] or [`Counted`]) behind the
//! [`Slot`] trait.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};

use super::Accumulator;

/// The hasher of the per-key map.
pub(super) type RandomState = foldhash::fast::RandomState;

/// The `seq` no state is given: marks the deadlines of closed states when
/// the numbers are given out again.
pub(super) const STALE: u32 = u32::MAX;

/// A key in the map, with the `seq` of its open state kept beside it, in
/// the room a small key leaves before an 8-byte aligned slot.
///
/// It hashes and compares as its key, and the map is looked up with `&K`.
/// `seq` is an atomic only to be written through a shared reference (the
/// map hands out its keys only so); it is read and written with `Relaxed`,
/// plain loads and stores.
pub(super) struct Keyed<K> {
    pub(super) key: K,
    seq: AtomicU32,
}

impl<K> Keyed<K> {
    pub(super) fn new(key: K, seq: u32) -> Self {
        Keyed {
            key,
            seq: AtomicU32::new(seq),
        }
    }

    pub(super) fn seq(&self) -> u32 {
        self.seq.load(Ordering::Relaxed)
    }

    pub(super) fn set_seq(&self, seq: u32) {
        self.seq.store(seq, Ordering::Relaxed);
    }
}

impl<K: Hash> Hash for Keyed<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl<K: PartialEq> PartialEq for Keyed<K> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl<K: Eq> Eq for Keyed<K> {}

impl<K> Borrow<K> for Keyed<K> {
    fn borrow(&self) -> &K {
        &self.key
    }
}

/// The state of a key as the engine holds it. The two variants without
/// data fit in a niche of most states (a `Vec`'s capacity), so this is
/// usually no larger than the state.
pub(super) enum Held<S> {
    /// No open state: the key's last state closed and its next item opens
    /// one in place.
    Closed,
    /// Open, on disk (only when spilling).
    Spilled,
    /// Open, in memory.
    Open(S),
}

impl<S> Held<S> {
    pub(super) fn is_open(&self) -> bool {
        !matches!(self, Held::Closed)
    }

    /// Takes the state out, leaving `Closed`.
    pub(super) fn take(&mut self) -> Held<S> {
        std::mem::replace(self, Held::Closed)
    }
}

/// What the engine keeps for one key, in one of two forms ([`Bare`] or
/// [`Counted`]) chosen by the accumulator and the spiller.
///
/// A key keeps its slot when its state closes (`Held::Closed`), so that its
/// next item reopens it in place: one lookup, no removal and no insertion.
/// Closed slots are swept out of the map when they outnumber the open ones
/// ([`Engine::sweep`](super::engine::Engine::sweep)).
#[expect(
    clippy::mutable_key_type,
    reason = "a key's `seq` takes no part in its hash or equality"
)]
pub(super) trait Slot<T, A: Accumulator<T>>: Sized {
    /// The map of slots of this form.
    fn map(maps: &Maps<A::Key, A::State>) -> &Map<A::Key, Self>;

    /// [`map`](Self::map), mutably.
    fn map_mut(maps: &mut Maps<A::Key, A::State>) -> &mut Map<A::Key, Self>;

    /// A slot with a state just opened as `seq` with one item of `size`
    /// bytes.
    fn opened(state: A::State, size: u64, seq: u32) -> Self;

    /// A slot with no state.
    fn closed() -> Self;

    fn held(&self) -> &Held<A::State>;

    fn held_mut(&mut self) -> &mut Held<A::State>;

    /// Counts an item of `size` bytes about to be given to the state (in
    /// memory), unless the state counts itself.
    fn count(&mut self, size: u64);

    /// The items and bytes the open state holds, in memory or on disk.
    fn counts(&self, acc: &A) -> (u64, u64);

    /// Counts the state (in memory) in the slot before it goes to disk.
    fn keep_counts(&mut self, acc: &A);

    /// The `seq` of the open state, for spilling's bookkeeping.
    fn seq(&self) -> u32;

    /// Gives the open state the `seq` number `seq`.
    fn set_seq(&mut self, seq: u32);

    /// The `seq` of the state of `key` just taken out of its slot, as
    /// `taken`: from the slot if it keeps it, else from the key's entry.
    fn seq_of(map: &Map<A::Key, Self>, key: &A::Key, taken: &Self) -> u32;
}

/// A map of slots.
pub(super) type Map<K, L> = HashMap<Keyed<K>, L, RandomState>;

/// The two maps, one for each form of slot; an engine only ever fills one.
pub(super) struct Maps<K, S> {
    pub(super) bare: Map<K, Bare<S>>,
    pub(super) counted: Map<K, Counted<S>>,
}

/// The slot of a state that counts its own items and bytes
/// ([`Accumulator::COUNTS_ITSELF`]) and is never spilled: the state alone,
/// so that an item reads and writes nothing beyond its key and its state.
pub(super) struct Bare<S> {
    held: Held<S>,
}

/// The slot of every other state: the state with its counts (unless the
/// state keeps them) and its `seq` (for spilling).
#[repr(C)]
pub(super) struct Counted<S> {
    /// Items in the state (unless it counts them itself while in memory).
    /// A state never holds more than `u32::MAX` items
    /// ([`Limits::new`](super::lifecycle::Limits::new)).
    items: u32,
    seq: u32,
    held: Held<S>,
    /// The items' sizes, summed (unless the state keeps that sum while in
    /// memory).
    bytes: u64,
}

impl<T, A: Accumulator<T>> Slot<T, A> for Bare<A::State> {
    fn map(maps: &Maps<A::Key, A::State>) -> &Map<A::Key, Self> {
        &maps.bare
    }

    fn map_mut(maps: &mut Maps<A::Key, A::State>) -> &mut Map<A::Key, Self> {
        &mut maps.bare
    }

    #[inline]
    fn opened(state: A::State, _: u64, _: u32) -> Self {
        Bare {
            held: Held::Open(state),
        }
    }

    fn closed() -> Self {
        Bare { held: Held::Closed }
    }

    #[inline(always)]
    fn held(&self) -> &Held<A::State> {
        &self.held
    }

    #[inline(always)]
    fn held_mut(&mut self) -> &mut Held<A::State> {
        &mut self.held
    }

    #[inline(always)]
    fn count(&mut self, _: u64) {}

    #[inline(always)]
    fn counts(&self, acc: &A) -> (u64, u64) {
        match &self.held {
            Held::Open(state) => {
                let (items, bytes) = acc.held(state);
                (items as u64, bytes)
            }
            // Never spilled.
            _ => (0, 0),
        }
    }

    fn keep_counts(&mut self, _: &A) {}

    fn seq(&self) -> u32 {
        0
    }

    fn set_seq(&mut self, _: u32) {}

    /// A second lookup, in the entry just used: once per state closed.
    fn seq_of(map: &Map<A::Key, Self>, key: &A::Key, _: &Self) -> u32 {
        map.get_key_value(key)
            .map_or(STALE, |(keyed, _)| keyed.seq())
    }
}

impl<T, A: Accumulator<T>> Slot<T, A> for Counted<A::State> {
    fn map(maps: &Maps<A::Key, A::State>) -> &Map<A::Key, Self> {
        &maps.counted
    }

    fn map_mut(maps: &mut Maps<A::Key, A::State>) -> &mut Map<A::Key, Self> {
        &mut maps.counted
    }

    #[inline]
    fn opened(state: A::State, size: u64, seq: u32) -> Self {
        Counted {
            items: 1,
            seq,
            held: Held::Open(state),
            bytes: size,
        }
    }

    fn closed() -> Self {
        Counted {
            items: 0,
            seq: 0,
            held: Held::Closed,
            bytes: 0,
        }
    }

    #[inline(always)]
    fn held(&self) -> &Held<A::State> {
        &self.held
    }

    #[inline(always)]
    fn held_mut(&mut self) -> &mut Held<A::State> {
        &mut self.held
    }

    #[inline(always)]
    fn count(&mut self, size: u64) {
        if !A::COUNTS_ITSELF {
            self.items += 1;
            self.bytes += size;
        }
    }

    #[inline(always)]
    fn counts(&self, acc: &A) -> (u64, u64) {
        match &self.held {
            Held::Open(state) if A::COUNTS_ITSELF => {
                let (items, bytes) = acc.held(state);
                (items as u64, bytes)
            }
            _ => (u64::from(self.items), self.bytes),
        }
    }

    fn keep_counts(&mut self, acc: &A) {
        let (items, bytes) = <Self as Slot<T, A>>::counts(self, acc);
        self.items = u32::try_from(items).unwrap_or(u32::MAX);
        self.bytes = bytes;
    }

    fn seq(&self) -> u32 {
        self.seq
    }

    fn set_seq(&mut self, seq: u32) {
        self.seq = seq;
    }

    fn seq_of(_: &Map<A::Key, Self>, _: &A::Key, taken: &Self) -> u32 {
        taken.seq
    }
}

/// Takes the open state out of `slot`, leaving it closed.
pub(super) fn take<T, A: Accumulator<T>, L: Slot<T, A>>(slot: &mut L) -> L {
    std::mem::replace(slot, L::closed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accumulate::BatchState;

    /// The per-key memory every item touches: a map entry of
    /// `accumulate(key = |x: &Item| x.key)` (a `u32` key, 16-byte items
    /// measured by their size) is the key, its `seq` and the batch's `Vec`,
    /// nothing else (the window start is kept apart, by `seq`; the byte
    /// total is the length times the item size): 32 bytes, as in a
    /// hand-written `HashMap<u32, Vec<T>>`. A batch that keeps a byte total
    /// (`max_bytes` or `size`) is 8 bytes more; a state the engine counts
    /// has its counts beside it.
    #[test]
    fn a_batch_entry_is_32_bytes_and_40_with_a_byte_total() {
        type Fixed = BatchState<(u32, u64), crate::accumulate::FixedSize>;
        type Summed = BatchState<(u32, u64)>;
        assert_eq!(size_of::<(Keyed<u32>, Bare<Fixed>)>(), 32);
        assert_eq!(size_of::<(Keyed<u32>, Bare<Summed>)>(), 40);
        assert_eq!(size_of::<(Keyed<u32>, Counted<Summed>)>(), 56);
        assert_eq!(size_of::<(Keyed<u32>, Counted<Vec<u8>>)>(), 48);
    }
}
