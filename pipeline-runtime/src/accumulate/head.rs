//! [`AccumulateHead`], the head of a chain that accumulates: fed by an
//! edge, or pulling the chain before it, it drives the [`Engine`] and
//! emits what becomes ready.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use tokio::time::{Instant, Sleep};
use tracing::Instrument;

use super::codec::Spill;
use super::engine::Engine;
use super::intake::Intake;
use super::lifecycle::{Core, Limits};
use super::slots::{Maps, RandomState, STALE};
use super::spiller::{DiskSpill, NoSpill, Spiller};
use super::{Accumulator, Policy, Unfinished};
use crate::chain::{Chain, Outputs};
use crate::channel::EdgeReceiver;
use crate::control::Control;
use crate::error::Error;
use crate::fan::{Broadcast, Outlet};
use crate::metrics::{AccumulatorDelta, DEFAULT_PIPELINE_NAME, StageStats};
use crate::stage::{Pull, StageContext};

/// The item size an accumulation uses when none is given: the size of the
/// item's type, `size_of::<T>()` (memory it points to is not counted).
pub fn default_size<T>(_: &T) -> u64 {
    size_of::<T>() as u64
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
/// [`Unfinished`] with
/// [`UnfinishedReason::Stopped`](super::UnfinishedReason::Stopped)
/// otherwise; then the
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
    /// `errors` port with
    /// [`UnfinishedReason::Spill`](super::UnfinishedReason::Spill).
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
