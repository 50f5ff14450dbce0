//! The engine's [`Core`]: everything but its per-key map (the policy as
//! [`Limits`], the deadline queue, the opening times, spilling's
//! bookkeeping and the counters), and what happens to one state: opened,
//! updated, read back from disk, and let go of ([`Closing`]) into the
//! output or the `errors` port.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::codec::SpillError;
use super::slots::{Held, RandomState, Slot};
use super::spiller::Spiller;
use super::{Accumulator, Completeness, Policy, Unfinished, UnfinishedReason};
use crate::metrics::{AccumulatorDelta, FlushReason};

/// How a state that went unfinished for `why` counts among the flushes.
fn flush_reason(why: &UnfinishedReason) -> FlushReason {
    match why {
        UnfinishedReason::Stopped => FlushReason::Stop,
        UnfinishedReason::Expired | UnfinishedReason::Spill(_) => FlushReason::Expired,
    }
}

/// What spilling keeps about an open state, by its `seq` (only when the
/// spiller is enabled).
#[derive(Debug, Clone, Copy)]
pub(super) struct Usage {
    /// When the state was last updated, in updates (the coldest spill
    /// first).
    pub(super) touched: u64,
    /// The state's memory, as last estimated while in memory.
    pub(super) memory: u64,
    /// The spill record holding the state while it is on disk.
    pub(super) record: Option<u64>,
}

/// What the timer of a state does when it runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// `max_latency`: flush.
    Latency,
    /// `ttl`: expire.
    Ttl,
}

/// A deadline of one opened state.
pub(super) struct Deadline<K> {
    pub(super) at: Instant,
    pub(super) seq: u32,
    pub(super) key: K,
}

/// How a state is let go of.
pub(super) enum Closing<O> {
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

/// The policy in the form the engine checks it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    max_items: u64,
    pub(super) max_bytes: u64,
    pub(super) timer: Option<(Duration, Timer)>,
    partial_flush: bool,
}

impl Limits {
    pub(super) fn new(policy: &Policy) -> Self {
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
    pub(super) fn has_max_bytes(&self) -> bool {
        self.max_bytes != u64::MAX
    }

    /// The limit an open state with `items` items of `bytes` bytes has
    /// reached, if any. `BYTES` says whether `max_bytes` is set.
    #[inline]
    pub(super) fn reached<const BYTES: bool>(&self, items: u64, bytes: u64) -> Option<FlushReason> {
        if items >= self.max_items {
            Some(FlushReason::Items)
        } else if BYTES && bytes >= self.max_bytes {
            Some(FlushReason::Bytes)
        } else {
            None
        }
    }
}

/// The accumulator, the size function, the spiller, the deadlines and the
/// counts.
pub(super) struct Core<T, A: Accumulator<T>, S, P> {
    pub(super) acc: A,
    pub(super) size: S,
    pub(super) spill: P,
    pub(super) limits: Limits,
    /// When the chunk being pushed was taken.
    pub(super) now: Instant,
    /// One deadline per opened state, in the order they run out. Every
    /// state's timer has the same length, so states opened later run out
    /// later and a FIFO queue is a priority queue; closed states leave a
    /// stale entry that is skipped when it comes up.
    pub(super) deadlines: VecDeque<Deadline<A::Key>>,
    /// When each state was opened, kept here rather than in the state
    /// (which would make every map entry larger): by `seq`, the index of
    /// its time in `times`. Holds one entry per `seq` given out, so that
    /// `next_seq == opened.len()`;
    /// [`Engine::renumber`](super::engine::Engine::renumber) drops those of
    /// closed states.
    pub(super) opened: Vec<u32>,
    /// The times states were opened at, in order, once each: at most one
    /// per chunk of input.
    pub(super) times: Vec<Instant>,
    /// The `seq` of the next state opened. Numbers are given out again,
    /// from 0 in the order of the open states, before this reaches
    /// `seq_limit` ([`Engine::renumber`](super::engine::Engine::renumber)), so
    /// that `u32` never wraps.
    pub(super) next_seq: u32,
    /// `STALE` but in tests, which make it small to give numbers out again
    /// often.
    pub(super) seq_limit: u32,
    /// Slots in the map with no state.
    pub(super) closed: usize,
    /// Spilling's bookkeeping of each open state, by `seq` (empty when not
    /// spilling).
    pub(super) usage: HashMap<u32, Usage, RandomState>,
    pub(super) tick: u64,
    pub(super) next_record: u64,
    pub(super) items_held: u64,
    pub(super) bytes_held: u64,
    /// Memory of the states in memory (kept only when spilling).
    pub(super) memory: u64,
    pub(super) spilled_keys: u64,
    pub(super) delta: AccumulatorDelta,
    /// States on their way to the `errors` port.
    pub(super) unfinished: Vec<Unfinished<A::Key, A::Out>>,
    pub(super) errors_connected: bool,
    /// Whether a failed spill has been logged at `warn` already.
    pub(super) spill_failed: bool,
    pub(super) name: &'static str,
    pub(super) _items: PhantomData<fn(T)>,
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
    pub(super) fn measure(&mut self, item: &T) -> Option<(A::Key, u64)> {
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
    pub(super) fn open<L: Slot<T, A>>(
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
    pub(super) fn touch(&mut self, seq: u32, state: &A::State) {
        self.tick += 1;
        let memory = self.acc.state_bytes(state) as u64;
        if let Some(usage) = self.usage.get_mut(&seq) {
            usage.touched = self.tick;
            self.memory = self.memory + memory - usage.memory;
            usage.memory = memory;
        }
    }

    /// Reads the state of an open slot back from disk if it was spilled.
    pub(super) fn read_back<L: Slot<T, A>>(
        &mut self,
        key: &A::Key,
        slot: &mut L,
    ) -> Result<(), SpillError> {
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
    pub(super) fn close<L: Slot<T, A>>(
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
    pub(super) fn opened_at(&self, seq: u32) -> Instant {
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
    pub(super) fn lose<L: Slot<T, A>>(&mut self, key: A::Key, slot: L, error: SpillError) {
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
