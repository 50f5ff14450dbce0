//! Item-major runs of synchronous built-ins: adjacent `map`, `filter`,
//! `filter_map` and `inspect` composed into one pass over a chunk.
//!
//! A [`Fuse`](crate::chain::Fuse) per stage runs stage-major: each stage
//! makes its own pass over the chunk and writes its own output chunk. For
//! stages whose work per item is a few instructions, that is most of the
//! cost: every pass reloads the items (and, for items that point elsewhere,
//! takes the same cache misses again), and every intermediate chunk is
//! written and read back. [`Composed`] instead takes each item through
//! every [`Step`] of the run while it is in registers, and writes only the
//! run's output. Each stage still reports its own counts, once per chunk.

use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::chain::{Chain, Outputs};
use crate::error::Error;
use crate::lifecycle::Control;
use crate::metrics::{DEFAULT_PIPELINE_NAME, StageStats};
use crate::policy::panic_message;
use crate::stage::{Never, Pull, StageError};

/// A synchronous built-in applied to one item at a time, which can be
/// composed with the next into one pass ([`Composed`]).
///
/// ```
/// use pipeline_runtime::transform::{Step, filter, map};
///
/// let mut double = map(|x: u32| x * 2);
/// let mut small = filter(|x: &u32| *x < 5);
/// assert_eq!(double.step(2), Some(4));
/// assert_eq!(small.step(7), None);
/// ```
pub trait Step<I> {
    /// What it passes on.
    type Out;

    /// Whether it may pass nothing on for an item (a `filter`); if not,
    /// its count of items passed on is its count of items in, and is not
    /// kept per item.
    const FILTERS: bool;

    /// Takes one item: what it passes on, if anything.
    fn step(&mut self, item: I) -> Option<Self::Out>;
}

/// Steps taken one after the other on each item, each counting the items
/// it passes on: [`First`], then a [`Next`] per later step.
pub trait Steps<I> {
    /// What the last step passes on.
    type Out;

    /// How many steps.
    const LEN: usize;

    /// Takes one item through every step, stopping at the first that
    /// passes nothing on, and counts what each step passed on. If a step
    /// panics, its index (from 0) is left in `at` as the panic unwinds.
    fn run(&mut self, item: I, at: &Cell<usize>) -> Option<Self::Out>;

    /// [`run`](Steps::run), but without counting what the last step passes
    /// on: the caller counts that (what it emits), and a counter kept in
    /// memory and bumped per item would be a dependency from each item to
    /// the next.
    fn run_last(&mut self, item: I, at: &Cell<usize>) -> Option<Self::Out>;

    /// Appends, first step to last, how many items each passed on since
    /// the last call, given that `taken` items entered the first, that
    /// `failed[k]` items panicked in step `k` and, if this is the whole run
    /// taken by [`run_last`](Steps::run_last), that `emitted` came out of
    /// the last; returns the last step's count. Resets the counts.
    fn take_passed(
        &mut self,
        taken: u64,
        emitted: Option<u64>,
        failed: &[u64],
        into: &mut Vec<u64>,
    ) -> u64;
}

/// Leaves a step's index in `at` if it is dropped while the step panics;
/// forgotten when the step returns, so it costs nothing then.
struct OnUnwind<'a> {
    at: &'a Cell<usize>,
    index: usize,
}

impl Drop for OnUnwind<'_> {
    fn drop(&mut self) {
        self.at.set(self.index);
    }
}

/// Calls `step` on `item`, leaving `index` in `at` if it panics.
#[inline(always)]
fn guarded<I, S: Step<I>>(step: &mut S, item: I, index: usize, at: &Cell<usize>) -> Option<S::Out> {
    let guard = OnUnwind { at, index };
    let out = step.step(item);
    std::mem::forget(guard);
    out
}

/// How many items step `index` passed on: `emitted` for the last step of
/// the run, its counter for a filtering step, else all it took (`before`)
/// but those that panicked in it.
fn passed_by(
    filters: bool,
    counter: &mut u64,
    before: u64,
    emitted: Option<u64>,
    failed: &[u64],
    index: usize,
) -> u64 {
    match emitted {
        Some(emitted) => emitted,
        None if filters => std::mem::take(counter),
        None => before - failed.get(index).copied().unwrap_or(0),
    }
}

/// The first step of a composed run.
#[derive(Debug)]
pub struct First<S> {
    step: S,
    passed: u64,
}

/// The steps `list`, then `step`.
#[derive(Debug)]
pub struct Next<L, S> {
    list: L,
    step: S,
    passed: u64,
}

impl<I, S: Step<I>> Steps<I> for First<S> {
    type Out = S::Out;

    const LEN: usize = 1;

    #[inline(always)]
    fn run(&mut self, item: I, at: &Cell<usize>) -> Option<S::Out> {
        let out = guarded(&mut self.step, item, 0, at)?;
        if S::FILTERS {
            self.passed += 1;
        }
        Some(out)
    }

    #[inline(always)]
    fn run_last(&mut self, item: I, at: &Cell<usize>) -> Option<S::Out> {
        guarded(&mut self.step, item, 0, at)
    }

    fn take_passed(
        &mut self,
        taken: u64,
        emitted: Option<u64>,
        failed: &[u64],
        into: &mut Vec<u64>,
    ) -> u64 {
        let passed = passed_by(S::FILTERS, &mut self.passed, taken, emitted, failed, 0);
        into.push(passed);
        passed
    }
}

impl<I, L: Steps<I>, S: Step<L::Out>> Steps<I> for Next<L, S> {
    type Out = S::Out;

    const LEN: usize = L::LEN + 1;

    #[inline(always)]
    fn run(&mut self, item: I, at: &Cell<usize>) -> Option<S::Out> {
        let item = self.list.run(item, at)?;
        let out = guarded(&mut self.step, item, L::LEN, at)?;
        if S::FILTERS {
            self.passed += 1;
        }
        Some(out)
    }

    #[inline(always)]
    fn run_last(&mut self, item: I, at: &Cell<usize>) -> Option<S::Out> {
        let item = self.list.run(item, at)?;
        guarded(&mut self.step, item, L::LEN, at)
    }

    fn take_passed(
        &mut self,
        taken: u64,
        emitted: Option<u64>,
        failed: &[u64],
        into: &mut Vec<u64>,
    ) -> u64 {
        let before = self.list.take_passed(taken, None, failed, into);
        let passed = passed_by(
            S::FILTERS,
            &mut self.passed,
            before,
            emitted,
            failed,
            L::LEN,
        );
        into.push(passed);
        passed
    }
}

/// A chain followed by a run of composed [`Steps`], one stage each: each
/// item of a chunk goes through every step before the next item starts.
///
/// Each stage reports as a fused stage does, once per chunk: its items in
/// and out and those it filtered. A recorder's chunk time
/// (`pipeline_stage_chunk_seconds`) is the whole pass's, for each stage of
/// the run, and the stages' spans are not entered (the pass is one loop).
/// A panic in a step's closure fails that item in that stage (logged at
/// `warn`, counted as failed, its message the stage's last error), and the
/// pass goes on with the next item: the run's stages have no options, so
/// their policy is the default, `ignore`.
///
/// `M` is what the chain before the run emits, `O` what the run emits.
pub struct Composed<A, L, M, O> {
    upstream: A,
    steps: L,
    input: Vec<M>,
    /// One per step, first to last.
    stats: Vec<Arc<StageStats>>,
    /// Scratch for the steps' counts: passed on, and panicked, per step.
    passed: Vec<u64>,
    failed: Vec<u64>,
    _out: PhantomData<fn() -> O>,
}

impl<A, S, M, O> Composed<A, First<S>, M, O> {
    /// `upstream >> step`, the first step of a run, counting into `stats`.
    pub fn new(upstream: A, step: S, stats: Arc<StageStats>) -> Self {
        Composed {
            upstream,
            steps: First { step, passed: 0 },
            input: Vec::new(),
            stats: vec![stats],
            passed: Vec::new(),
            failed: Vec::new(),
            _out: PhantomData,
        }
    }
}

impl<A, L, M, O> Composed<A, L, M, O> {
    /// The run followed by one more step, which emits `P`, counting into
    /// `stats`.
    pub fn then<S, P>(self, step: S, stats: Arc<StageStats>) -> Composed<A, Next<L, S>, M, P> {
        let Composed {
            upstream,
            steps,
            input,
            stats: mut all,
            passed,
            failed,
            _out,
        } = self;
        all.push(stats);
        Composed {
            upstream,
            steps: Next {
                list: steps,
                step,
                passed: 0,
            },
            input,
            stats: all,
            passed,
            failed,
            _out: PhantomData,
        }
    }
}

impl<A, L, M, O> Outputs for Composed<A, L, M, O> {
    type Out = O;
}

impl<A, L, M, O> Chain for Composed<A, L, M, O>
where
    A: Chain<Out = M>,
    L: Steps<M, Out = O>,
{
    type Out = O;

    fn init(&mut self) -> impl Future<Output = Result<(), Error>> {
        for stats in &self.stats {
            stats.observe(DEFAULT_PIPELINE_NAME);
        }
        self.upstream.init()
    }

    async fn pull(&mut self, out: &mut Vec<O>, control: &Control) -> Result<Pull, Error> {
        let pull = self.upstream.pull(&mut self.input, control).await?;
        let taken = self.input.len() as u64;
        if taken == 0 {
            return Ok(pull);
        }
        let started = self.stats[0].start_chunk();
        let before = out.len();
        let at = Cell::new(0);
        self.failed.clear();
        self.failed.resize(self.stats.len(), 0);
        let (steps, failed, stats) = (&mut self.steps, &mut self.failed, &self.stats);
        let mut rest = self.input.drain(..);
        // One `catch_unwind` per chunk, and one more per panic: the items
        // not yet taken stay in `rest`, outside the closure, and the pass
        // resumes with them.
        while let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| {
            for item in &mut rest {
                if let Some(item) = steps.run_last(item, &at) {
                    out.push(item);
                }
            }
        })) {
            let index = at.get();
            failed[index] += 1;
            let error = StageError::<Never>::Panicked(panic_message(&*panic));
            let stage = stats[index].name();
            tracing::warn!(stage, %error, "item failed; dropped");
            stats[index].record_error(error);
        }
        drop(rest);
        let emitted = (out.len() - before) as u64;
        self.passed.clear();
        self.steps
            .take_passed(taken, Some(emitted), &self.failed, &mut self.passed);
        let mut items_in = taken;
        for ((stats, &passed), &failed) in self.stats.iter().zip(&self.passed).zip(&self.failed) {
            stats.record_chunk(items_in, passed, items_in - passed - failed, failed);
            stats.finish_chunk(started);
            items_in = passed;
        }
        Ok(pull)
    }

    /// Closes the chain before the run, then marks each stage of the run
    /// finished (they have nothing of their own to close).
    async fn close(&mut self) -> Result<(), Error> {
        let upstream = self.upstream.close().await;
        for stats in &self.stats {
            stats.finish(true);
        }
        upstream
    }
}

impl<A, L, M, O> std::fmt::Debug for Composed<A, L, M, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.stats.iter().map(|s| s.name()).collect();
        f.debug_struct("Composed").field("stages", &names).finish()
    }
}
