//! The engine of an accumulation: [`AccumulateHead`], the head of a chain
//! fed by an edge, or pulling the chain before it.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tracing::Instrument;

use super::codec::{Spill, SpillError};
use super::intake::Intake;
use super::spiller::{DiskSpill, NoSpill, Spiller};
use super::{Accumulator, Completeness, Policy, Unfinished, UnfinishedReason};
use crate::chain::{Chain, Outputs};
use crate::channel::EdgeReceiver;
use crate::control::Control;
use crate::error::Error;
use crate::fan::{Broadcast, Outlet};
use crate::metrics::{
    AccumulatorDelta, AccumulatorGauges, DEFAULT_PIPELINE_NAME, FlushReason, StageStats,
};
use crate::stage::{Pull, StageContext};

/// The hasher of the per-key map.
type RandomState = foldhash::fast::RandomState;

/// The item size an accumulation uses when none is given: the size of the
/// item's type, `size_of::<T>()` (memory it points to is not counted).
pub fn default_size<T>(_: &T) -> u64 {
    size_of::<T>() as u64
}

/// How a state that went unfinished for `why` counts among the flushes.
fn flush_reason(why: &UnfinishedReason) -> FlushReason {
    match why {
        UnfinishedReason::Stopped => FlushReason::Stop,
        UnfinishedReason::Expired | UnfinishedReason::Spill(_) => FlushReason::Expired,
    }
}

/// A key in the map, with the `seq` of its open state kept beside it, in
/// the room a small key leaves before an 8-byte aligned slot.
///
/// It hashes and compares as its key, and the map is looked up with `&K`.
/// `seq` is an atomic only to be written through a shared reference (the
/// map hands out its keys only so); it is read and written with `Relaxed`,
/// plain loads and stores.
struct Keyed<K> {
    key: K,
    seq: AtomicU32,
}

impl<K> Keyed<K> {
    fn new(key: K, seq: u32) -> Self {
        Keyed {
            key,
            seq: AtomicU32::new(seq),
        }
    }

    fn seq(&self) -> u32 {
        self.seq.load(Ordering::Relaxed)
    }

    fn set_seq(&self, seq: u32) {
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
enum Held<S> {
    /// No open state: the key's last state closed and its next item opens
    /// one in place.
    Closed,
    /// Open, on disk (only when spilling).
    Spilled,
    /// Open, in memory.
    Open(S),
}

impl<S> Held<S> {
    fn is_open(&self) -> bool {
        !matches!(self, Held::Closed)
    }

    /// Takes the state out, leaving `Closed`.
    fn take(&mut self) -> Held<S> {
        std::mem::replace(self, Held::Closed)
    }
}

/// What the engine keeps for one key, in one of two forms ([`Bare`] or
/// [`Counted`]) chosen by the accumulator and the spiller.
///
/// A key keeps its slot when its state closes (`Held::Closed`), so that its
/// next item reopens it in place: one lookup, no removal and no insertion.
/// Closed slots are swept out of the map when they outnumber the open ones
/// ([`Engine::sweep`]).
#[expect(
    clippy::mutable_key_type,
    reason = "a key's `seq` takes no part in its hash or equality"
)]
trait Slot<T, A: Accumulator<T>>: Sized {
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
type Map<K, L> = HashMap<Keyed<K>, L, RandomState>;

/// The two maps, one for each form of slot; an engine only ever fills one.
struct Maps<K, S> {
    bare: Map<K, Bare<S>>,
    counted: Map<K, Counted<S>>,
}

/// The slot of a state that counts its own items and bytes
/// ([`Accumulator::COUNTS_ITSELF`]) and is never spilled: the state alone,
/// so that an item reads and writes nothing beyond its key and its state.
struct Bare<S> {
    held: Held<S>,
}

/// The slot of every other state: the state with its counts (unless the
/// state keeps them) and its `seq` (for spilling).
#[repr(C)]
struct Counted<S> {
    /// Items in the state (unless it counts them itself while in memory).
    /// A state never holds more than `u32::MAX` items ([`Limits::new`]).
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

/// What spilling keeps about an open state, by its `seq` (only when the
/// spiller is enabled).
#[derive(Debug, Clone, Copy)]
struct Usage {
    /// When the state was last updated, in updates (the coldest spill
    /// first).
    touched: u64,
    /// The state's memory, as last estimated while in memory.
    memory: u64,
    /// The spill record holding the state while it is on disk.
    record: Option<u64>,
}

/// What the timer of a state does when it runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// `max_latency`: flush.
    Latency,
    /// `ttl`: expire.
    Ttl,
}

/// A deadline of one opened state.
struct Deadline<K> {
    at: Instant,
    seq: u32,
    key: K,
}

/// How a state is let go of.
enum Closing<O> {
    /// Forced: flushed into the output.
    Flush(FlushReason),
    /// The accumulator completed it.
    Complete(O),
    /// The accumulator said it expired, with this partial output.
    Expired(Option<O>),
    /// Its ttl ran out.
    Ttl,
    /// The input ended.
    Stop,
}

/// The `seq` no state is given: marks the deadlines of closed states when
/// the numbers are given out again.
const STALE: u32 = u32::MAX;

/// Closed slots are swept out of the map once they outnumber both the open
/// ones and this.
const MIN_SWEEP: usize = 1024;

/// The policy in the form the engine checks it.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_items: u64,
    max_bytes: u64,
    timer: Option<(Duration, Timer)>,
    partial_flush: bool,
}

impl Limits {
    fn new(policy: &Policy) -> Self {
        // One timer per state: whichever of max_latency and ttl runs out
        // first. A state flushed at its latency is gone before its ttl.
        let timer = match (policy.max_latency, policy.ttl) {
            (Some(latency), Some(ttl)) if ttl < latency => Some((ttl, Timer::Ttl)),
            (Some(latency), _) => Some((latency, Timer::Latency)),
            (None, Some(ttl)) => Some((ttl, Timer::Ttl)),
            (None, None) => None,
        };
        // Item counts are `u32`: a state that reaches `u32::MAX` items is
        // flushed as if that were its `max_items`.
        let most = u64::from(u32::MAX);
        Limits {
            max_items: policy
                .max_items
                .map_or(most, |n| (n.max(1) as u64).min(most)),
            max_bytes: policy.max_bytes.unwrap_or(u64::MAX),
            timer,
            partial_flush: policy.partial_flush,
        }
    }

    /// Whether `max_bytes` is set: the engine's push is specialised on it,
    /// so that without it no item reads a byte count.
    fn has_max_bytes(&self) -> bool {
        self.max_bytes != u64::MAX
    }

    /// The limit an open state with `items` items of `bytes` bytes has
    /// reached, if any. `BYTES` says whether `max_bytes` is set.
    #[inline]
    fn reached<const BYTES: bool>(&self, items: u64, bytes: u64) -> Option<FlushReason> {
        if items >= self.max_items {
            Some(FlushReason::Items)
        } else if BYTES && bytes >= self.max_bytes {
            Some(FlushReason::Bytes)
        } else {
            None
        }
    }
}

/// Everything but the channels: the per-key map, and the rest
/// ([`Core`]), apart so that a slot of the map and the rest can be borrowed
/// at once.
struct Engine<T, A: Accumulator<T>, S, P> {
    maps: Maps<A::Key, A::State>,
    core: Core<T, A, S, P>,
}

/// The accumulator, the size function, the spiller, the deadlines and the
/// counts.
struct Core<T, A: Accumulator<T>, S, P> {
    acc: A,
    size: S,
    spill: P,
    limits: Limits,
    /// When the chunk being pushed was taken.
    now: Instant,
    /// One deadline per opened state, in the order they run out. Every
    /// state's timer has the same length, so states opened later run out
    /// later and a FIFO queue is a priority queue; closed states leave a
    /// stale entry that is skipped when it comes up.
    deadlines: VecDeque<Deadline<A::Key>>,
    /// When each state was opened, kept here rather than in the state
    /// (which would make every map entry larger): by `seq`, the index of
    /// its time in `times`. Holds one entry per `seq` given out, so that
    /// `next_seq == opened.len()`; [`Engine::renumber`] drops those of
    /// closed states.
    opened: Vec<u32>,
    /// The times states were opened at, in order, once each: at most one
    /// per chunk of input.
    times: Vec<Instant>,
    /// The `seq` of the next state opened. Numbers are given out again,
    /// from 0 in the order of the open states, before this reaches
    /// `seq_limit` ([`Engine::renumber`]), so that `u32` never wraps.
    next_seq: u32,
    /// `STALE` but in tests, which make it small to give numbers out again
    /// often.
    seq_limit: u32,
    /// Slots in the map with no state.
    closed: usize,
    /// Spilling's bookkeeping of each open state, by `seq` (empty when not
    /// spilling).
    usage: HashMap<u32, Usage, RandomState>,
    tick: u64,
    next_record: u64,
    items_held: u64,
    bytes_held: u64,
    /// Memory of the states in memory (kept only when spilling).
    memory: u64,
    spilled_keys: u64,
    delta: AccumulatorDelta,
    /// States on their way to the `errors` port.
    unfinished: Vec<Unfinished<A::Key, A::Out>>,
    errors_connected: bool,
    /// Whether a failed spill has been logged at `warn` already.
    spill_failed: bool,
    name: &'static str,
    _items: PhantomData<fn(T)>,
}

impl<T, A: Accumulator<T>, S, P> Engine<T, A, S, P> {
    /// The keys with an open state.
    fn open_keys(&self) -> u64 {
        let slots = self.maps.bare.len() + self.maps.counted.len();
        (slots - self.core.closed) as u64
    }
}

/// Runs `$f::<L>` on `$engine` with `L` the form of slot its accumulator
/// and spiller use: [`Bare`] for a state that counts itself and is never
/// spilled, [`Counted`] otherwise.
macro_rules! with_slots {
    ($engine:ident . $f:ident ( $($arg:expr),* )) => {
        if A::COUNTS_ITSELF && !P::ENABLED {
            $engine.$f::<Bare<A::State>>($($arg),*)
        } else {
            $engine.$f::<Counted<A::State>>($($arg),*)
        }
    };
}

#[expect(
    clippy::mutable_key_type,
    reason = "a key's `seq` takes no part in its hash or equality"
)]
impl<T, A, S, P> Engine<T, A, S, P>
where
    A: Accumulator<T>,
    S: FnMut(&T) -> u64,
    P: Spiller<A::Key, A::State>,
{
    /// Takes a chunk of items, emptying `items`.
    fn push_chunk(&mut self, items: &mut Vec<T>, now: Instant, out: &mut Vec<A::Out>) {
        with_slots!(self.push_chunk_in(items, now, out))
    }

    fn push_chunk_in<L: Slot<T, A>>(
        &mut self,
        items: &mut Vec<T>,
        now: Instant,
        out: &mut Vec<A::Out>,
    ) {
        let core = &mut self.core;
        core.now = now;
        core.items_held += items.len() as u64;
        // Counted once for the chunk (releases meanwhile may take
        // `bytes_held` below zero for a moment: it wraps).
        let mut bytes = 0u64;
        // Specialised on whether `max_bytes` is set, so that without it no
        // item reads its state's byte count.
        if core.limits.has_max_bytes() {
            for item in items.drain(..) {
                if let Some((key, size)) = self.core.measure(&item) {
                    bytes += size;
                    self.push::<L, true>(item, key, size, out);
                }
            }
        } else {
            for item in items.drain(..) {
                if let Some((key, size)) = self.core.measure(&item) {
                    bytes += size;
                    self.push::<L, false>(item, key, size, out);
                }
            }
        }
        self.core.bytes_held = self.core.bytes_held.wrapping_add(bytes);
    }

    /// Takes one measured item: one hash lookup. The common case, the key's
    /// state open in memory and not closing, is all here; the rest (a new
    /// key, a closed slot, a spilled state, `max_bytes` overflowing, a state
    /// that closes) is out of line, so that the common case keeps its
    /// values in registers. `BYTES` says whether `max_bytes` is set.
    #[inline(always)]
    fn push<L: Slot<T, A>, const BYTES: bool>(
        &mut self,
        item: T,
        key: A::Key,
        size: u64,
        out: &mut Vec<A::Out>,
    ) {
        let core = &mut self.core;
        if let Some(slot) = L::map_mut(&mut self.maps).get_mut(&key)
            && let Held::Open(_) = slot.held()
            && (!BYTES || slot.counts(&core.acc).1.saturating_add(size) <= core.limits.max_bytes)
        {
            slot.count(size);
            let seq = slot.seq();
            let Held::Open(state) = slot.held_mut() else {
                unreachable!("the state was just found open");
            };
            core.acc.update_sized(&key, state, item, size);
            if P::ENABLED {
                core.touch(seq, state);
            }
            // Counted before `check`, which may take from the state.
            let held = A::COUNTS_ITSELF.then(|| core.acc.held(state));
            let completeness = core.acc.check(&key, state);
            let (items, bytes) = match held {
                Some((items, bytes)) => (items as u64, bytes),
                None => slot.counts(&core.acc),
            };
            let closing = match completeness {
                Completeness::Incomplete => core
                    .limits
                    .reached::<BYTES>(items, bytes)
                    .map(Closing::Flush),
                Completeness::Complete(output) => Some(Closing::Complete(output)),
                Completeness::Expired(partial) => Some(Closing::Expired(partial)),
            };
            if let Some(closing) = closing {
                let taken = take(slot);
                self.close_taken(key, taken, closing, out);
            }
            return;
        }
        self.push_rest::<L>(item, key, size, out);
    }

    /// Lets go of the open state of `key` just taken out of its slot (in
    /// memory), as `taken`, leaving the slot closed.
    #[inline(never)]
    fn close_taken<L: Slot<T, A>>(
        &mut self,
        key: A::Key,
        taken: L,
        closing: Closing<A::Out>,
        out: &mut Vec<A::Out>,
    ) {
        let seq = L::seq_of(L::map(&self.maps), &key, &taken);
        let core = &mut self.core;
        let now = core.now;
        core.close(key, seq, taken, closing, now, out);
        core.closed += 1;
    }

    /// [`push`](Self::push) but for the common case: the key has no slot,
    /// or a closed one, or a spilled state, or the item would take its
    /// state over `max_bytes`. One more lookup, which gives the key's entry.
    #[inline(never)]
    fn push_rest<L: Slot<T, A>>(&mut self, item: T, key: A::Key, size: u64, out: &mut Vec<A::Out>) {
        if self.core.next_seq >= self.core.seq_limit {
            self.renumber::<L>();
        }
        let core = &mut self.core;
        let now = core.now;
        let seq = core.next_seq;
        let mut entry = match L::map_mut(&mut self.maps).entry(Keyed::new(key, seq)) {
            Entry::Occupied(entry) => entry,
            Entry::Vacant(entry) => {
                let (slot, closing) = core.open::<L>(&entry.key().key, item, size);
                match closing {
                    Some(closing) => core.close(entry.into_key().key, seq, slot, closing, now, out),
                    None => {
                        entry.insert(slot);
                    }
                }
                return;
            }
        };
        if entry.get().held().is_open() {
            let key = entry.key().key.clone();
            match core.read_back(&key, entry.get_mut()) {
                Err(error) => core.lose(key, take(entry.get_mut()), error),
                Ok(()) => {
                    let fits = entry.get().counts(&core.acc).1.saturating_add(size)
                        <= core.limits.max_bytes;
                    if fits {
                        // It was spilled: back in memory, it takes the item
                        // as usual.
                        return self.push::<L, true>(item, key, size, out);
                    }
                    // The item would take the state over max_bytes: flush
                    // the state first, then open a new one with the item.
                    let taken = take(entry.get_mut());
                    let closing = Closing::Flush(FlushReason::Bytes);
                    core.close(key, entry.key().seq(), taken, closing, now, out);
                }
            }
        } else {
            core.closed -= 1;
        }
        // The slot is closed: open it again in place.
        let (opened, closing) = core.open::<L>(&entry.key().key, item, size);
        match closing {
            Some(closing) => {
                let key = entry.key().key.clone();
                core.close(key, seq, opened, closing, now, out);
                core.closed += 1;
            }
            None => {
                *entry.get_mut() = opened;
                entry.key().set_seq(seq);
            }
        }
    }

    /// The first live deadline, dropping stale ones from the front.
    fn next_deadline(&mut self) -> Option<Instant> {
        with_slots!(self.next_deadline_in())
    }

    fn next_deadline_in<L: Slot<T, A>>(&mut self) -> Option<Instant> {
        let map = L::map(&self.maps);
        while let Some(first) = self.core.deadlines.front() {
            let live = map
                .get_key_value(&first.key)
                .is_some_and(|(keyed, slot)| slot.held().is_open() && keyed.seq() == first.seq);
            if live {
                return Some(first.at);
            }
            self.core.deadlines.pop_front();
        }
        None
    }

    /// Runs every deadline up to `now`. Returns whether a state was let go
    /// of.
    fn fire_due(&mut self, now: Instant, out: &mut Vec<A::Out>) -> bool {
        with_slots!(self.fire_due_in(now, out))
    }

    fn fire_due_in<L: Slot<T, A>>(&mut self, now: Instant, out: &mut Vec<A::Out>) -> bool {
        let Some((_, timer)) = self.core.limits.timer else {
            return false;
        };
        let core = &mut self.core;
        let map = L::map_mut(&mut self.maps);
        let mut fired = false;
        while core.deadlines.front().is_some_and(|d| d.at <= now) {
            let Some(due) = core.deadlines.pop_front() else {
                break;
            };
            let live = map
                .get_key_value(&due.key)
                .is_some_and(|(keyed, slot)| slot.held().is_open() && keyed.seq() == due.seq);
            if !live {
                continue;
            }
            let Some(slot) = map.get_mut(&due.key) else {
                continue;
            };
            fired = true;
            if let Err(error) = core.read_back(&due.key, slot) {
                core.lose(due.key, take(slot), error);
                core.closed += 1;
                continue;
            }
            let closing = match timer {
                Timer::Latency => Closing::Flush(FlushReason::Latency),
                Timer::Ttl => Closing::Ttl,
            };
            core.close(due.key, due.seq, take(slot), closing, now, out);
            core.closed += 1;
        }
        fired
    }

    /// The input ended: lets go of every open state, oldest first.
    fn close_all(&mut self, now: Instant, out: &mut Vec<A::Out>) {
        with_slots!(self.close_all_in(now, out));
    }

    fn close_all_in<L: Slot<T, A>>(&mut self, now: Instant, out: &mut Vec<A::Out>) {
        let mut open: Vec<_> = L::map_mut(&mut self.maps)
            .drain()
            .filter(|(_, slot)| slot.held().is_open())
            .map(|(keyed, slot)| (keyed.seq(), keyed.key, slot))
            .collect();
        open.sort_unstable_by_key(|(seq, _, _)| *seq);
        let core = &mut self.core;
        core.closed = 0;
        core.deadlines.clear();
        for (seq, key, mut slot) in open {
            match core.read_back(&key, &mut slot) {
                Ok(()) => core.close(key, seq, slot, Closing::Stop, now, out),
                Err(error) => core.lose(key, slot, error),
            }
        }
        core.opened.clear();
        core.times.clear();
        core.next_seq = 0;
    }

    /// Drops the closed slots once they outnumber the open ones (and
    /// [`MIN_SWEEP`]), so that keys that come and go do not pile up. Each
    /// sweep follows at least as many closes as it visits slots. Likewise
    /// drops the opening times of closed states ([`renumber`](Self::renumber)).
    fn sweep(&mut self) {
        with_slots!(self.sweep_in());
    }

    fn sweep_in<L: Slot<T, A>>(&mut self) {
        let map = L::map_mut(&mut self.maps);
        let closed = self.core.closed;
        let open = map.len() - closed;
        if closed > MIN_SWEEP && closed > open {
            map.retain(|_, slot| slot.held().is_open());
            self.core.closed = 0;
        }
        // The opening times grow by one per state opened; once they
        // outnumber twice the open states (and `MIN_SWEEP`), those of
        // closed states go, which follows at least as many opens as it
        // visits states.
        if self.core.opened.len() > 2 * open + MIN_SWEEP {
            self.renumber::<L>();
        }
    }

    /// Gives the open states `seq` numbers again, from 0 in the order they
    /// were opened, so that numbers can keep growing without wrapping, and
    /// keeps the opening times of the open states only. The
    /// deadlines of closed states become [`STALE`].
    #[cold]
    fn renumber<L: Slot<T, A>>(&mut self) {
        let mut open: Vec<(&Keyed<A::Key>, &mut L)> = L::map_mut(&mut self.maps)
            .iter_mut()
            .filter(|(_, slot)| slot.held().is_open())
            .collect();
        open.sort_unstable_by_key(|(keyed, _)| keyed.seq());
        let mut renumbered: HashMap<u32, u32, RandomState> =
            HashMap::with_capacity_and_hasher(open.len(), RandomState::default());
        // The opening times of the open states only: in `seq` order, they
        // do not decrease.
        let mut opened = Vec::with_capacity(open.len());
        let mut times: Vec<Instant> = Vec::new();
        for (seq, (keyed, slot)) in (0..).zip(open) {
            let at = self.core.opened_at(keyed.seq());
            if times.last() != Some(&at) {
                times.push(at);
            }
            opened.push(u32::try_from(times.len() - 1).unwrap_or(u32::MAX));
            renumbered.insert(keyed.seq(), seq);
            keyed.set_seq(seq);
            slot.set_seq(seq);
        }
        let core = &mut self.core;
        core.opened = opened;
        core.times = times;
        for deadline in &mut core.deadlines {
            deadline.seq = renumbered.get(&deadline.seq).copied().unwrap_or(STALE);
        }
        core.usage = core
            .usage
            .drain()
            .filter_map(|(seq, usage)| Some((*renumbered.get(&seq)?, usage)))
            .collect();
        core.next_seq = u32::try_from(renumbered.len()).unwrap_or(STALE);
    }

    /// While the states in memory weigh more than the budget, spills the
    /// least recently updated ones until they weigh at most three quarters
    /// of it (so that the next few items do not spill again at once).
    fn spill_cold(&mut self) {
        with_slots!(self.spill_cold_in());
    }

    fn spill_cold_in<L: Slot<T, A>>(&mut self) {
        let core = &mut self.core;
        let budget = core.spill.max_memory();
        if !P::ENABLED || core.memory <= budget {
            return;
        }
        let target = budget - budget / 4;
        let mut resident: Vec<(u64, u64)> = core
            .usage
            .values()
            .filter(|usage| usage.record.is_none())
            .map(|usage| (usage.touched, usage.memory))
            .collect();
        resident.sort_unstable();
        let mut left = core.memory;
        let mut coldest = None;
        for (touched, memory) in resident {
            if left <= target {
                break;
            }
            left -= memory;
            coldest = Some(touched);
        }
        let Some(coldest) = coldest else {
            return;
        };
        for (keyed, slot) in L::map_mut(&mut self.maps) {
            let Held::Open(state) = slot.held() else {
                continue;
            };
            let Some(usage) = core.usage.get_mut(&slot.seq()) else {
                continue;
            };
            if usage.touched > coldest {
                continue;
            }
            let record = core.next_record;
            match core.spill.put(record, &keyed.key, state) {
                Ok(bytes) => {
                    core.next_record += 1;
                    usage.record = Some(record);
                    core.memory -= usage.memory;
                    // On disk the state is counted in its slot.
                    slot.keep_counts(&core.acc);
                    *slot.held_mut() = Held::Spilled;
                    core.spilled_keys += 1;
                    core.delta.bytes_spilled += bytes;
                }
                Err(error) => {
                    // Tried again after the next chunk; said once.
                    if !core.spill_failed {
                        core.spill_failed = true;
                        tracing::warn!(
                            stage = core.name,
                            %error,
                            "cannot spill accumulator state; keeping it in memory"
                        );
                    } else {
                        tracing::debug!(stage = core.name, %error, "cannot spill accumulator state");
                    }
                    return;
                }
            }
        }
    }

    /// Publishes what happened since the last call.
    fn publish(&mut self, stats: &StageStats) {
        let gauges = AccumulatorGauges {
            open_keys: self.open_keys(),
            items_held: self.core.items_held,
            bytes_held: self.core.bytes_held,
            spilled_keys: self.core.spilled_keys,
        };
        stats.record_accumulated(&self.core.delta, &gauges);
        self.core.delta = AccumulatorDelta::default();
    }
}

/// Takes the open state out of `slot`, leaving it closed.
fn take<T, A: Accumulator<T>, L: Slot<T, A>>(slot: &mut L) -> L {
    std::mem::replace(slot, L::closed())
}

impl<T, A, S, P> Core<T, A, S, P>
where
    A: Accumulator<T>,
    S: FnMut(&T) -> u64,
    P: Spiller<A::Key, A::State>,
{
    /// The key and the size of `item`; or `None` if either function
    /// panicked on it.
    #[inline(always)]
    fn measure(&mut self, item: &T) -> Option<(A::Key, u64)> {
        // The key and size functions are the user's code run on each item:
        // one that panics fails that item (counted, logged) instead of
        // taking the whole accumulation, and its state, down with it.
        let measured = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (self.acc.key(item), (self.size)(item))
        }));
        match measured {
            Ok(measured) => Some(measured),
            Err(panic) => {
                self.fail(&*panic);
                None
            }
        }
    }

    /// Counts and logs an item whose key or size function panicked.
    #[cold]
    #[inline(never)]
    fn fail(&mut self, panic: &(dyn std::any::Any + Send)) {
        let message = crate::policy::panic_message(panic);
        tracing::warn!(stage = self.name, panic = %message, "the key or size function panicked on an item; item dropped");
        self.delta.failed += 1;
        self.items_held -= 1;
    }

    /// Opens a state for `key` with its first item, as the next `seq`: the
    /// open slot, and how it closes at once if that item fills or completes
    /// it.
    fn open<L: Slot<T, A>>(
        &mut self,
        key: &A::Key,
        item: T,
        size: u64,
    ) -> (L, Option<Closing<A::Out>>) {
        let now = self.now;
        let mut state = self.acc.open_at(key, now);
        self.acc.update_sized(key, &mut state, item, size);
        let closing = match self.acc.check(key, &mut state) {
            Completeness::Incomplete => self.limits.reached::<true>(1, size).map(Closing::Flush),
            Completeness::Complete(output) => Some(Closing::Complete(output)),
            Completeness::Expired(partial) => Some(Closing::Expired(partial)),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.times.last() != Some(&now) {
            self.times.push(now);
        }
        let time = u32::try_from(self.times.len() - 1).unwrap_or(u32::MAX);
        self.opened.push(time);
        if closing.is_none() {
            if P::ENABLED {
                self.tick += 1;
                let memory = self.acc.state_bytes(&state) as u64;
                self.memory += memory;
                let usage = Usage {
                    touched: self.tick,
                    memory,
                    record: None,
                };
                self.usage.insert(seq, usage);
            }
            // A deadline too far away to represent is never reached.
            if let Some(at) = self
                .limits
                .timer
                .and_then(|(after, _)| now.checked_add(after))
            {
                self.deadlines.push_back(Deadline {
                    at,
                    seq,
                    key: key.clone(),
                });
            }
        }
        (L::opened(state, size, seq), closing)
    }

    /// Notes that the state of `seq`, in memory, was updated (when
    /// spilling).
    fn touch(&mut self, seq: u32, state: &A::State) {
        self.tick += 1;
        let memory = self.acc.state_bytes(state) as u64;
        if let Some(usage) = self.usage.get_mut(&seq) {
            usage.touched = self.tick;
            self.memory = self.memory + memory - usage.memory;
            usage.memory = memory;
        }
    }

    /// Reads the state of an open slot back from disk if it was spilled.
    fn read_back<L: Slot<T, A>>(&mut self, key: &A::Key, slot: &mut L) -> Result<(), SpillError> {
        if !P::ENABLED || !matches!(slot.held(), Held::Spilled) {
            return Ok(());
        }
        let Some(usage) = self.usage.get_mut(&slot.seq()) else {
            return Ok(());
        };
        let Some(record) = usage.record else {
            return Ok(());
        };
        // Whatever happens the record is gone: the state is no longer on
        // disk.
        usage.record = None;
        self.spilled_keys -= 1;
        match self.spill.take(record, key) {
            Ok(state) => {
                let memory = self.acc.state_bytes(&state) as u64;
                usage.memory = memory;
                self.memory += memory;
                *slot.held_mut() = Held::Open(state);
                Ok(())
            }
            Err(error) => {
                // The lost state weighs nothing in memory.
                usage.memory = 0;
                Err(error)
            }
        }
    }

    /// Lets go of the open state `seq` of `key`, taken out of its slot,
    /// which must be in memory.
    fn close<L: Slot<T, A>>(
        &mut self,
        key: A::Key,
        seq: u32,
        mut slot: L,
        closing: Closing<A::Out>,
        now: Instant,
        out: &mut Vec<A::Out>,
    ) {
        let items = self.release(&slot);
        let Held::Open(state) = slot.held_mut().take() else {
            unreachable!("a state is read back before it is closed");
        };
        let partial_flush = self.limits.partial_flush;
        match closing {
            Closing::Flush(reason) => {
                let opened = self.opened_at(seq);
                let output = self.acc.flush_window(key, state, opened, now);
                self.emit(output, items, reason, out);
            }
            Closing::Complete(output) => self.emit(Some(output), items, FlushReason::Complete, out),
            Closing::Expired(partial) if partial_flush => {
                self.emit(partial, items, FlushReason::Expired, out);
            }
            Closing::Expired(partial) => {
                self.give_up(key, partial, items, UnfinishedReason::Expired);
            }
            Closing::Ttl => {
                let opened = self.opened_at(seq);
                let why = UnfinishedReason::Expired;
                self.end(key, state, items, why, opened, now, out);
            }
            Closing::Stop => {
                let opened = self.opened_at(seq);
                let why = UnfinishedReason::Stopped;
                self.end(key, state, items, why, opened, now, out);
            }
        }
    }

    /// When the state `seq` was opened.
    #[inline]
    fn opened_at(&self, seq: u32) -> Instant {
        // Every open state's time is kept.
        self.opened
            .get(seq as usize)
            .and_then(|&time| self.times.get(time as usize))
            .copied()
            .unwrap_or(self.now)
    }

    /// Lets go of a state, opened at `opened`, that expired or was open
    /// when the input ended: into the output with `partial_flush`, to the
    /// `errors` port without.
    #[expect(clippy::too_many_arguments, reason = "a private step of `close`")]
    fn end(
        &mut self,
        key: A::Key,
        state: A::State,
        items: u64,
        why: UnfinishedReason,
        opened: Instant,
        now: Instant,
        out: &mut Vec<A::Out>,
    ) {
        if self.limits.partial_flush {
            let output = self.acc.flush_window(key, state, opened, now);
            self.emit(output, items, flush_reason(&why), out);
        } else {
            let partial = self.acc.flush_window(key.clone(), state, opened, now);
            self.give_up(key, partial, items, why);
        }
    }

    /// Stops counting an open state that leaves its slot as held. Returns
    /// its items.
    fn release<L: Slot<T, A>>(&mut self, slot: &L) -> u64 {
        let (items, bytes) = slot.counts(&self.acc);
        self.items_held -= items;
        self.bytes_held = self.bytes_held.wrapping_sub(bytes);
        if P::ENABLED
            && let Some(usage) = self.usage.remove(&slot.seq())
        {
            if usage.record.is_some() {
                self.spilled_keys -= 1;
            } else {
                self.memory -= usage.memory;
            }
        }
        items
    }

    #[inline]
    fn emit(
        &mut self,
        output: Option<A::Out>,
        items: u64,
        reason: FlushReason,
        out: &mut Vec<A::Out>,
    ) {
        self.delta.flushes.add(reason);
        match output {
            Some(output) => {
                out.push(output);
                self.delta.outputs += 1;
                self.delta.passed += items;
            }
            None => self.delta.filtered += items,
        }
    }

    /// Sends an expired or stopped state to the `errors` port, or, if it
    /// is not connected, logs and counts it as failed.
    fn give_up(
        &mut self,
        key: A::Key,
        partial: Option<A::Out>,
        items: u64,
        reason: UnfinishedReason,
    ) {
        self.delta.flushes.add(flush_reason(&reason));
        if self.errors_connected {
            self.delta.dead_lettered += items;
            self.unfinished.push(Unfinished {
                key,
                partial,
                reason,
            });
        } else {
            self.delta.failed += items;
            tracing::warn!(
                stage = self.name,
                items,
                %reason,
                "accumulator state not complete and `partial_flush` is off; its `errors` port is not connected, so it is dropped"
            );
        }
    }

    /// Accounts for an open state taken out of its slot whose spilled state
    /// could not be read back: its items are lost and counted as failed;
    /// the key goes to the `errors` port if it is connected.
    fn lose<L: Slot<T, A>>(&mut self, key: A::Key, slot: L, error: SpillError) {
        let items = self.release(&slot);
        self.delta.failed += items;
        tracing::warn!(
            stage = self.name,
            items,
            %error,
            "spilled accumulator state could not be read back; its items are lost"
        );
        if self.errors_connected {
            self.unfinished.push(Unfinished {
                key,
                partial: None,
                reason: UnfinishedReason::Spill(Arc::new(error)),
            });
        }
    }
}

/// The head of a chain that accumulates: takes items from its
/// [`Intake`], keeps one state per key with an [`Accumulator`], and emits
/// the outputs that become ready (complete, flushed by a limit, by
/// `max_latency`, expired by `ttl`).
///
/// An accumulation with deadlines (`max_latency`, `ttl`) must wake up at
/// them even when no input arrives, so it starts a chain of its own, fed
/// by an edge ([`EdgeReceiver`]): a [`pull`](Chain::pull) waits for either
/// the next chunk of the edge or the next deadline, whichever comes first,
/// and returns what became ready. One without deadlines can instead pull
/// the chain before it directly ([`Pulled`](super::Pulled)), in the same
/// segment, and save the edge's hop.
///
/// # Time
///
/// Time is [`tokio::time`], so paused-time tests work. There is one
/// deadline queue per accumulation, not a timer per key: each open state
/// has one entry (at most; none without `max_latency` or `ttl`), and the
/// task sleeps until the earliest. A million open keys cost memory, not
/// wake-ups.
///
/// # The end
///
/// When the input ends (everything upstream finished, because the input
/// was exhausted or the pipeline was [stopped](crate::lifecycle::PipelineHandle::stop)),
/// every open state is let go of, oldest first: flushed into the output
/// with `partial_flush = true`, sent to the `errors` port as
/// [`Unfinished`] with [`UnfinishedReason::Stopped`] otherwise; then the
/// pull returns [`Pull::Done`]. An [abort](crate::lifecycle::PipelineHandle::abort)
/// drops the task: nothing is flushed and spill files are removed.
///
/// # Accounting
///
/// Items taken count as `items_in`; while held in a state they are in
/// flight ([`StageStats::items_held`]). Each leaves exactly once: inside an
/// output (`passed`; outputs count as `items_out`), in no output when the
/// accumulator's flush returns `None` (`filtered`), inside an
/// [`Unfinished`] on the `errors` port (`dead_lettered`), or lost
/// (`failed`): unfinished with no `errors` port connected (logged at
/// `warn`), or in a spilled state that could not be read back.
pub struct AccumulateHead<T, A: Accumulator<T>, S, P = NoSpill, I = EdgeReceiver<T>> {
    intake: I,
    chunk: usize,
    input: Vec<T>,
    engine: Engine<T, A, S, P>,
    errors: Option<Broadcast<Unfinished<A::Key, A::Out>>>,
    sleep: Option<Pin<Box<Sleep>>>,
    ctx: StageContext,
    done: bool,
}

impl<T, A, S, I> AccumulateHead<T, A, S, NoSpill, I>
where
    A: Accumulator<T>,
    S: FnMut(&T) -> u64,
    I: Intake<T>,
{
    /// An accumulation taking its items from `intake` (an edge's receiver,
    /// read in chunks of about `chunk` items, or a [`Pulled`](super::Pulled)
    /// chain, read in the chain's own chunks), gathering them with
    /// `accumulator` under `policy`, measuring items
    /// with `size` (for `max_bytes` and batch byte totals;
    /// [`default_size`] if none is given), counting into `stats`.
    ///
    /// It never spills: `policy.spill` is ignored (with a warning); use
    /// [`spilling`](AccumulateHead::spilling) for that.
    pub fn new(
        intake: I,
        accumulator: A,
        size: S,
        policy: Policy,
        stats: Arc<StageStats>,
        chunk: usize,
    ) -> Self {
        if policy.spill.is_some() {
            tracing::warn!(
                stage = stats.name(),
                "`spill` needs `AccumulateHead::spilling`; this accumulation keeps its state in memory"
            );
        }
        AccumulateHead::build(intake, accumulator, size, &policy, NoSpill, stats, chunk)
    }
}

impl<T, A, S, I> AccumulateHead<T, A, S, DiskSpill<A::Key, A::State>, I>
where
    A: Accumulator<T>,
    A::Key: Spill,
    A::State: Spill,
    S: FnMut(&T) -> u64,
    I: Intake<T>,
{
    /// Like [`new`](AccumulateHead::new), and when the states in memory
    /// weigh more than `policy.spill`'s `max_memory` (as
    /// [`Accumulator::state_bytes`] estimates them), the least recently
    /// updated ones go to disk until they weigh at most three quarters of
    /// it. A spilled state is read back when its key's next item arrives,
    /// at its deadline, or at the end. Without `policy.spill` it never
    /// spills.
    ///
    /// A record that cannot be read back (a corrupt or missing spill file)
    /// loses its state: its items count as failed, and its key goes to the
    /// `errors` port with [`UnfinishedReason::Spill`].
    pub fn spilling(
        intake: I,
        accumulator: A,
        size: S,
        policy: Policy,
        stats: Arc<StageStats>,
        chunk: usize,
    ) -> Self {
        let spill = DiskSpill::new(policy.spill.as_ref());
        AccumulateHead::build(intake, accumulator, size, &policy, spill, stats, chunk)
    }
}

impl<T, A, S, P, I> AccumulateHead<T, A, S, P, I>
where
    A: Accumulator<T>,
{
    fn build(
        intake: I,
        mut accumulator: A,
        size: S,
        policy: &Policy,
        spill: P,
        stats: Arc<StageStats>,
        chunk: usize,
    ) -> Self {
        accumulator.configure(policy);
        let name = stats.name();
        AccumulateHead {
            intake,
            chunk: chunk.max(1),
            input: Vec::new(),
            engine: Engine {
                maps: Maps {
                    bare: HashMap::with_hasher(RandomState::default()),
                    counted: HashMap::with_hasher(RandomState::default()),
                },
                core: Core {
                    acc: accumulator,
                    size,
                    spill,
                    limits: Limits::new(policy),
                    now: Instant::now(),
                    deadlines: VecDeque::new(),
                    opened: Vec::new(),
                    times: Vec::new(),
                    next_seq: 0,
                    seq_limit: STALE,
                    closed: 0,
                    usage: HashMap::with_hasher(RandomState::default()),
                    tick: 0,
                    next_record: 0,
                    items_held: 0,
                    bytes_held: 0,
                    memory: 0,
                    spilled_keys: 0,
                    delta: AccumulatorDelta::default(),
                    unfinished: Vec::new(),
                    errors_connected: false,
                    spill_failed: false,
                    name,
                    _items: PhantomData,
                },
            },
            errors: None,
            sleep: None,
            ctx: StageContext::new(stats),
            done: false,
        }
    }

    /// Connects the `errors` port: states that expire or are still open at
    /// the end while `partial_flush` is off, and keys whose spilled state
    /// is lost, go to `errors` as [`Unfinished`]. Without it they are
    /// logged at `warn` and counted as failed.
    pub fn with_errors(mut self, errors: Broadcast<Unfinished<A::Key, A::Out>>) -> Self {
        self.errors = Some(errors);
        self.engine.core.errors_connected = true;
        self
    }

    /// The spiller: [`NoSpill`], or [`DiskSpill`] with its store.
    pub fn spiller(&self) -> &P {
        &self.engine.core.spill
    }

    /// Makes `seq` numbers be given out again before they reach `limit`,
    /// rather than `u32::MAX`, so that tests get there.
    #[cfg(test)]
    pub(crate) fn with_seq_limit(mut self, limit: u32) -> Self {
        self.engine.core.seq_limit = limit;
        self
    }

    /// The opening times kept, one per `seq` given out since they were
    /// last compacted.
    #[cfg(test)]
    pub(crate) fn opening_times(&self) -> usize {
        self.engine.core.opened.len()
    }

    /// The slots in the map, open or closed.
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.engine.maps.bare.len() + self.engine.maps.counted.len()
    }
}

enum Event {
    /// A chunk arrived (`true`) or the edge closed (`false`).
    Input(bool),
    /// The first deadline ran out.
    Timer,
}

impl<T, A: Accumulator<T>, S, P, I> Outputs for AccumulateHead<T, A, S, P, I> {
    type Out = A::Out;
}

impl<T, A, S, P, I> Chain for AccumulateHead<T, A, S, P, I>
where
    A: Accumulator<T>,
    S: FnMut(&T) -> u64,
    P: Spiller<A::Key, A::State>,
    I: Intake<T>,
{
    type Out = A::Out;

    async fn init(&mut self) -> Result<(), Error> {
        self.intake.init().await?;
        // In case nothing did (a chain driven by hand): makes the span and
        // the metric handles, as a fused stage does.
        self.ctx.stats().observe(DEFAULT_PIPELINE_NAME);
        Ok(())
    }

    async fn pull(&mut self, out: &mut Vec<A::Out>, control: &Control) -> Result<Pull, Error> {
        if self.done {
            return Ok(Pull::Done);
        }
        loop {
            let event = match self.engine.next_deadline() {
                None => Event::Input(
                    self.intake
                        .take(&mut self.input, self.chunk, control)
                        .await?,
                ),
                Some(at) if at <= Instant::now() => Event::Timer,
                // A chain fused before the accumulation cannot be raced
                // against the deadline: it is pulled, and the deadline
                // checked when it yields.
                Some(_) if !I::CANCEL_SAFE => Event::Input(
                    self.intake
                        .take(&mut self.input, self.chunk, control)
                        .await?,
                ),
                Some(at) => {
                    let sleep = match &mut self.sleep {
                        Some(sleep) => {
                            if sleep.deadline() != at {
                                sleep.as_mut().reset(at);
                            }
                            sleep
                        }
                        None => self.sleep.insert(Box::pin(tokio::time::sleep_until(at))),
                    };
                    // Both branches are cancel-safe: a chunk is either taken
                    // whole or left on the edge.
                    tokio::select! {
                        biased;
                        more = self.intake.take(&mut self.input, self.chunk, control) => Event::Input(more?),
                        () = sleep.as_mut() => Event::Timer,
                    }
                }
            };
            // Timed and traced like a fused stage: from the event to the
            // end of the pull, waits excluded; the clock is read per pull,
            // never per item (and for the histogram only if a recorder
            // records).
            let started = self.ctx.stats().start_chunk();
            let worked = {
                let span = self.ctx.stats().span();
                // Entered only if a subscriber wants it.
                let _entered = (!span.is_disabled()).then(|| span.enter());
                let now = Instant::now();
                let engine = &mut self.engine;
                match event {
                    Event::Input(true) => {
                        engine.core.delta.taken += self.input.len() as u64;
                        engine.push_chunk(&mut self.input, now, out);
                        engine.fire_due(now, out);
                        engine.spill_cold();
                        engine.sweep();
                        true
                    }
                    Event::Input(false) => {
                        engine.fire_due(now, out);
                        engine.close_all(now, out);
                        self.done = true;
                        true
                    }
                    Event::Timer => engine.fire_due(now, out),
                }
            };
            if !worked {
                // A stale deadline: nothing happened, nothing to report.
                continue;
            }
            let stats = self.ctx.stats();
            self.engine.publish(stats);
            if let Some(errors) = &mut self.errors {
                let send = errors.send(&mut self.engine.core.unfinished);
                let span = stats.span();
                if span.is_disabled() {
                    send.await;
                } else {
                    send.instrument(span.clone()).await;
                }
            }
            stats.finish_chunk(started);
            return Ok(if self.done { Pull::Done } else { Pull::More });
        }
    }

    /// Closes the chain fused before the accumulation, if any, then the
    /// `errors` port, and returns the first error of the chain before.
    async fn close(&mut self) -> Result<(), Error> {
        let upstream = self.intake.close().await;
        if let Some(errors) = self.errors.take() {
            errors.close().await;
        }
        self.ctx.stats().finish(true);
        upstream
    }
}

impl<T, A: Accumulator<T>, S, P, I> fmt::Debug for AccumulateHead<T, A, S, P, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccumulateHead")
            .field("stage", &self.ctx.name())
            .field("open_keys", &self.engine.open_keys())
            .field("items_held", &self.engine.core.items_held)
            .field("errors", &self.errors.is_some())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
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
