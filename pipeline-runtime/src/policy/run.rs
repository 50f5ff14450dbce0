//! Running a chunk through a stage under its policy: the panic guard, the
//! breaker's gate around each call, and the retries of failed items.
//!
//! Shared by a fused stage ([`Fuse`](crate::chain::Fuse)), which owns its
//! breaker, and the workers of a parallel stage, which share one.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::{Backoff, CircuitBreaker, Retry};
use crate::fan::CloneInto;
use crate::stage::{Failures, Stage, StageContext, StageError};

/// A circuit breaker as a call site sees it: owned by one fused stage, or
/// shared by the workers of a parallel stage.
pub(crate) trait Gate {
    /// Whether a call may start at `now`.
    fn admit(&mut self, now: Instant) -> bool;
    /// Records a call admitted earlier that ended at `end` after `elapsed`,
    /// failed or not.
    fn record(&mut self, end: Instant, elapsed: Duration, failed: bool);
}

impl Gate for CircuitBreaker {
    fn admit(&mut self, now: Instant) -> bool {
        CircuitBreaker::admit(self, now)
    }

    fn record(&mut self, end: Instant, elapsed: Duration, failed: bool) {
        let bad = failed || self.is_slow(elapsed);
        CircuitBreaker::record(self, end, bad);
    }
}

/// One breaker for all the workers of a parallel stage: the error rate and
/// the cooldown are the stage's, whichever worker made the calls.
#[derive(Debug, Clone)]
pub(crate) struct SharedBreaker(pub(crate) Arc<Mutex<CircuitBreaker>>);

impl SharedBreaker {
    pub(crate) fn new(breaker: CircuitBreaker) -> Self {
        SharedBreaker(Arc::new(Mutex::new(breaker)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CircuitBreaker> {
        // The breaker's state stays consistent across a panic (none of
        // its methods can panic halfway), so a poisoned lock is usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Gate for SharedBreaker {
    fn admit(&mut self, now: Instant) -> bool {
        Gate::admit(&mut *self.lock(), now)
    }

    fn record(&mut self, end: Instant, elapsed: Duration, failed: bool) {
        Gate::record(&mut *self.lock(), end, elapsed, failed);
    }
}

/// A gate if there is one, else every call goes through.
impl<G: Gate + ?Sized> Gate for Option<&mut G> {
    #[inline]
    fn admit(&mut self, now: Instant) -> bool {
        self.as_deref_mut().is_none_or(|gate| gate.admit(now))
    }

    #[inline]
    fn record(&mut self, end: Instant, elapsed: Duration, failed: bool) {
        if let Some(gate) = self.as_deref_mut() {
            gate.record(end, elapsed, failed);
        }
    }
}

/// What running items through a stage came to, besides outputs and
/// failures.
#[derive(Debug, Default)]
pub(crate) struct Ran {
    /// Items that succeeded without output.
    pub(crate) filtered: u64,
    /// The message of the last panic that escaped the stage, if one did:
    /// its items failed, and the instance may be broken.
    pub(crate) panic: Option<String>,
}

impl Ran {
    fn add(&mut self, other: Ran) {
        self.filtered += other.filtered;
        if other.panic.is_some() {
            self.panic = other.panic;
        }
    }
}

/// Runs one chunk through `stage` with a panic guard around the whole
/// call; failures go to `failed` by index in the chunk plus `offset`.
pub(crate) async fn run_chunk<B, M, E>(
    stage: &mut B,
    items: &mut Vec<M>,
    out: &mut Vec<B::Out>,
    failures: &mut Failures<E>,
    ctx: &StageContext,
    offset: usize,
    failed: &mut Vec<(usize, StageError<E>)>,
) -> Ran
where
    B: Stage<M, Error = E>,
{
    let count = items.len();
    let before = out.len();
    let start = failures.position();
    let guarded = {
        let (stage, chunk, outputs, records) =
            (&mut *stage, &mut *items, &mut *out, &mut *failures);
        super::guard(move || {
            // Moved in, so the closure is called once and the future may
            // keep the borrows.
            let (stage, chunk, outputs, records) = (stage, chunk, outputs, records);
            stage.process_chunk(chunk, outputs, records, ctx)
        })
        .await
    };
    let panic = match guarded {
        // A stage that leaves inputs behind would lose them silently.
        Ok(()) => {
            debug_assert!(items.is_empty(), "a stage must drain its input chunk");
            None
        }
        Err(message) => {
            out.truncate(before);
            failures.panicked_chunk(start, count, &message);
            Some(message)
        }
    };
    items.clear();
    let filtered = failures.take_all(|position, error| {
        failed.push(((position - start) as usize + offset, error));
    });
    Ran { filtered, panic }
}

/// Runs `items` through a stage behind `gate`, one item per call, each
/// gated and timed. Failures go to `failed` by index in `items` (a refused
/// item fails with [`StageError::BreakerOpen`]).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn one_by_one<B, M, E, G>(
    stage: &mut B,
    items: &mut Vec<M>,
    out: &mut Vec<B::Out>,
    failures: &mut Failures<E>,
    gate: &mut G,
    one: &mut Vec<M>,
    ctx: &StageContext,
    failed: &mut Vec<(usize, StageError<E>)>,
) -> Ran
where
    B: Stage<M, Error = E>,
    G: Gate + ?Sized,
{
    let mut ran = Ran::default();
    // One clock read per call: a call's end is the next one's start, and
    // a run of refused items reads no clock at all.
    let mut now = Instant::now();
    for (index, item) in items.drain(..).enumerate() {
        if !gate.admit(now) {
            failures.skip(1);
            failed.push((index, StageError::BreakerOpen));
            continue;
        }
        one.push(item);
        let failed_before = failed.len();
        ran.add(run_chunk(stage, one, out, failures, ctx, index, failed).await);
        let end = Instant::now();
        gate.record(end, end - now, failed.len() > failed_before);
        now = end;
    }
    ran
}

/// The retries of a stage: how many, how long to wait, and how to copy an
/// input so it can be tried again.
pub(crate) struct Retrying<'a, M> {
    pub(crate) retry: &'a Retry,
    pub(crate) backoff: &'a mut Backoff,
    pub(crate) clone: CloneInto<M>,
    /// Whether the inputs of items still failing after the last attempt
    /// are wanted (to dead-letter them).
    pub(crate) keep_last: bool,
}

/// Calls the stage again on the items of `failed` (by index in their
/// chunk, in order), whose inputs are `inputs` (same order), as `retrying`
/// says, each attempt after its backoff and one item per call. Items that
/// succeed leave `failed`
/// and their outputs go to `out`; on return `failed` holds the items still
/// failing and, if `keep_last`, `inputs` their inputs.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn retry_failed<B, M, E, G>(
    stage: &mut B,
    retrying: Retrying<'_, M>,
    mut gate: Option<&mut G>,
    one: &mut Vec<M>,
    failures: &mut Failures<E>,
    ctx: &StageContext,
    failed: &mut Vec<(usize, StageError<E>)>,
    inputs: &mut Vec<M>,
    out: &mut Vec<B::Out>,
) -> Ran
where
    B: Stage<M, Error = E>,
    G: Gate + ?Sized,
{
    let Retrying {
        retry,
        backoff,
        clone,
        keep_last,
    } = retrying;
    let attempts = retry.attempts;
    let mut ran = Ran::default();
    let mut retried = 0;
    while retried < attempts && !failed.is_empty() {
        retried += 1;
        tokio::time::sleep(backoff.delay(retried)).await;
        ctx.stats().record_retries(failed.len() as u64);
        // Keep the inputs again if another attempt or the caller may need
        // them.
        let keep_again = retried < attempts || keep_last;
        let mut items = std::mem::take(inputs);
        if keep_again {
            clone(&items, inputs);
        }
        let mut again = Vec::new();
        // One call per item, so that a panic, which fails every item of
        // its call, fails only its own item from now on.
        let mut gate = gate.as_deref_mut();
        ran.add(
            one_by_one(
                stage, &mut items, out, failures, &mut gate, one, ctx, &mut again,
            )
            .await,
        );
        // Still failing: those of `again`, by index in this retry.
        let previous = std::mem::take(failed);
        let mut clones = std::mem::take(inputs).into_iter();
        let mut again = again.into_iter().peekable();
        for (at, (index, _)) in previous.into_iter().enumerate() {
            let input = clones.next();
            if let Some((_, error)) = again.next_if(|(i, _)| *i == at) {
                failed.push((index, error));
                inputs.extend(input);
            }
        }
    }
    ran
}
