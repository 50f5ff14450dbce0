//! The keyed state machine of an accumulation: [`Engine`], the per-key map
//! beside the [`Core`], taking items into their keys' states, running the
//! deadlines, sweeping closed slots, giving `seq` numbers out again,
//! spilling cold states and publishing the counters.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use tokio::time::Instant;

use super::lifecycle::{Closing, Core, Timer};
use super::slots::{Bare, Counted, Held, Keyed, Maps, RandomState, STALE, Slot, take};
use super::spiller::Spiller;
use super::{Accumulator, Completeness};
use crate::metrics::{AccumulatorDelta, AccumulatorGauges, FlushReason, StageStats};

/// Closed slots are swept out of the map once they outnumber both the open
/// ones and this.
const MIN_SWEEP: usize = 1024;

/// Everything but the channels: the per-key map, and the rest
/// ([`Core`]), apart so that a slot of the map and the rest can be borrowed
/// at once.
pub(super) struct Engine<T, A: Accumulator<T>, S, P> {
    pub(super) maps: Maps<A::Key, A::State>,
    pub(super) core: Core<T, A, S, P>,
}

impl<T, A: Accumulator<T>, S, P> Engine<T, A, S, P> {
    /// The keys with an open state.
    pub(super) fn open_keys(&self) -> u64 {
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
    pub(super) fn push_chunk(&mut self, items: &mut Vec<T>, now: Instant, out: &mut Vec<A::Out>) {
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
    pub(super) fn next_deadline(&mut self) -> Option<Instant> {
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
    pub(super) fn fire_due(&mut self, now: Instant, out: &mut Vec<A::Out>) -> bool {
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
    pub(super) fn close_all(&mut self, now: Instant, out: &mut Vec<A::Out>) {
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
    pub(super) fn sweep(&mut self) {
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
    pub(super) fn spill_cold(&mut self) {
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
    pub(super) fn publish(&mut self, stats: &StageStats) {
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
