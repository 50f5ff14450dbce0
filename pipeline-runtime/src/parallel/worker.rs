//! The workers of a parallel stage: how their stages are made, how they are
//! spawned, and the loop each one runs.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::Error;
use crate::fan::CloneInto;
use crate::policy::run::{Ran, Retrying, SharedBreaker, one_by_one, retry_failed, run_chunk};
use crate::policy::{Backoff, Jitter, Retry, seed};
use crate::stage::{Failures, Stage, StageContext, StageError};

/// Where a parallel stage's workers get their own instance of the stage.
///
/// Each worker runs its own instance, made once when it starts and again
/// after a panic escaped the stage (the instance that panicked may be
/// broken, so it is dropped, without `close`, and replaced by a fresh one,
/// which is `init`ed like the first). Two kinds exist: [`Clones`] of a
/// stage that is `Clone`, and a [`Factory`] function.
pub trait Prototype: Clone + Send + 'static {
    /// The stage the workers run.
    type Stage;

    /// A fresh instance of the stage, not yet initialised.
    fn make(&self) -> Self::Stage;
}

/// Workers run clones of this stage: each worker keeps a pristine clone
/// and clones it again for each instance it makes. Built by [`clones`].
#[derive(Debug, Clone)]
pub struct Clones<B>(pub B);

/// Each worker of a parallel stage runs a clone of `stage`.
///
/// The clones are made before `init` is called on any of them, so a
/// stage that opens a connection in `init` gets one per worker.
pub fn clones<B: Clone + Send + 'static>(stage: B) -> Clones<B> {
    Clones(stage)
}

impl<B: Clone + Send + 'static> Prototype for Clones<B> {
    type Stage = B;

    fn make(&self) -> B {
        self.0.clone()
    }
}

/// Workers run stages made by a function, shared by all of them. Built by
/// [`factory`].
pub struct Factory<F>(Arc<F>);

/// Each worker of a parallel stage runs a stage made by calling `make`:
/// for stages that are not `Clone`. The function is shared by the workers,
/// which call it from their own threads, hence `Send + Sync`.
pub fn factory<F, B>(make: F) -> Factory<F>
where
    F: Fn() -> B + Send + Sync + 'static,
{
    Factory(Arc::new(make))
}

impl<F> Clone for Factory<F> {
    fn clone(&self) -> Self {
        Factory(Arc::clone(&self.0))
    }
}

impl<F> fmt::Debug for Factory<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Factory")
    }
}

impl<F, B> Prototype for Factory<F>
where
    F: Fn() -> B + Send + Sync + 'static,
{
    type Stage = B;

    fn make(&self) -> B {
        (self.0)()
    }
}

/// How a parallel stage starts a worker: a function that spawns
/// [`Worker::run`] as a task and returns its handle.
///
/// Write it where the stage's type is concrete, as the non-capturing
/// closure `|worker| spawn(worker.run())` (see [`spawn`]). It cannot be
/// written once inside the runtime: a worker runs on another thread, so its
/// future must be `Send`, and whether the futures of a stage's `async`
/// methods are `Send` cannot be stated as a bound on a generic stage in
/// stable Rust (that needs return-type notation). At a call site where the
/// stage's type is known, the compiler sees those futures and checks it.
pub type Spawn<In, M, O, E> = fn(Worker<In, M, O, E>) -> JoinHandle<Result<(), Error>>;

/// Spawns a worker's future on the tokio runtime: `tokio::spawn`, for code
/// that does not depend on tokio directly. On a multi-thread runtime the
/// workers run on its threads, in parallel with each other and with the
/// task that feeds them; on a current-thread runtime they still run
/// concurrently (interleaved at their `.await`s).
pub fn spawn<F>(worker: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(worker)
}

/// A chunk of items sent to a worker.
pub(super) struct Job<In> {
    /// The chunk's number, in the order chunks were dispatched.
    pub(super) id: u64,
    /// The position, among the items the stage took in, of its first item.
    pub(super) base: u64,
    pub(super) items: Vec<In>,
}

/// A processed chunk.
pub(super) struct Done<O, E> {
    pub(super) worker: usize,
    pub(super) id: u64,
    pub(super) base: u64,
    /// Items the chunk held.
    pub(super) items: usize,
    pub(super) out: Vec<O>,
    pub(super) filtered: u64,
    /// The failed items, by index in the chunk, in index order.
    pub(super) failed: Vec<(usize, StageError<E>)>,
    /// How long the stage took over the chunk.
    pub(super) elapsed: Duration,
    /// Whether a panic escaped the stage (the whole chunk failed).
    pub(super) panicked: bool,
}

/// What a worker does about its chunk's failed items before handing them
/// back: retry them, with its own backoff, and call the stage behind the
/// breaker all the workers share. Settling what still fails (dead letter,
/// fail, ignore) is the head's business.
pub(super) struct Rules<In> {
    /// Retries of a failed item, with how to copy an input to try it
    /// again.
    pub(super) retry: Option<(Retry, CloneInto<In>)>,
    pub(super) breaker: Option<SharedBreaker>,
}

impl<In> Rules<In> {
    pub(super) const NONE: Self = Rules {
        retry: None,
        breaker: None,
    };
}

impl<In> Clone for Rules<In> {
    fn clone(&self) -> Self {
        Rules {
            retry: self.retry,
            breaker: self.breaker.clone(),
        }
    }
}

/// What a worker tells the head.
pub(super) enum Msg<O, E> {
    /// Its stage is initialised.
    Ready,
    /// It processed a chunk.
    Done(Done<O, E>),
    /// Its stage's `init` failed (at start, or after a panic); it stopped.
    Fatal(Error),
    /// Its task unwound outside the panic guard (a panic in `init`,
    /// `clone` or `drop`); it stopped.
    Died {
        /// The worker.
        worker: usize,
    },
}

/// One worker of a parallel stage, ready to run; see [`Spawn`].
pub struct Worker<In, M, O, E> {
    index: usize,
    prototype: M,
    jobs: mpsc::UnboundedReceiver<Job<In>>,
    results: mpsc::UnboundedSender<Msg<O, E>>,
    ctx: StageContext,
    rules: Rules<In>,
}

impl<In, M, O, E> Worker<In, M, O, E> {
    pub(super) fn new(
        index: usize,
        prototype: M,
        jobs: mpsc::UnboundedReceiver<Job<In>>,
        results: mpsc::UnboundedSender<Msg<O, E>>,
        ctx: StageContext,
        rules: Rules<In>,
    ) -> Self {
        Worker {
            index,
            prototype,
            jobs,
            results,
            ctx,
            rules,
        }
    }

    /// The worker's number, from 0.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl<In, M, O, E> fmt::Debug for Worker<In, M, O, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("stage", &self.ctx.name())
            .field("index", &self.index)
            .finish()
    }
}

/// Tells the head that the worker's task ended abnormally, so it does not
/// wait for chunks that will never come back.
struct DeathNotice<O, E> {
    worker: usize,
    results: mpsc::UnboundedSender<Msg<O, E>>,
    armed: bool,
}

impl<O, E> Drop for DeathNotice<O, E> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.results.send(Msg::Died {
                worker: self.worker,
            });
        }
    }
}

impl<In, M, O, E> Worker<In, M, O, E>
where
    M: Prototype,
    M::Stage: Stage<In, Out = O, Error = E>,
{
    /// Runs the worker: makes and initialises its stage, processes the
    /// chunks it is sent until the head lets go of it, then closes the
    /// stage and returns what `close` returned.
    ///
    /// A panic escaping the stage's `process_chunk` fails that chunk's items
    /// (see [`Failures::panicked_chunk`]); the worker then drops the
    /// instance and goes on with a fresh one from its [`Prototype`],
    /// `init`ed first. An `init` error (of the first instance or of a
    /// fresh one) is sent to the head, which fails the run with it.
    pub async fn run(self) -> Result<(), Error> {
        let Worker {
            index,
            prototype,
            mut jobs,
            results,
            ctx,
            rules: Rules { retry, mut breaker },
        } = self;
        let mut notice = DeathNotice {
            worker: index,
            results: results.clone(),
            armed: true,
        };
        let mut stage = prototype.make();
        if let Err(error) = init(&mut stage, &ctx).await {
            notice.armed = false;
            let _ = results.send(Msg::Fatal(error));
            return Ok(());
        }
        let _ = results.send(Msg::Ready);
        let mut failures = Failures::for_kind(ctx.stats().kind());
        // Each worker waits its own backoff, spread differently from the
        // other workers'.
        let mut retry = retry.map(|(retry, clone)| {
            let seed = seed(ctx.name()) ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (retry, Backoff::new(&retry, Jitter::default(), seed), clone)
        });
        let mut scratch = Scratch {
            one: Vec::new(),
            inputs: Vec::new(),
        };
        while let Some(Job { id, base, items }) = jobs.recv().await {
            let count = items.len();
            let attempt = Attempt {
                stage: &mut stage,
                prototype: &prototype,
                ctx: &ctx,
                worker: index,
                retry: retry.as_mut(),
                breaker: breaker.as_mut(),
                failures: &mut failures,
                scratch: &mut scratch,
            };
            // Entered only if a subscriber wants it, as in a fused stage.
            let span = ctx.stats().span();
            let processed = if span.is_disabled() {
                attempt.run(items).await
            } else {
                attempt.run(items).instrument(span.clone()).await
            };
            let Ok(processed) = processed.map_err(|error| {
                notice.armed = false;
                let _ = results.send(Msg::Fatal(error));
            }) else {
                return Ok(());
            };
            let done = Done {
                worker: index,
                id,
                base,
                items: count,
                out: processed.out,
                filtered: processed.ran.filtered,
                failed: processed.failed,
                elapsed: processed.elapsed,
                panicked: processed.panicked,
            };
            if results.send(Msg::Done(done)).is_err() {
                // The head is gone: nothing to report to.
                break;
            }
            if let Some(message) = processed.ran.panic
                && let Err(error) =
                    renew::<In, M>(&mut stage, &prototype, &ctx, index, count, &message).await
            {
                notice.armed = false;
                let _ = results.send(Msg::Fatal(error));
                return Ok(());
            }
        }
        notice.armed = false;
        stage.close(&ctx).await.map_err(|source| Error::Close {
            stage: ctx.name(),
            source,
        })
    }
}

/// Buffers a worker reuses from chunk to chunk.
struct Scratch<In> {
    /// The one item of a call behind the breaker.
    one: Vec<In>,
    /// A copy of the chunk's inputs, to retry the failed ones.
    inputs: Vec<In>,
}

/// One chunk's run through a worker's stage: the first attempt, then the
/// retries of its failed items.
struct Attempt<'a, In, M: Prototype, E> {
    stage: &'a mut M::Stage,
    prototype: &'a M,
    ctx: &'a StageContext,
    worker: usize,
    retry: Option<&'a mut (Retry, Backoff, CloneInto<In>)>,
    breaker: Option<&'a mut SharedBreaker>,
    failures: &'a mut Failures<E>,
    scratch: &'a mut Scratch<In>,
}

/// A chunk, processed.
struct Processed<O, E> {
    out: Vec<O>,
    failed: Vec<(usize, StageError<E>)>,
    ran: Ran,
    /// How long the first attempt took.
    elapsed: Duration,
    /// Whether a panic escaped the stage on any attempt.
    panicked: bool,
}

impl<In, M, O, E> Attempt<'_, In, M, E>
where
    M: Prototype,
    M::Stage: Stage<In, Out = O, Error = E>,
{
    /// Runs `items`, then retries the failed ones, with a fresh instance
    /// if the first attempt panicked. Errs only if that instance's `init`
    /// failed.
    async fn run(self, mut items: Vec<In>) -> Result<Processed<O, E>, Error> {
        let Attempt {
            stage,
            prototype,
            ctx,
            worker,
            retry,
            mut breaker,
            failures,
            scratch,
        } = self;
        let count = items.len();
        let mut out = Vec::with_capacity(count);
        let mut failed = Vec::new();
        if let Some((_, _, clone)) = retry.as_deref() {
            scratch.inputs.clear();
            clone(&items, &mut scratch.inputs);
        }
        let started = Instant::now();
        let mut ran = match breaker.as_deref_mut() {
            None => run_chunk(stage, &mut items, &mut out, failures, ctx, 0, &mut failed).await,
            Some(gate) => {
                one_by_one(
                    stage,
                    &mut items,
                    &mut out,
                    failures,
                    gate,
                    &mut scratch.one,
                    ctx,
                    &mut failed,
                )
                .await
            }
        };
        // The first attempt's time, which `parallel = io` adapts to; the
        // retries' waits would only blur it.
        let elapsed = started.elapsed();
        let mut panicked = ran.panic.is_some();
        if let Some((retry, backoff, clone)) = retry
            && !failed.is_empty()
        {
            if let Some(message) = ran.panic.take() {
                renew::<In, M>(stage, prototype, ctx, worker, count, &message).await?;
            }
            let mut again = inputs_of(&failed, &mut scratch.inputs);
            let retrying = Retrying {
                retry,
                backoff,
                clone: *clone,
                // The head kept the chunk's inputs for the errors port.
                keep_last: false,
            };
            let retried = retry_failed(
                stage,
                retrying,
                breaker,
                &mut scratch.one,
                failures,
                ctx,
                &mut failed,
                &mut again,
                &mut out,
            )
            .await;
            ran.filtered += retried.filtered;
            ran.panic = retried.panic;
            panicked |= ran.panic.is_some();
        }
        Ok(Processed {
            out,
            failed,
            ran,
            elapsed,
            panicked,
        })
    }
}

/// The inputs, out of a copy of the whole chunk's, of its failed items.
// Not inline in `Attempt::run`: an iterator borrowing `failed` held
// across an `.await` would make the worker's future not `Send`.
fn inputs_of<In, E>(failed: &[(usize, StageError<E>)], chunk: &mut Vec<In>) -> Vec<In> {
    let mut wanted = failed.iter().map(|(index, _)| *index).peekable();
    let mut inputs = Vec::with_capacity(failed.len());
    for (at, input) in chunk.drain(..).enumerate() {
        if wanted.next_if_eq(&at).is_some() {
            inputs.push(input);
        }
    }
    inputs
}

/// Replaces an instance that panicked (it may be broken) by a fresh one,
/// `init`ed; the broken one is dropped without `close`.
async fn renew<In, M>(
    stage: &mut M::Stage,
    prototype: &M,
    ctx: &StageContext,
    worker: usize,
    items: usize,
    message: &str,
) -> Result<(), Error>
where
    M: Prototype,
    M::Stage: Stage<In>,
{
    tracing::error!(
        stage = ctx.name(),
        worker,
        items,
        panic = %message,
        "a parallel worker's stage panicked; its items failed, the stage is replaced"
    );
    let broken = std::mem::replace(stage, prototype.make());
    // The broken instance may panic again while dropped.
    let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(broken)));
    init(stage, ctx).await
}

async fn init<In, B: Stage<In>>(stage: &mut B, ctx: &StageContext) -> Result<(), Error> {
    stage.init(ctx).await.map_err(|source| Error::Init {
        stage: ctx.name(),
        source,
    })
}
