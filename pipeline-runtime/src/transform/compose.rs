//! Item-major runs of synchronous built-ins: adjacent `map`, `filter`,
//! `filter_map`, `inspect`, `take` and `skip`, and a synchronous
//! `for_each` ending them,
//! composed into one pass over a chunk.
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
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::chain::{Chain, Outputs};
use crate::control::Control;
use crate::error::Error;
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
/// assert_eq!(double.step(2).ok(), Some(Some(4)));
/// assert_eq!(small.step(7).ok(), Some(None));
/// ```
pub trait Step<I> {
    /// What it passes on.
    type Out;

    /// Why it fails an item: [`Never`] for the built-ins that cannot.
    type Error: fmt::Display;

    /// Whether it may pass nothing on for an item (a `filter`); if not,
    /// its count of items passed on is its count of items in (less those
    /// it failed), and is not kept per item. A step that says it does not
    /// filter must return `Ok(Some(..))` for every item it does not fail
    /// (or be a sink, [`ENDS`](Step::ENDS)): the counts rely on it.
    const FILTERS: bool;

    /// Whether it is a sink (`for_each`): it takes every item and passes
    /// nothing on, so it ends a run.
    const ENDS: bool = false;

    /// Takes one item: what it passes on, if anything, or why it failed it.
    fn step(&mut self, item: I) -> Result<Option<Self::Out>, Self::Error>;
}

/// What went wrong in one pass of a composed run: the step that is
/// panicking, and the items each step failed. Touched only when an item
/// fails.
#[derive(Debug)]
pub struct Misses<'a> {
    /// The index of the step that panicked, set as the panic unwinds.
    at: Cell<usize>,
    /// Items failed (or panicked) per step.
    failed: &'a mut [u64],
    stats: &'a [Arc<StageStats>],
}

/// `Misses::at` when no step is panicking.
const NO_STEP: usize = usize::MAX;

impl Misses<'_> {
    /// Counts, logs and records an item that step `index` failed.
    #[cold]
    #[inline(never)]
    fn fail(&mut self, index: usize, error: &dyn fmt::Display) {
        if let (Some(failed), Some(stats)) = (self.failed.get_mut(index), self.stats.get(index)) {
            *failed += 1;
            // Formatting runs the error's `Display`, the user's code: if
            // that panics, the item is already counted, and must not be
            // charged again to the step that last panicked.
            self.at.set(NO_STEP);
            tracing::warn!(stage = stats.name(), %error, "item failed; dropped");
            stats.record_error(error);
        }
    }

    /// [`fail`](Misses::fail) for the item whose step just panicked; a
    /// panic outside any step (in an error's `Display`) is only logged,
    /// its item having been counted already.
    fn panicked(&mut self, message: String) {
        let index = self.at.replace(NO_STEP);
        let error = StageError::<Never>::Panicked(message);
        if index == NO_STEP {
            tracing::warn!(%error, "a panic while an item's failure was reported");
            return;
        }
        self.fail(index, &error);
    }
}

/// The most steps a composed run may have: [`Next`] refuses more at
/// compile time.
pub const MAX_STEPS: usize = 16;

/// Per-step counts of the items passed on, kept in the pass's own frame:
/// as a local array indexed by constants, they live in registers, where a
/// counter in the run itself would be a load and a store per item, a
/// dependency from each item to the next.
pub type Counts = [u64; MAX_STEPS];

/// Steps taken one after the other on each item, each counting the items
/// it passes on: [`First`], then a [`Next`] per later step.
pub trait Steps<I> {
    /// What the last step passes on.
    type Out;

    /// How many steps.
    const LEN: usize;

    /// Whether the last step is a sink.
    const ENDS: bool;

    /// Takes one item through every step, stopping at the first that
    /// passes nothing on or fails it, and counts in `counts` what each
    /// filtering step passed on. A failure is counted in `misses`; if a
    /// step panics, its index is left there as the panic unwinds.
    fn run(&mut self, item: I, misses: &mut Misses<'_>, counts: &mut Counts) -> Option<Self::Out>;

    /// [`run`](Steps::run), but without counting what the last step passes
    /// on: the caller counts that (what it emits).
    fn run_last(
        &mut self,
        item: I,
        misses: &mut Misses<'_>,
        counts: &mut Counts,
    ) -> Option<Self::Out>;

    /// Appends, first step to last, how many items each passed on, given
    /// that `taken` items entered the first, that `counts[k]` came out of
    /// step `k` if it filters, that `failed[k]` items failed in it and, if
    /// this is the whole run taken by [`run_last`](Steps::run_last), that
    /// `emitted` came out of the last; returns the last step's count.
    fn passed(
        &self,
        taken: u64,
        emitted: Option<u64>,
        counts: &Counts,
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

/// Calls `step` on `item` as step `index` of the run: what it passes on;
/// a failure goes to `misses`, and so does the index if it panics.
#[inline(always)]
fn guarded<I, S: Step<I>>(
    step: &mut S,
    item: I,
    index: usize,
    misses: &mut Misses<'_>,
) -> Option<S::Out> {
    let guard = OnUnwind {
        at: &misses.at,
        index,
    };
    let out = step.step(item);
    std::mem::forget(guard);
    match out {
        Ok(out) => out,
        Err(error) => {
            misses.fail(index, &error);
            None
        }
    }
}

/// How many items step `index` passed on: `emitted` for the last step of
/// the run (unless it is a sink), its count for a filtering step, else all
/// it took (`before`) but those it failed.
fn passed_by<I, S: Step<I>>(
    counts: &Counts,
    before: u64,
    emitted: Option<u64>,
    failed: &[u64],
    index: usize,
) -> u64 {
    match emitted {
        Some(emitted) if !S::ENDS => emitted,
        _ if S::FILTERS => counts.get(index).copied().unwrap_or(0),
        _ => before.saturating_sub(failed.get(index).copied().unwrap_or(0)),
    }
}

/// Counts an item that step `index` passed on, if it filters.
#[inline(always)]
fn count<I, S: Step<I>>(counts: &mut Counts, index: usize) {
    if S::FILTERS
        && let Some(count) = counts.get_mut(index)
    {
        *count += 1;
    }
}

/// The first step of a composed run.
#[derive(Debug)]
pub struct First<S> {
    step: S,
}

/// The steps `list`, then `step`.
#[derive(Debug)]
pub struct Next<L, S> {
    list: L,
    step: S,
}

impl<I, S: Step<I>> Steps<I> for First<S> {
    type Out = S::Out;

    const LEN: usize = 1;

    const ENDS: bool = S::ENDS;

    #[inline(always)]
    fn run(&mut self, item: I, misses: &mut Misses<'_>, counts: &mut Counts) -> Option<S::Out> {
        let out = guarded(&mut self.step, item, 0, misses)?;
        count::<I, S>(counts, 0);
        Some(out)
    }

    #[inline(always)]
    fn run_last(&mut self, item: I, misses: &mut Misses<'_>, _: &mut Counts) -> Option<S::Out> {
        guarded(&mut self.step, item, 0, misses)
    }

    fn passed(
        &self,
        taken: u64,
        emitted: Option<u64>,
        counts: &Counts,
        failed: &[u64],
        into: &mut Vec<u64>,
    ) -> u64 {
        let passed = passed_by::<I, S>(counts, taken, emitted, failed, 0);
        into.push(passed);
        passed
    }
}

impl<I, L: Steps<I>, S: Step<L::Out>> Steps<I> for Next<L, S> {
    type Out = S::Out;

    const LEN: usize = {
        assert!(
            L::LEN < MAX_STEPS,
            "a composed run has at most MAX_STEPS steps"
        );
        L::LEN + 1
    };

    const ENDS: bool = S::ENDS;

    #[inline(always)]
    fn run(&mut self, item: I, misses: &mut Misses<'_>, counts: &mut Counts) -> Option<S::Out> {
        let item = self.list.run(item, misses, counts)?;
        let out = guarded(&mut self.step, item, Self::LEN - 1, misses)?;
        count::<L::Out, S>(counts, Self::LEN - 1);
        Some(out)
    }

    #[inline(always)]
    fn run_last(
        &mut self,
        item: I,
        misses: &mut Misses<'_>,
        counts: &mut Counts,
    ) -> Option<S::Out> {
        let item = self.list.run(item, misses, counts)?;
        guarded(&mut self.step, item, Self::LEN - 1, misses)
    }

    fn passed(
        &self,
        taken: u64,
        emitted: Option<u64>,
        counts: &Counts,
        failed: &[u64],
        into: &mut Vec<u64>,
    ) -> u64 {
        let before = self.list.passed(taken, None, counts, failed, into);
        let passed = passed_by::<L::Out, S>(counts, before, emitted, failed, Self::LEN - 1);
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
/// An item that a step fails (a `for_each` closure returning `Err`), or
/// whose closure panics, fails in that stage (logged at `warn`, counted as
/// failed, the error its last), and the pass goes on with the next item:
/// the run's stages have no options, so their policy is the default,
/// `ignore`. A run may end in a sink ([`Step::ENDS`]).
///
/// `M` is what the chain before the run emits, `O` what the run emits.
///
/// `map >> filter >> for_each` as one pass, by hand:
///
/// ```
/// use std::sync::Arc;
///
/// use pipeline_runtime::chain::{Head, drive};
/// use pipeline_runtime::graph::NodeKind;
/// use pipeline_runtime::io::{for_each, iter};
/// use pipeline_runtime::lifecycle::Control;
/// use pipeline_runtime::metrics::StageStats;
/// use pipeline_runtime::transform::{Composed, filter, map};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stats = |name, kind| Arc::new(StageStats::new(name, kind));
/// let (double, small) = (stats("map", NodeKind::Transform), stats("filter", NodeKind::Transform));
/// let mut seen = Vec::new();
/// let head = Head::new(iter(0..10u64), stats("iter", NodeKind::Source), 512);
/// let run = Composed::new(head, map(|x: u64| x * 2), Arc::clone(&double))
///     .then(filter(|x: &u64| *x < 10), Arc::clone(&small))
///     .then(for_each(|x: u64| seen.push(x)), stats("for_each", NodeKind::Sink));
/// drive(run, Control::new()).await.unwrap();
/// assert_eq!(seen, [0, 2, 4, 6, 8]);
/// assert_eq!((small.items_in(), small.items_out(), small.filtered()), (10, 5, 5));
/// # }
/// ```
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

impl<A, S> Composed<A, First<S>, A::Out, S::Out>
where
    A: Outputs,
    S: Step<A::Out>,
{
    /// `upstream >> step`, the first step of a run, counting into `stats`.
    pub fn new(upstream: A, step: S, stats: Arc<StageStats>) -> Self {
        Composed {
            upstream,
            steps: First { step },
            input: Vec::new(),
            stats: vec![stats],
            passed: Vec::new(),
            failed: Vec::new(),
            _out: PhantomData,
        }
    }
}

impl<A, L, M, O> Composed<A, L, M, O> {
    /// The run followed by one more step, counting into `stats`.
    pub fn then<S: Step<O>>(
        self,
        step: S,
        stats: Arc<StageStats>,
    ) -> Composed<A, Next<L, S>, M, S::Out> {
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
            steps: Next { list: steps, step },
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
        self.failed.clear();
        self.failed.resize(self.stats.len(), 0);
        let mut misses = Misses {
            at: Cell::new(NO_STEP),
            failed: &mut self.failed,
            stats: &self.stats,
        };
        let steps = &mut self.steps;
        let mut counts: Counts = [0; MAX_STEPS];
        let mut rest = self.input.drain(..);
        // One `catch_unwind` per chunk, and one more per panic: the items
        // not yet taken stay in `rest`, outside the closure, and the pass
        // resumes with them.
        while let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| {
            for item in &mut rest {
                if let Some(item) = steps.run_last(item, &mut misses, &mut counts) {
                    out.push(item);
                }
            }
        })) {
            misses.panicked(panic_message(&*panic));
        }
        drop(rest);
        let emitted = (out.len() - before) as u64;
        self.passed.clear();
        self.steps.passed(
            taken,
            Some(emitted),
            &counts,
            &self.failed,
            &mut self.passed,
        );
        let mut items_in = taken;
        let last = self.stats.len() - 1;
        for (k, ((stats, &passed), &failed)) in self
            .stats
            .iter()
            .zip(&self.passed)
            .zip(&self.failed)
            .enumerate()
        {
            // A sink takes every item it does not fail, and emits nothing.
            let items_out = if k == last && L::ENDS { 0 } else { passed };
            let filtered = items_in.saturating_sub(passed).saturating_sub(failed);
            stats.record_chunk(items_in, items_out, filtered, failed);
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
