//! Fusion: a linear run of stages executed inside one task as direct calls.
//!
//! A fused chain is pulled chunk by chunk from its end. [`Head`] fills a
//! chunk from its [`Source`]; each [`Fuse`] pulls a chunk from the chain
//! before it and runs it through one stage. The nesting is static, so the
//! compiler sees through the whole chain and a run of synchronous stages
//! becomes one loop per stage over a chunk held in cache.
//!
//! Each stage reports as it goes (see [`crate::metrics`]): its counters
//! and `metrics` handles once per chunk, the chunk's time when a recorder
//! records, and its `tracing` span entered around the chunk. When it
//! closes, it [finishes](StageStats::finish): finished, or failed if its
//! `close` failed or it failed an item under `on_error = fail`.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use tracing::Instrument;

use crate::control::Control;
use crate::error::Error;
use crate::fan::{Broadcast, CloneInto, ErrorsPort, FailureRoute, LogFailures, Outlet, clone_into};
use crate::metrics::{DEFAULT_PIPELINE_NAME, StageStats};
use crate::options::{Breaker, OnError, StageOptions};
use crate::policy::run::{Retrying, one_by_one, retry_failed, run_chunk};
use crate::policy::{BreakerState, CircuitBreaker, Jitter, Settle, StagePolicy};
use crate::stage::{Failures, Pull, Source, Stage, StageContext, StageError};

/// Items pulled from a source per chunk unless the pipeline says otherwise.
pub const DEFAULT_CHUNK: usize = 512;

/// The most items a [long-chunk](Head::with_long_chunks) head reads per
/// chunk.
pub const LONG_CHUNK: usize = 4096;

/// The most bytes of items a [long-chunk](Head::with_long_chunks) head
/// reads per chunk: larger items get fewer per chunk, never fewer than
/// [`DEFAULT_CHUNK`].
pub const LONG_CHUNK_BYTES: usize = 64 << 10;

/// A fused chain of stages that can be pulled for chunks of output.
pub trait Chain {
    /// The items the chain emits.
    type Out;

    /// Initialises every stage, source first.
    fn init(&mut self) -> impl Future<Output = Result<(), Error>>;

    /// Pulls the next chunk of outputs into `out` (which may stay empty if
    /// every item of the chunk was filtered). Returns [`Pull::Done`] with the
    /// chain's last chunk.
    fn pull(
        &mut self,
        out: &mut Vec<Self::Out>,
        control: &Control,
    ) -> impl Future<Output = Result<Pull, Error>>;

    /// Closes every stage, source first, so each sees its input end before
    /// it closes.
    fn close(&mut self) -> impl Future<Output = Result<(), Error>>;
}

/// The type of item a chain emits, known without checking the chain.
///
/// The generated code uses it to tell a closure its parameter type, and it
/// is implemented without bounds so that a type error earlier in the chain
/// is reported once, not again at every later stage.
pub trait Outputs {
    /// The items the chain emits.
    type Out;
}

/// A chain whose head takes items put in by hand: a
/// [`Feed`](crate::fan::Feed), the head of a diamond's branch, reached
/// through the stages fused after it.
pub trait Fed {
    /// The items the head takes.
    type In;

    /// Where to put the next chunk.
    fn feed(&mut self) -> &mut Vec<Self::In>;
}

/// A chain whose pull future is boxed: the expansion puts one every few
/// fused stages of a long chain.
///
/// A fused chain's pull future holds the pull future of the chain before
/// it, so its type nests once per stage, and rustc's layout query recurses
/// once per level: a chain of twenty stages awaited in an `async fn`
/// overflowed rustc's default depth limit. A box ends the nesting there
/// (the layout of a `Box` does not depend on what it holds), for one
/// allocation per chunk.
#[derive(Debug)]
pub struct Boxed<A>(pub A);

impl<A: Outputs> Outputs for Boxed<A> {
    type Out = A::Out;
}

impl<A: Fed> Fed for Boxed<A> {
    type In = A::In;

    #[inline]
    fn feed(&mut self) -> &mut Vec<A::In> {
        self.0.feed()
    }
}

impl<A: Chain> Chain for Boxed<A> {
    type Out = A::Out;

    fn init(&mut self) -> impl Future<Output = Result<(), Error>> {
        Box::pin(self.0.init())
    }

    fn pull(
        &mut self,
        out: &mut Vec<A::Out>,
        control: &Control,
    ) -> impl Future<Output = Result<Pull, Error>> {
        Box::pin(self.0.pull(out, control))
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Error>> {
        Box::pin(self.0.close())
    }
}

/// The start of a chain: a source.
pub struct Head<S> {
    source: S,
    ctx: StageContext,
    chunk: usize,
    /// The source has been given the stop signal ([`Source::watch_stop`]).
    watching: bool,
}

impl<S> Head<S> {
    /// A chain head reading chunks of up to `chunk` items from `source`.
    pub fn new(source: S, stats: Arc<StageStats>, chunk: usize) -> Self {
        Head {
            source,
            ctx: StageContext::new(stats),
            chunk: chunk.max(1),
            watching: false,
        }
    }
}

impl<S: Source> Head<S> {
    /// Reads longer chunks: as many items as fit in [`LONG_CHUNK_BYTES`],
    /// at most [`LONG_CHUNK`], never fewer than it read before.
    ///
    /// For a head whose chain does little per item and touches memory out
    /// of cache for each one (a random access into an accumulation's map,
    /// an item reached through a reference): reading the input in longer
    /// runs between those passes was measured to matter (`benches/linear`,
    /// `accumulate` and `nexmark`, in `BENCHMARKS.md`). A source with
    /// fewer items ready returns what it has, so a longer chunk holds
    /// nothing back.
    pub fn with_long_chunks(mut self) -> Self {
        let fits = LONG_CHUNK_BYTES / size_of::<S::Out>().max(1);
        self.chunk = self.chunk.max(fits.min(LONG_CHUNK));
        self
    }
}

impl<S: Source> Outputs for Head<S> {
    type Out = S::Out;
}

impl<S: Source> Chain for Head<S> {
    type Out = S::Out;

    async fn init(&mut self) -> Result<(), Error> {
        let stats = self.ctx.stats();
        stats.observe(DEFAULT_PIPELINE_NAME);
        let init = self.source.init(&self.ctx).await;
        init.map_err(|source| failed_init(stats, source))
    }

    async fn pull(&mut self, out: &mut Vec<S::Out>, control: &Control) -> Result<Pull, Error> {
        if !self.watching {
            self.watching = true;
            self.source.watch_stop(control);
        }
        let before = out.len();
        let max = before + self.chunk;
        let stats = self.ctx.stats();
        let started = stats.start_chunk();
        // `None`: the pipeline is stopping; the source hands on only what
        // it already accepted.
        let filled = if control.is_stopping() {
            None
        } else {
            let fill = self.source.fill(out, max, &self.ctx);
            let fill = async {
                tokio::select! {
                    biased;
                    filled = fill => Some(filled),
                    () = control.stopping() => None,
                }
            };
            let span = stats.span();
            if span.is_disabled() {
                fill.await
            } else {
                fill.instrument(span.clone()).await
            }
        };
        let filled = match filled {
            Some(filled) => filled,
            None => Ok(self.source.drain_accepted(out, max, &self.ctx).await),
        };
        stats.record_produced((out.len() - before) as u64);
        stats.finish_chunk(started);
        match filled {
            Ok(pull) => Ok(pull),
            Err(error) => {
                stats.record_source_error();
                let _entered = stats.span().enter();
                tracing::warn!(stage = self.ctx.name(), %error, "source read failed");
                stats.record_error(format_args!("source read failed: {error}"));
                Ok(Pull::More)
            }
        }
    }

    async fn close(&mut self) -> Result<(), Error> {
        let closed = self.source.close(&self.ctx).await;
        closed_stage(self.ctx.stats(), closed, None)
    }
}

/// A chain `A` followed by the stage `B`, which takes `M` and emits `O`
/// and fails items with `E`; the failed items are handled by the stage's
/// [error policy](crate::policy), and can be handed on through `P` (the
/// stage's `errors` port, [`ErrorsPort`], if it is connected; else
/// [`LogFailures`]).
///
/// `M` and `O` are parameters rather than projections so that this type
/// stays well-formed, and the mismatch is reported only where it is made.
///
/// Built with [`new`](Fuse::new) (the defaults: failures ignored, that is
/// counted and logged; no breaker; panics caught), or with a node's merged
/// [`StageOptions`]: [`with_options`](Fuse::with_options),
/// [`with_options_cloning`](Fuse::with_options_cloning) (able to retry),
/// [`with_errors`](Fuse::with_errors) (with a connected `errors` port) or
/// [`with_route`](Fuse::with_route).
pub struct Fuse<A, B, M, O, E, P = LogFailures> {
    upstream: A,
    stage: B,
    ctx: StageContext,
    input: Vec<M>,
    failures: Failures<E>,
    on_failure: P,
    /// The failures of the current chunk, by index in the chunk.
    failed: Vec<(usize, StageError<E>)>,
    /// Items taken in before the current chunk.
    taken: u64,
    /// Everything beyond the default policy (ignore, no breaker), boxed
    /// once so that a chain without policies stays as small as it was:
    /// the fused chain's future holds every stage of the chain.
    policy: Option<Box<Policy<M>>>,
    _out: PhantomData<fn() -> O>,
}

/// The policy of a fused stage that has one.
struct Policy<M> {
    rules: StagePolicy,
    /// Clones each input chunk into `kept`, when the policy needs the
    /// inputs again (dead-lettering or retrying); else `None`, and nothing
    /// is cloned.
    keep: Option<CloneInto<M>>,
    kept: Vec<M>,
    /// The one item in a call, for a stage behind a breaker.
    one: Vec<M>,
    /// The first item failed under `on_error = fail`, returned by `close`.
    fatal: Option<Error>,
}

impl<A, B, M, O, E> Fuse<A, B, M, O, E> {
    /// `upstream` followed by `stage`, counting into `stats`, with the
    /// default policy: a failed item (an error or a panic) is counted as
    /// failed, logged at `warn` and dropped.
    pub fn new(upstream: A, stage: B, stats: Arc<StageStats>) -> Self {
        Fuse::build(
            upstream,
            stage,
            stats,
            LogFailures,
            false,
            None,
            OnError::Ignore,
            None,
        )
    }

    /// `upstream` followed by `stage`, run under `options` (its
    /// `on_error` and `breaker`; the other options are not the fused
    /// stage's business), with no `errors` port: `dead_letter` is handled
    /// as `ignore`, as there is nowhere to send to.
    ///
    /// # Panics
    ///
    /// If `options` asks for `on_error = retry(..)`: retrying needs the
    /// input again, so build the stage with
    /// [`with_options_cloning`](Fuse::with_options_cloning) (which needs
    /// `M: Clone`) or [`with_errors`](Fuse::with_errors).
    pub fn with_options(
        upstream: A,
        stage: B,
        stats: Arc<StageStats>,
        options: StageOptions,
    ) -> Self {
        Fuse::with_route(upstream, stage, stats, options, LogFailures)
    }

    /// Like [`with_options`](Fuse::with_options), with `clone` to copy
    /// inputs if `options` retries (a `#[stage(on_error = retry(..))]`
    /// knows how to copy its input; other stages give `None`).
    ///
    /// # Panics
    ///
    /// If `options` asks for `on_error = retry(..)` and `clone` is `None`.
    pub fn with_options_cloned_by(
        upstream: A,
        stage: B,
        stats: Arc<StageStats>,
        options: StageOptions,
        clone: Option<CloneInto<M>>,
    ) -> Self {
        Fuse::with_route_cloned_by(upstream, stage, stats, options, LogFailures, clone)
    }

    /// Like [`with_options`](Fuse::with_options), for an input type that
    /// can be cloned, so that `on_error = retry(..)` can call the stage
    /// again on a failed item. Inputs are cloned only when `options` asks
    /// for a retry.
    pub fn with_options_cloning(
        upstream: A,
        stage: B,
        stats: Arc<StageStats>,
        options: StageOptions,
    ) -> Self
    where
        M: Clone,
    {
        Fuse::build(
            upstream,
            stage,
            stats,
            LogFailures,
            false,
            Some(clone_into::<M>),
            options.on_error(),
            options.breaker,
        )
    }
}

impl<A, B, M, O, E> Fuse<A, B, M, O, E, ErrorsPort<M, E>> {
    /// `upstream` followed by `stage`, run under `options`, with its
    /// `errors` port connected to `errors`. Unless `options` sets
    /// `on_error`, failed items are dead-lettered: sent to the port, each
    /// as a [`Failed`](crate::stage::Failed) with its input. Any policy
    /// works here, `retry(..)` included.
    pub fn with_errors(
        upstream: A,
        stage: B,
        stats: Arc<StageStats>,
        options: StageOptions,
        errors: Broadcast<crate::stage::Failed<M, E>>,
    ) -> Self
    where
        M: Clone,
    {
        Fuse::with_route(upstream, stage, stats, options, ErrorsPort::new(errors))
    }
}

impl<A, B, M, O, E, P> Fuse<A, B, M, O, E, P> {
    /// `upstream` followed by `stage`, with failed items going to
    /// `on_failure`: dead-lettered if it [hands them on](FailureRoute::HANDS_ON),
    /// else ignored (counted and logged). No breaker.
    pub fn with_failures(upstream: A, stage: B, stats: Arc<StageStats>, on_failure: P) -> Self
    where
        P: FailureRoute<M, E>,
    {
        Fuse::with_route(upstream, stage, stats, StageOptions::NONE, on_failure)
    }

    /// `upstream` followed by `stage`, run under `options`, with failed
    /// items that are dead-lettered going to `route`. An unset `on_error`
    /// means `dead_letter` if the route [hands items on](FailureRoute::HANDS_ON),
    /// else `ignore`; `dead_letter` on a route that does not hand on means
    /// `ignore`.
    ///
    /// # Panics
    ///
    /// If `options` asks for `on_error = retry(..)` and the route cannot
    /// [clone](FailureRoute::cloner) the input.
    pub fn with_route(
        upstream: A,
        stage: B,
        stats: Arc<StageStats>,
        options: StageOptions,
        route: P,
    ) -> Self
    where
        P: FailureRoute<M, E>,
    {
        Fuse::with_route_cloned_by(upstream, stage, stats, options, route, None)
    }

    /// Like [`with_route`](Fuse::with_route), with `clone` to copy inputs
    /// if the route cannot (a `#[stage(on_error = retry(..))]` knows how to
    /// copy its input).
    ///
    /// # Panics
    ///
    /// If `options` asks for `on_error = retry(..)` and neither `clone` nor
    /// the route can clone the input.
    pub fn with_route_cloned_by(
        upstream: A,
        stage: B,
        stats: Arc<StageStats>,
        options: StageOptions,
        route: P,
        clone: Option<CloneInto<M>>,
    ) -> Self
    where
        P: FailureRoute<M, E>,
    {
        let on_error = options.on_error.unwrap_or(if P::HANDS_ON {
            OnError::DeadLetter
        } else {
            OnError::Ignore
        });
        let clone = clone.or_else(|| route.cloner());
        assert!(
            clone.is_some() || !matches!(on_error, OnError::Retry { .. }),
            "stage `{}`: `on_error = retry(..)` needs a clone of each input; build the fused stage with `Fuse::with_options_cloning` or `Fuse::with_errors`",
            stats.name()
        );
        Fuse::build(
            upstream,
            stage,
            stats,
            route,
            P::HANDS_ON,
            clone,
            on_error,
            options.breaker,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        upstream: A,
        stage: B,
        stats: Arc<StageStats>,
        on_failure: P,
        hands_on: bool,
        clone: Option<CloneInto<M>>,
        on_error: OnError,
        breaker: Option<Breaker>,
    ) -> Self {
        let breaker = breaker.map(|config| CircuitBreaker::new(config, Arc::clone(&stats)));
        let mut rules = StagePolicy::new(on_error, breaker, Jitter::default(), stats.name());
        if rules.settle == Settle::DeadLetter && !hands_on {
            rules.settle = Settle::Ignore;
        }
        let plain =
            rules.settle == Settle::Ignore && rules.retry.is_none() && rules.breaker.is_none();
        let needs_inputs = rules.retry.is_some() || rules.settle == Settle::DeadLetter;
        let policy = (!plain).then(|| {
            Box::new(Policy {
                rules,
                keep: clone.filter(|_| needs_inputs),
                kept: Vec::new(),
                one: Vec::new(),
                fatal: None,
            })
        });
        Fuse {
            upstream,
            stage,
            failures: Failures::for_kind(stats.kind()),
            ctx: StageContext::new(stats),
            input: Vec::new(),
            on_failure,
            failed: Vec::new(),
            taken: 0,
            policy,
            _out: PhantomData,
        }
    }

    /// Spreads the waits between retries with `jitter` instead of the
    /// default [`Jitter::Equal`].
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        let stage = self.ctx.name();
        if let Some(policy) = &mut self.policy {
            policy.rules.set_jitter(jitter, stage);
        }
        self
    }

    /// Where the stage's circuit breaker is, or `None` without a breaker
    /// (also readable from its [`StageStats::breaker_state`]).
    pub fn breaker_state(&self) -> Option<BreakerState> {
        let breaker = self.policy.as_ref()?.rules.breaker.as_ref()?;
        Some(breaker.state())
    }
}

impl<A, B, M, O, E, P> Outputs for Fuse<A, B, M, O, E, P> {
    type Out = O;
}

impl<A: Fed, B, M, O, E, P> Fed for Fuse<A, B, M, O, E, P> {
    type In = A::In;

    #[inline]
    fn feed(&mut self) -> &mut Vec<A::In> {
        self.upstream.feed()
    }
}

impl<A, B, M, O, E, P> Chain for Fuse<A, B, M, O, E, P>
where
    A: Chain<Out = M>,
    B: Stage<M, Out = O, Error = E>,
    E: std::fmt::Display,
    P: FailureRoute<M, E>,
{
    type Out = O;

    async fn init(&mut self) -> Result<(), Error> {
        self.upstream.init().await?;
        let stats = self.ctx.stats();
        stats.observe(DEFAULT_PIPELINE_NAME);
        let init = self.stage.init(&self.ctx).await;
        init.map_err(|source| failed_init(stats, source))
    }

    async fn pull(&mut self, out: &mut Vec<O>, control: &Control) -> Result<Pull, Error> {
        let pull = self.upstream.pull(&mut self.input, control).await?;
        let items_in = self.input.len();
        if items_in == 0 {
            return Ok(pull);
        }
        let before = out.len();
        let started = self.ctx.stats().start_chunk();
        // Entered only if a subscriber wants it: even a disabled span's
        // wrapper costs, on every chunk.
        let span = self.ctx.stats().span();
        let (filtered, failed, dead_lettered) = if span.is_disabled() {
            self.process(out, control).await
        } else {
            let span = span.clone();
            self.process(out, control).instrument(span).await
        };
        let stats = self.ctx.stats();
        // Dead-lettered items count as passed here, then move to
        // dead-lettered.
        stats.record_chunk(
            items_in as u64,
            (out.len() - before) as u64,
            filtered,
            failed,
        );
        stats.record_dead_lettered(dead_lettered);
        stats.finish_chunk(started);
        self.taken += items_in as u64;
        Ok(pull)
    }

    /// Closes the chain before the stage, then the stage (even if closing
    /// the chain before it failed). Returns the first error of: the chain
    /// before, an item this stage failed under `on_error = fail`
    /// ([`Error::ItemFailed`]), closing this stage.
    async fn close(&mut self) -> Result<(), Error> {
        let upstream = self.upstream.close().await;
        let own = self.stage.close(&self.ctx).await;
        let fatal = self.policy.as_mut().and_then(|policy| policy.fatal.take());
        let own = closed_stage(self.ctx.stats(), own, fatal);
        upstream?;
        own
    }
}

/// The error of a stage whose `init` failed, which is marked failed.
fn failed_init(stats: &StageStats, source: crate::stage::BoxError) -> Error {
    stats.record_error(format_args!("init failed: {source}"));
    stats.finish(false);
    Error::Init {
        stage: stats.name(),
        source,
    }
}

/// Marks a stage that closed as finished, or failed if its `close` failed
/// or it failed an item under `on_error = fail` (`fatal`), and returns the
/// error it ends with (`fatal` first).
fn closed_stage(
    stats: &StageStats,
    closed: Result<(), crate::stage::BoxError>,
    fatal: Option<Error>,
) -> Result<(), Error> {
    let closed = closed.map_err(|source| {
        stats.record_error(format_args!("close failed: {source}"));
        Error::Close {
            stage: stats.name(),
            source,
        }
    });
    stats.finish(closed.is_ok() && fatal.is_none());
    match fatal {
        Some(fatal) => Err(fatal),
        None => closed,
    }
}

impl<A, B, M, O, E, P> Fuse<A, B, M, O, E, P>
where
    A: Chain<Out = M>,
    B: Stage<M, Out = O, Error = E>,
    E: std::fmt::Display,
    P: FailureRoute<M, E>,
{
    /// Runs the chunk in `self.input` through the stage under its policy,
    /// appending to `out`; returns how many of its items were filtered,
    /// failed and dead-lettered.
    async fn process(&mut self, out: &mut Vec<O>, control: &Control) -> (u64, u64, u64) {
        let breaker = match &mut self.policy {
            None => None,
            Some(policy) => {
                if let Some(clone) = policy.keep {
                    policy.kept.clear();
                    clone(&self.input, &mut policy.kept);
                }
                policy
                    .rules
                    .breaker
                    .as_mut()
                    .map(|breaker| (breaker, &mut policy.one))
            }
        };
        let mut filtered = match breaker {
            None => {
                run_chunk(
                    &mut self.stage,
                    &mut self.input,
                    out,
                    &mut self.failures,
                    &self.ctx,
                    0,
                    &mut self.failed,
                )
                .await
                .filtered
            }
            // Boxed: a future that only stages behind a breaker need.
            Some((breaker, one)) => {
                Box::pin(one_by_one(
                    &mut self.stage,
                    &mut self.input,
                    out,
                    &mut self.failures,
                    breaker,
                    one,
                    &self.ctx,
                    &mut self.failed,
                ))
                .await
                .filtered
            }
        };
        let (mut failed, mut dead_lettered) = (0, 0);
        if !self.failed.is_empty() {
            if self.policy.is_none() {
                failed = self.failed.len() as u64;
                ignore(self.ctx.stats(), self.taken, self.failed.drain(..));
            } else {
                // Boxed: failures are the slow path, and its future
                // (retries, the errors port) is large.
                let settled = Box::pin(self.settle(out, control)).await;
                filtered += settled.filtered;
                failed = settled.failed;
                dead_lettered = settled.dead_lettered;
            }
        }
        (filtered, failed, dead_lettered)
    }
}

/// Logs failed items at `warn` and drops them: `ignore`. The last one's
/// error becomes the stage's last error.
fn ignore<E: std::fmt::Display>(
    stats: &StageStats,
    taken: u64,
    failed: impl Iterator<Item = (usize, StageError<E>)>,
) {
    let stage = stats.name();
    let mut last = None;
    for (index, error) in failed {
        let position = taken + index as u64;
        tracing::warn!(stage, position, %error, "item failed; dropped");
        last = Some(error);
    }
    if let Some(error) = last {
        stats.record_error(error);
    }
}

/// How the failed items of a chunk finally ended.
struct Settled {
    /// Items that succeeded on a retry but emitted nothing.
    filtered: u64,
    /// Items counted as failed (ignored, or failing the pipeline).
    failed: u64,
    /// Items handed to the `errors` port.
    dead_lettered: u64,
}

impl<A, B, M, O, E, P> Fuse<A, B, M, O, E, P>
where
    B: Stage<M, Out = O, Error = E>,
    E: std::fmt::Display,
    P: FailureRoute<M, E>,
{
    /// Retries the chunk's failed items (in `self.failed`) as the policy
    /// says, then settles those still failing. Only for a stage with a
    /// policy.
    async fn settle(&mut self, out: &mut Vec<O>, control: &Control) -> Settled {
        let policy = self
            .policy
            .as_deref_mut()
            .expect("only a stage with a policy settles");
        let mut filtered = 0;
        // The inputs of the failed items, in the order of `self.failed`,
        // when the policy keeps them.
        let mut inputs = Vec::new();
        if policy.keep.is_some() {
            let mut wanted = self.failed.iter().map(|(index, _)| *index).peekable();
            for (index, item) in policy.kept.drain(..).enumerate() {
                if wanted.next_if_eq(&index).is_some() {
                    inputs.push(item);
                }
            }
        }
        let settle = policy.rules.settle;
        if let Some((retry, backoff)) = &mut policy.rules.retry {
            let retrying = Retrying {
                retry,
                backoff,
                clone: policy.keep.expect("a retrying stage keeps its inputs"),
                keep_last: settle == Settle::DeadLetter,
            };
            filtered += retry_failed(
                &mut self.stage,
                retrying,
                policy.rules.breaker.as_mut(),
                &mut policy.one,
                &mut self.failures,
                &self.ctx,
                &mut self.failed,
                &mut inputs,
                out,
            )
            .await
            .filtered;
        }
        let stage = self.ctx.name();
        let count = self.failed.len() as u64;
        match settle {
            Settle::Ignore => {
                ignore(self.ctx.stats(), self.taken, self.failed.drain(..));
                Settled {
                    filtered,
                    failed: count,
                    dead_lettered: 0,
                }
            }
            Settle::DeadLetter => {
                debug_assert_eq!(inputs.len(), self.failed.len());
                if let Some((_, error)) = self.failed.last() {
                    self.ctx.stats().record_error(error);
                }
                let failed = self
                    .failed
                    .drain(..)
                    .zip(inputs)
                    .map(|((_, error), input)| crate::stage::Failed {
                        stage,
                        input,
                        error,
                    })
                    .collect();
                self.on_failure.hand_on(failed).await;
                Settled {
                    filtered,
                    failed: 0,
                    dead_lettered: count,
                }
            }
            Settle::Fail => {
                // The last error of the chunk is the stage's last error,
                // recorded once (it formats and locks).
                if let Some((_, last)) = self.failed.last() {
                    self.ctx.stats().record_error(last);
                }
                for (index, error) in self.failed.drain(..) {
                    let position = self.taken + index as u64;
                    if policy.fatal.is_none() {
                        tracing::error!(stage, position, %error, "item failed; stopping the pipeline (on_error = fail)");
                        policy.fatal = Some(Error::ItemFailed {
                            stage,
                            position,
                            error: error.to_string(),
                        });
                        control.stop();
                    } else {
                        tracing::warn!(stage, position, %error, "item failed while the pipeline stops");
                    }
                }
                Settled {
                    filtered,
                    failed: count,
                    dead_lettered: 0,
                }
            }
        }
    }
}

/// Runs a chain to completion: initialise, pull until the source is done
/// (or the pipeline is stopped), then close. Closing marks each stage of
/// the chain [finished](StageStats::finish) (or failed); a chain cut short
/// by an error is marked by the [`Pipeline`](crate::lifecycle::Pipeline)
/// when its run ends.
///
/// (Not an `async fn`: its future holds the chain once, where an
/// `async fn` would hold its argument twice.)
#[allow(clippy::manual_async_fn)]
pub fn drive<C: Chain>(mut chain: C, control: Control) -> impl Future<Output = Result<(), Error>> {
    async move {
        chain.init().await?;
        let mut out = Vec::new();
        loop {
            let pull = chain.pull(&mut out, &control).await?;
            // Only a sink ends a complete chain, and sinks emit nothing.
            out.clear();
            if pull == Pull::Done {
                break;
            }
        }
        chain.close().await
    }
}

/// Runs a chain whose output leaves through an [`Outlet`] (a fan-out, a
/// merge input or a branch): like [`drive`], then closes the outlet so the
/// chains downstream see the end of their input.
///
/// The outlet is closed even when the chain fails, so downstream chains
/// finish with what they were sent instead of waiting forever.
#[allow(clippy::manual_async_fn)] // an `async fn` would hold its arguments twice
pub fn drive_into<C, O>(
    mut chain: C,
    mut outlet: O,
    control: Control,
) -> impl Future<Output = Result<(), Error>>
where
    C: Chain,
    O: Outlet<C::Out>,
{
    async move {
        let result = async {
            chain.init().await?;
            let mut out = Vec::new();
            loop {
                let pull = chain.pull(&mut out, &control).await?;
                outlet.send(&mut out).await;
                if pull == Pull::Done {
                    break;
                }
            }
            chain.close().await
        }
        .await;
        outlet.close().await;
        result
    }
}

/// Runs two parts of a pipeline concurrently in the current task. The
/// generated code nests it to run every fused chain of a graph.
///
/// An error that stops the pipeline gracefully ([`Error::ItemFailed`]:
/// an item failed under `on_error = fail`, and the sources were told to
/// stop) lets the other part drain what is in flight and finish; then the
/// first such error is returned. Any other error (`init`, `close`) ends
/// both parts at once and is returned.
///
/// (Built from combinators: an `async fn` would hold each part twice, and
/// nested joins would double the pipeline's future at every level.)
pub fn join<A, B>(a: A, b: B) -> impl Future<Output = Result<(), Error>>
where
    A: Future<Output = Result<(), Error>>,
    B: Future<Output = Result<(), Error>>,
{
    use futures::FutureExt;
    // A draining error counts as done for `try_join`, so the other part
    // runs on; it is returned once both parts are.
    fn done(result: Result<(), Error>) -> Result<Option<Error>, Error> {
        match result {
            Ok(()) => Ok(None),
            Err(error) if error.drains() => Ok(Some(error)),
            Err(error) => Err(error),
        }
    }
    futures::future::try_join(a.map(done), b.map(done)).map(|joined| {
        let (a, b) = joined?;
        match a.or(b) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::NodeKind;
    use crate::io::{Collected, collect, iter};
    use crate::transform::{filter, map};

    fn stats(name: &'static str, kind: NodeKind) -> Arc<StageStats> {
        Arc::new(StageStats::new(name, kind))
    }

    #[tokio::test]
    async fn a_hand_built_chain_runs_in_chunks_and_counts_per_stage() {
        let out = Collected::new();
        let source = stats("iter", NodeKind::Source);
        let double = stats("map", NodeKind::Transform);
        let odd = stats("filter", NodeKind::Transform);
        let sink = stats("collect", NodeKind::Sink);
        // A chunk of 3 makes the 10 items cross four chunks.
        let chain = Head::new(iter(0..10u32), source.clone(), 3);
        let chain: Fuse<_, _, u32, u32, crate::stage::Never> =
            Fuse::new(chain, map(|x: u32| x * 2 + 1), double.clone());
        let chain: Fuse<_, _, u32, u32, crate::stage::Never> =
            Fuse::new(chain, filter(|x: &u32| !x.is_multiple_of(3)), odd.clone());
        let chain: Fuse<_, _, u32, crate::stage::Never, crate::stage::Never> =
            Fuse::new(chain, collect(&out), sink.clone());
        drive(chain, Control::new()).await.unwrap();
        assert_eq!(out.take(), vec![1, 5, 7, 11, 13, 17, 19]);
        assert_eq!(source.items_out(), 10);
        assert_eq!((double.items_in(), double.items_out()), (10, 10));
        assert_eq!(
            (odd.items_in(), odd.filtered(), odd.items_out()),
            (10, 3, 7)
        );
        assert_eq!((sink.items_in(), sink.passed(), sink.filtered()), (7, 7, 0));
    }

    #[tokio::test]
    async fn a_chain_stopped_before_it_starts_reads_nothing_and_still_closes() {
        let out = Collected::new();
        let control = Control::new();
        control.stop();
        let source = stats("iter", NodeKind::Source);
        let chain = Head::new(iter(0..10u32), source.clone(), 4);
        let chain: Fuse<_, _, u32, crate::stage::Never, crate::stage::Never> =
            Fuse::new(chain, collect(&out), stats("collect", NodeKind::Sink));
        drive(chain, control).await.unwrap();
        assert!(out.is_empty());
        assert_eq!(source.items_out(), 0);
    }
}
