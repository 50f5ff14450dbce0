//! The engine of an accumulation: [`AccumulateHead`], the head of a chain
//! fed by an edge.

use std::collections::VecDeque;
use std::collections::hash_map::{Entry, HashMap};
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::codec::{Spill, SpillError};
use super::spiller::{DiskSpill, NoSpill, Spiller};
use super::{Accumulator, Completeness, Policy, Unfinished, UnfinishedReason};
use crate::chain::{Chain, Outputs};
use crate::channel::EdgeReceiver;
use crate::error::Error;
use crate::fan::{Broadcast, Outlet};
use crate::lifecycle::Control;
use crate::metrics::{AccumulatorDelta, AccumulatorGauges, FlushReason, StageStats};
use crate::stage::{Pull, StageContext};

/// The hasher of the per-key map.
type Hasher = foldhash::fast::RandomState;

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

/// The open state of one key, with what the engine knows about it.
struct Slot<S> {
    /// `None` while the state is spilled to disk.
    state: Option<S>,
    /// Items in the state.
    items: u64,
    /// Their sizes, summed.
    bytes: u64,
    /// Unique per opened state: tells a stale deadline from a live one, and
    /// names the state's spill record.
    id: u64,
    /// When the state was last updated, in updates (for spilling the
    /// coldest first).
    touched: u64,
    /// The state's memory, as last estimated (while it is in memory).
    memory: u64,
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
    id: u64,
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
        Limits {
            max_items: policy.max_items.map_or(u64::MAX, |n| n.max(1) as u64),
            max_bytes: policy.max_bytes.unwrap_or(u64::MAX),
            timer,
            partial_flush: policy.partial_flush,
        }
    }

    /// The limit an open state with `items` items of `bytes` bytes has
    /// reached, if any.
    #[inline]
    fn reached(&self, items: u64, bytes: u64) -> Option<FlushReason> {
        if items >= self.max_items {
            Some(FlushReason::Items)
        } else if bytes >= self.max_bytes {
            Some(FlushReason::Bytes)
        } else {
            None
        }
    }
}

/// Everything but the channels: the states, their deadlines and the
/// counts.
struct Engine<T, A: Accumulator<T>, S, P> {
    acc: A,
    size: S,
    spill: P,
    limits: Limits,
    map: HashMap<A::Key, Slot<A::State>, Hasher>,
    /// One deadline per opened state, in the order they run out. Every
    /// state's timer has the same length, so states opened later run out
    /// later and a FIFO queue is a priority queue; closed states leave a
    /// stale entry that is skipped when it comes up.
    deadlines: VecDeque<Deadline<A::Key>>,
    next_id: u64,
    tick: u64,
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
}

impl<T, A, S, P> Engine<T, A, S, P>
where
    A: Accumulator<T>,
    S: FnMut(&T) -> u64,
    P: Spiller<A::Key, A::State>,
{
    /// Takes one item: one hash lookup while the key's state is open.
    #[inline]
    fn push(&mut self, item: T, now: Instant, out: &mut Vec<A::Out>) {
        // The key and size functions are the user's code run on each
        // item: one that panics fails that item (counted, logged) instead
        // of taking the whole accumulation, and its state, down with it.
        let measured = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (self.acc.key(&item), (self.size)(&item))
        }));
        let (key, size) = match measured {
            Ok(measured) => measured,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                tracing::warn!(stage = self.name, panic = %message, "the key or size function panicked on an item; item dropped");
                self.delta.failed += 1;
                return;
            }
        };
        self.items_held += 1;
        self.bytes_held += size;
        if let Some(slot) = self.map.get_mut(&key) {
            let mut lost = None;
            if P::ENABLED && slot.state.is_none() {
                match self.spill.take(slot.id, &key) {
                    Ok(state) => {
                        let memory = self.acc.state_bytes(&state) as u64;
                        slot.state = Some(state);
                        slot.memory = memory;
                        self.memory += memory;
                        self.spilled_keys -= 1;
                    }
                    Err(error) => lost = Some(error),
                }
            }
            let closing = match (&mut slot.state, lost) {
                (Some(state), None) if slot.bytes.saturating_add(size) <= self.limits.max_bytes => {
                    self.acc.update_sized(&key, state, item, size);
                    slot.items += 1;
                    slot.bytes += size;
                    if P::ENABLED {
                        self.tick += 1;
                        slot.touched = self.tick;
                        let memory = self.acc.state_bytes(state) as u64;
                        self.memory = self.memory + memory - slot.memory;
                        slot.memory = memory;
                    }
                    let closing = match self.acc.check(&key, state) {
                        Completeness::Incomplete => self
                            .limits
                            .reached(slot.items, slot.bytes)
                            .map(Closing::Flush),
                        Completeness::Complete(output) => Some(Closing::Complete(output)),
                        Completeness::Expired(partial) => Some(Closing::Expired(partial)),
                    };
                    if let Some(closing) = closing {
                        let (key, slot) = self.map.remove_entry(&key).expect("the slot is open");
                        self.close(key, slot, closing, out);
                    }
                    return;
                }
                (_, Some(error)) => Err(error),
                // The item would take the state over max_bytes: flush the
                // state first, then open a new one with the item.
                _ => Ok(Closing::Flush(FlushReason::Bytes)),
            };
            let (old_key, slot) = self.map.remove_entry(&key).expect("the slot is open");
            match closing {
                Ok(closing) => self.close(old_key, slot, closing, out),
                Err(error) => self.lose(old_key, slot, error),
            }
        }
        self.open(key, item, size, now, out);
    }

    /// Opens a state for `key`, which has none, with its first item.
    fn open(&mut self, key: A::Key, item: T, size: u64, now: Instant, out: &mut Vec<A::Out>) {
        let Entry::Vacant(vacant) = self.map.entry(key) else {
            unreachable!("a key with an open state is never opened again");
        };
        let mut state = self.acc.open(vacant.key());
        self.acc.update_sized(vacant.key(), &mut state, item, size);
        let closing = match self.acc.check(vacant.key(), &mut state) {
            Completeness::Incomplete => self.limits.reached(1, size).map(Closing::Flush),
            Completeness::Complete(output) => Some(Closing::Complete(output)),
            Completeness::Expired(partial) => Some(Closing::Expired(partial)),
        };
        let id = self.next_id;
        self.next_id += 1;
        let mut slot = Slot {
            state: Some(state),
            items: 1,
            bytes: size,
            id,
            touched: 0,
            memory: 0,
        };
        if let Some(closing) = closing {
            let key = vacant.into_key();
            self.close(key, slot, closing, out);
            return;
        }
        if P::ENABLED {
            self.tick += 1;
            slot.touched = self.tick;
            slot.memory = slot
                .state
                .as_ref()
                .map_or(0, |s| self.acc.state_bytes(s) as u64);
            self.memory += slot.memory;
        }
        // A deadline too far away to represent is never reached.
        if let Some(at) = self
            .limits
            .timer
            .and_then(|(after, _)| now.checked_add(after))
        {
            self.deadlines.push_back(Deadline {
                at,
                id,
                key: vacant.key().clone(),
            });
        }
        vacant.insert(slot);
    }

    /// Lets go of a state taken out of the map, which must be in memory.
    fn close(
        &mut self,
        key: A::Key,
        slot: Slot<A::State>,
        closing: Closing<A::Out>,
        out: &mut Vec<A::Out>,
    ) {
        self.release(&slot);
        let items = slot.items;
        let state = slot
            .state
            .expect("a state is read back before it is closed");
        let partial_flush = self.limits.partial_flush;
        match closing {
            Closing::Flush(reason) => {
                let output = self.acc.flush(key, state);
                self.emit(output, items, reason, out);
            }
            Closing::Complete(output) => self.emit(Some(output), items, FlushReason::Complete, out),
            Closing::Expired(partial) if partial_flush => {
                self.emit(partial, items, FlushReason::Expired, out);
            }
            Closing::Expired(partial) => {
                self.give_up(key, partial, items, UnfinishedReason::Expired);
            }
            Closing::Ttl => self.end(key, state, items, UnfinishedReason::Expired, out),
            Closing::Stop => self.end(key, state, items, UnfinishedReason::Stopped, out),
        }
    }

    /// Lets go of a state that expired or was open when the input ended:
    /// into the output with `partial_flush`, to the `errors` port without.
    fn end(
        &mut self,
        key: A::Key,
        state: A::State,
        items: u64,
        why: UnfinishedReason,
        out: &mut Vec<A::Out>,
    ) {
        if self.limits.partial_flush {
            let output = self.acc.flush(key, state);
            self.emit(output, items, flush_reason(&why), out);
        } else {
            let partial = self.acc.flush(key.clone(), state);
            self.give_up(key, partial, items, why);
        }
    }

    /// Stops counting a state that leaves the map as held.
    fn release(&mut self, slot: &Slot<A::State>) {
        self.items_held -= slot.items;
        self.bytes_held -= slot.bytes;
        if P::ENABLED {
            if slot.state.is_some() {
                self.memory -= slot.memory;
            } else {
                self.spilled_keys -= 1;
            }
        }
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

    /// Accounts for a spilled state that could not be read back: its items
    /// are lost and counted as failed; the key goes to the `errors` port if
    /// it is connected.
    fn lose(&mut self, key: A::Key, slot: Slot<A::State>, error: SpillError) {
        self.release(&slot);
        self.delta.failed += slot.items;
        tracing::warn!(
            stage = self.name,
            items = slot.items,
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

    /// Reads a state taken out of the map back from disk if it was spilled.
    fn read_back(&mut self, key: &A::Key, slot: &mut Slot<A::State>) -> Result<(), SpillError> {
        if slot.state.is_none() {
            let state = self.spill.take(slot.id, key)?;
            slot.memory = self.acc.state_bytes(&state) as u64;
            slot.state = Some(state);
            self.memory += slot.memory;
            self.spilled_keys -= 1;
        }
        Ok(())
    }

    /// The first live deadline, dropping stale ones from the front.
    fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(first) = self.deadlines.front() {
            if self.map.get(&first.key).is_some_and(|s| s.id == first.id) {
                return Some(first.at);
            }
            self.deadlines.pop_front();
        }
        None
    }

    /// Runs every deadline up to `now`. Returns whether a state was let go
    /// of.
    fn fire_due(&mut self, now: Instant, out: &mut Vec<A::Out>) -> bool {
        let Some((_, timer)) = self.limits.timer else {
            return false;
        };
        let mut fired = false;
        while self.deadlines.front().is_some_and(|d| d.at <= now) {
            let Some(due) = self.deadlines.pop_front() else {
                break;
            };
            if self.map.get(&due.key).is_none_or(|s| s.id != due.id) {
                continue;
            }
            let (key, mut slot) = self.map.remove_entry(&due.key).expect("the slot is open");
            fired = true;
            if let Err(error) = self.read_back(&key, &mut slot) {
                self.lose(key, slot, error);
                continue;
            }
            let closing = match timer {
                Timer::Latency => Closing::Flush(FlushReason::Latency),
                Timer::Ttl => Closing::Ttl,
            };
            self.close(key, slot, closing, out);
        }
        fired
    }

    /// The input ended: lets go of every open state, oldest first.
    fn close_all(&mut self, out: &mut Vec<A::Out>) {
        let mut open: Vec<_> = self.map.drain().collect();
        open.sort_unstable_by_key(|(_, slot)| slot.id);
        self.deadlines.clear();
        for (key, mut slot) in open {
            match self.read_back(&key, &mut slot) {
                Ok(()) => self.close(key, slot, Closing::Stop, out),
                Err(error) => self.lose(key, slot, error),
            }
        }
    }

    /// While the states in memory weigh more than the budget, spills the
    /// least recently updated ones until they weigh at most three quarters
    /// of it (so that the next few items do not spill again at once).
    fn spill_cold(&mut self) {
        let budget = self.spill.max_memory();
        if !P::ENABLED || self.memory <= budget {
            return;
        }
        let target = budget - budget / 4;
        let mut resident: Vec<(u64, u64)> = self
            .map
            .values()
            .filter(|slot| slot.state.is_some())
            .map(|slot| (slot.touched, slot.memory))
            .collect();
        resident.sort_unstable();
        let mut left = self.memory;
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
        for (key, slot) in &mut self.map {
            if slot.touched > coldest {
                continue;
            }
            let Some(state) = &slot.state else {
                continue;
            };
            match self.spill.put(slot.id, key, state) {
                Ok(bytes) => {
                    slot.state = None;
                    self.memory -= slot.memory;
                    self.spilled_keys += 1;
                    self.delta.bytes_spilled += bytes;
                }
                Err(error) => {
                    // Tried again after the next chunk; said once.
                    if !self.spill_failed {
                        self.spill_failed = true;
                        tracing::warn!(
                            stage = self.name,
                            %error,
                            "cannot spill accumulator state; keeping it in memory"
                        );
                    } else {
                        tracing::debug!(stage = self.name, %error, "cannot spill accumulator state");
                    }
                    return;
                }
            }
        }
    }

    /// Publishes what happened since the last call.
    fn publish(&mut self, stats: &StageStats) {
        let gauges = AccumulatorGauges {
            open_keys: self.map.len() as u64,
            items_held: self.items_held,
            bytes_held: self.bytes_held,
            spilled_keys: self.spilled_keys,
        };
        stats.record_accumulated(&self.delta, &gauges);
        self.delta = AccumulatorDelta::default();
    }
}

/// The head of a chain that accumulates: takes items from an edge, keeps
/// one state per key with an [`Accumulator`], and emits the outputs that
/// become ready (complete, flushed by a limit, by `max_latency`, expired by
/// `ttl`).
///
/// An accumulation must wake up at its deadlines even when no input
/// arrives, so it always starts a chain of its own, fed by an edge: a
/// [`pull`](Chain::pull) waits for either the next chunk of the edge or the
/// next deadline, whichever comes first, and returns what became ready.
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
/// When the edge closes (everything upstream finished, because the input
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
pub struct AccumulateHead<T, A: Accumulator<T>, S, P = NoSpill> {
    rx: EdgeReceiver<T>,
    chunk: usize,
    input: Vec<T>,
    engine: Engine<T, A, S, P>,
    errors: Option<Broadcast<Unfinished<A::Key, A::Out>>>,
    sleep: Option<Pin<Box<Sleep>>>,
    ctx: StageContext,
    done: bool,
}

impl<T, A, S> AccumulateHead<T, A, S, NoSpill>
where
    A: Accumulator<T>,
    S: FnMut(&T) -> u64,
{
    /// An accumulation reading chunks of about `chunk` items from `rx`,
    /// gathering them with `accumulator` under `policy`, measuring items
    /// with `size` (for `max_bytes` and batch byte totals;
    /// [`default_size`] if none is given), counting into `stats`.
    ///
    /// It never spills: `policy.spill` is ignored (with a warning); use
    /// [`spilling`](AccumulateHead::spilling) for that.
    pub fn new(
        rx: EdgeReceiver<T>,
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
        AccumulateHead::build(rx, accumulator, size, &policy, NoSpill, stats, chunk)
    }
}

impl<T, A, S> AccumulateHead<T, A, S, DiskSpill<A::Key, A::State>>
where
    A: Accumulator<T>,
    A::Key: Spill,
    A::State: Spill,
    S: FnMut(&T) -> u64,
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
        rx: EdgeReceiver<T>,
        accumulator: A,
        size: S,
        policy: Policy,
        stats: Arc<StageStats>,
        chunk: usize,
    ) -> Self {
        let spill = DiskSpill::new(policy.spill.as_ref());
        AccumulateHead::build(rx, accumulator, size, &policy, spill, stats, chunk)
    }
}

impl<T, A, S, P> AccumulateHead<T, A, S, P>
where
    A: Accumulator<T>,
{
    fn build(
        rx: EdgeReceiver<T>,
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
            rx,
            chunk: chunk.max(1),
            input: Vec::new(),
            engine: Engine {
                acc: accumulator,
                size,
                spill,
                limits: Limits::new(policy),
                map: HashMap::with_hasher(Hasher::default()),
                deadlines: VecDeque::new(),
                next_id: 0,
                tick: 0,
                items_held: 0,
                bytes_held: 0,
                memory: 0,
                spilled_keys: 0,
                delta: AccumulatorDelta::default(),
                unfinished: Vec::new(),
                errors_connected: false,
                spill_failed: false,
                name,
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
        self.engine.errors_connected = true;
        self
    }

    /// The spiller: [`NoSpill`], or [`DiskSpill`] with its store.
    pub fn spiller(&self) -> &P {
        &self.engine.spill
    }
}

enum Event {
    /// A chunk arrived (`true`) or the edge closed (`false`).
    Input(bool),
    /// The first deadline ran out.
    Timer,
}

impl<T, A: Accumulator<T>, S, P> Outputs for AccumulateHead<T, A, S, P> {
    type Out = A::Out;
}

impl<T, A, S, P> Chain for AccumulateHead<T, A, S, P>
where
    A: Accumulator<T>,
    S: FnMut(&T) -> u64,
    P: Spiller<A::Key, A::State>,
{
    type Out = A::Out;

    async fn init(&mut self) -> Result<(), Error> {
        Ok(())
    }

    async fn pull(&mut self, out: &mut Vec<A::Out>, _: &Control) -> Result<Pull, Error> {
        if self.done {
            return Ok(Pull::Done);
        }
        loop {
            let event = match self.engine.next_deadline() {
                None => Event::Input(self.rx.recv_into(&mut self.input, self.chunk).await),
                Some(at) if at <= Instant::now() => Event::Timer,
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
                        more = self.rx.recv_into(&mut self.input, self.chunk) => Event::Input(more),
                        () = sleep.as_mut() => Event::Timer,
                    }
                }
            };
            let now = Instant::now();
            let engine = &mut self.engine;
            match event {
                Event::Input(true) => {
                    engine.delta.taken += self.input.len() as u64;
                    for item in self.input.drain(..) {
                        engine.push(item, now, out);
                    }
                    engine.fire_due(now, out);
                    engine.spill_cold();
                }
                Event::Input(false) => {
                    engine.fire_due(now, out);
                    engine.close_all(out);
                    self.done = true;
                }
                Event::Timer => {
                    if !engine.fire_due(now, out) {
                        continue;
                    }
                }
            }
            engine.publish(self.ctx.stats());
            if let Some(errors) = &mut self.errors {
                errors.send(&mut self.engine.unfinished).await;
            }
            return Ok(if self.done { Pull::Done } else { Pull::More });
        }
    }

    async fn close(&mut self) -> Result<(), Error> {
        if let Some(errors) = self.errors.take() {
            errors.close().await;
        }
        Ok(())
    }
}

impl<T, A: Accumulator<T>, S, P> fmt::Debug for AccumulateHead<T, A, S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccumulateHead")
            .field("stage", &self.ctx.name())
            .field("open_keys", &self.engine.map.len())
            .field("items_held", &self.engine.items_held)
            .field("errors", &self.errors.is_some())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
