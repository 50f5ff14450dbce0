//! What a fused stage does when an item fails: error policies, panics,
//! retries with backoff and the circuit breaker.
//!
//! A [`Fuse`](crate::chain::Fuse) runs its stage under the node's merged
//! [options](crate::options::StageOptions): [`on_error`](OnError) and
//! [`breaker`](crate::options::Breaker).
//!
//! # Failures
//!
//! An item fails when the stage returns an error for it, when the stage's
//! call panics, or when the stage's circuit breaker is open. All three are
//! a [`StageError`](crate::stage::StageError) and go through the same
//! policy:
//!
//! | `on_error` | the failed item | counted as |
//! | --- | --- | --- |
//! | `ignore` (default) | logged at `warn` with the stage and the item's position, dropped | `failed` |
//! | `dead_letter` | sent to the `errors` port as a [`Failed`](crate::stage::Failed) | `dead_lettered` |
//! | `fail` | logged; the pipeline stops (see below) | `failed` |
//! | `retry(n, ..)` | called again up to `n` times, then as its `then` says | as `then` says |
//!
//! A stage whose `errors` port is connected and that sets no `on_error`
//! dead-letters; one whose port is not connected and that says
//! `dead_letter` ignores (counts and logs), as there is nowhere to send to.
//!
//! # Panics
//!
//! A panic in a stage is caught and fails an item; it never takes the task
//! down. Where the runtime calls the stage per item (the default
//! [`Stage::process_chunk`](crate::stage::Stage::process_chunk) and
//! [`SyncStage::process_chunk`](crate::stage::SyncStage::process_chunk)
//! loops, [`Failures::call`](crate::stage::Failures::call)), the panic
//! fails only its item, and the outputs it emitted before panicking are
//! removed. A stage that overrides `process_chunk` with its own loop over
//! the chunk (the built-in `map`, `filter`, `filter_map`, `inspect`,
//! `for_each`, ...) is guarded around the chunk: a panic fails every item of
//! that chunk the stage had not failed itself, **including items it had
//! already passed or filtered, whose outputs are discarded**, since which
//! items were done is unknown. A panic's [`StageError`](crate::stage::StageError) is
//! [`Panicked`](crate::stage::StageError::Panicked) with its message; the
//! panic hook still prints it as usual.
//!
//! # `fail`: stopping the pipeline
//!
//! The first item failed under `fail` (directly or after its retries) makes
//! the stage call [`Control::stop`](crate::control::Control::stop): every
//! source stops at its next chunk. Nothing in flight is dropped: the stage
//! handles the rest of its chunk and every chunk still reaching it (an item
//! that fails there is counted and logged; the first error is kept), every
//! chain drains its input edges, accumulators flush as on a graceful stop,
//! and `close` hooks run. The fused chain then returns
//! [`Error::ItemFailed`](crate::Error::ItemFailed) from its `close`, naming
//! the stage and the item's position (its index, from 0, among the items
//! the stage took in); [`join`](crate::chain::join) waits for the other
//! chains to drain before returning it, and `run()` returns it. Other run
//! errors (`init`, `close`, a task panic) still end the run at once.
//!
//! # Retry
//!
//! `retry(n, backoff = b)` keeps a clone of each input chunk (so the input
//! type must be `Clone`, checked where the fused stage is built) and, after
//! a chunk, calls the stage again on the chunk's failed items only, up to
//! `n` times: retry `k` waits `b * 2^(k-1)`, capped at `max_backoff`, with
//! [equal jitter](Jitter::Equal) from a generator seeded by the stage's
//! name ([`Backoff`]), in whole milliseconds, with
//! [`tokio::time::sleep`]. The failed items of one chunk are retried
//! together, as one smaller chunk, and wait together; their outputs follow
//! the outputs of the rest of the chunk. Items still failing after the last
//! attempt are handled by `then` (`ignore`, `dead_letter` or `fail`). Each
//! call again counts as one [retry](crate::metrics::StageStats::retries).
//! The stage waits inside its fused chain, so the chain (and, through
//! back-pressure, whatever feeds it) waits with it: a retry delays the
//! items behind it rather than letting them overtake it.
//!
//! # Circuit breaker
//!
//! See [`CircuitBreaker`]. A stage with a breaker is called one item at a
//! time (each call is timed and gated), instead of one chunk at a time.
//!
//! # Cost
//!
//! With the default policy (`ignore`, no breaker) a fused stage costs what
//! it did before policies existed: no clone, no clock read and no
//! allocation per item; the panic guard is set once per chunk, and no
//! policy state is allocated. `dead_letter` and `retry` clone each input
//! chunk (into a reused buffer); a breaker reads the clock twice per item.
//! A chunk with failures takes a slower path (with a policy set, one
//! allocation per such chunk).

mod backoff;
mod breaker;
pub(crate) mod run;
#[cfg(test)]
mod tests;

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

pub use backoff::{Backoff, Jitter, seed};
pub use breaker::{BreakerReport, BreakerState, CircuitBreaker};

pub use crate::options::{Breaker, Exhausted, OnError, Retry};

/// The message of a caught panic: its payload if that is a string, else
/// `"a panic"`.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// Makes the call `call` (which returns a future) and awaits its future,
/// catching a panic in either: `Err` holds the panic's message.
pub async fn guard<F: Future>(call: impl FnOnce() -> F) -> Result<F::Output, String> {
    let future =
        std::panic::catch_unwind(AssertUnwindSafe(call)).map_err(|panic| panic_message(&*panic))?;
    futures::FutureExt::catch_unwind(AssertUnwindSafe(future))
        .await
        .map_err(|panic| panic_message(&*panic))
}

/// What finally happens to a failed item: the policy itself, or a retry's
/// `then`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    Ignore,
    DeadLetter,
    Fail,
}

impl From<Exhausted> for Settle {
    fn from(then: Exhausted) -> Self {
        match then {
            Exhausted::Ignore => Settle::Ignore,
            Exhausted::DeadLetter => Settle::DeadLetter,
            Exhausted::Fail => Settle::Fail,
        }
    }
}

/// A stage's `on_error`: its own if it has one, else `dead_letter` when
/// its failed items have somewhere to go (its `errors` port is connected:
/// `hands_on`), else `ignore`. The one home of that default, for fused and
/// parallel stages alike.
pub(crate) fn on_error_or_default(on_error: Option<OnError>, hands_on: bool) -> OnError {
    on_error.unwrap_or(if hands_on {
        OnError::DeadLetter
    } else {
        OnError::Ignore
    })
}

/// What finally happens to an item failed under `on_error`, and the
/// retries to make before. A dead letter with nowhere to go (`!hands_on`)
/// is ignored instead: counted and logged.
pub(crate) fn settle_of(on_error: OnError, hands_on: bool) -> (Settle, Option<Retry>) {
    let (settle, retry) = match on_error {
        OnError::Ignore => (Settle::Ignore, None),
        OnError::DeadLetter => (Settle::DeadLetter, None),
        OnError::Fail => (Settle::Fail, None),
        OnError::Retry { retry, then } => (then.into(), Some(retry)),
    };
    let settle = match settle {
        Settle::DeadLetter if !hands_on => Settle::Ignore,
        settle => settle,
    };
    (settle, retry.filter(|retry| retry.attempts > 0))
}

/// Settles items failed under `on_error = fail`, given as their positions
/// in the stage's input and their errors: the first failure of the run
/// becomes `fatal` (the run's error, naming the stage and the item) and
/// stops the pipeline, so the sources stop and what is in flight drains;
/// later ones are logged as failing while it stops.
pub(crate) fn fail_run<E: std::fmt::Display>(
    stage: &'static str,
    fatal: &mut Option<crate::Error>,
    control: &crate::control::Control,
    failed: impl IntoIterator<Item = (u64, E)>,
) {
    for (position, error) in failed {
        if fatal.is_none() {
            tracing::error!(stage, position, %error, "item failed; stopping the pipeline (on_error = fail)");
            *fatal = Some(crate::Error::ItemFailed {
                stage,
                position,
                error: error.to_string(),
            });
            control.stop();
        } else {
            tracing::warn!(stage, position, %error, "item failed while the pipeline stops");
        }
    }
}

/// The run-time policy of one fused stage.
#[derive(Debug)]
pub(crate) struct StagePolicy {
    /// What happens to an item after its last attempt.
    pub(crate) settle: Settle,
    /// Retries, if any, and their waits.
    pub(crate) retry: Option<(Retry, Backoff)>,
    pub(crate) breaker: Option<CircuitBreaker>,
}

impl StagePolicy {
    /// The policy of `on_error`, for a stage whose failed items have
    /// somewhere to go if `hands_on` (see [`settle_of`]).
    pub(crate) fn new(
        on_error: OnError,
        hands_on: bool,
        breaker: Option<CircuitBreaker>,
        jitter: Jitter,
        stage: &str,
    ) -> Self {
        let (settle, retry) = settle_of(on_error, hands_on);
        StagePolicy {
            settle,
            retry: retry.map(|retry| (retry, Backoff::new(&retry, jitter, seed(stage)))),
            breaker,
        }
    }

    /// Spreads the waits with `jitter`, restarting the stage's sequence.
    pub(crate) fn set_jitter(&mut self, jitter: Jitter, stage: &str) {
        if let Some((retry, backoff)) = &mut self.retry {
            *backoff = Backoff::new(retry, jitter, seed(stage));
        }
    }
}
