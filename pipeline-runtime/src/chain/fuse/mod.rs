//! A chain followed by one stage, run under the stage's error policy.

mod settle;

use std::marker::PhantomData;
use std::sync::Arc;

use tracing::Instrument;

use super::finish::{closed_stage, failed_init};
use super::{Chain, Fed, Outputs};
use crate::control::Control;
use crate::error::Error;
use crate::fan::{Broadcast, CloneInto, ErrorsPort, FailureRoute, LogFailures, clone_into};
use crate::metrics::{DEFAULT_PIPELINE_NAME, StageStats};
use crate::options::{Breaker, OnError, StageOptions};
use crate::policy::{BreakerState, CircuitBreaker, Jitter, Settle, StagePolicy};
use crate::stage::{Failures, Pull, Stage, StageContext, StageError};

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
        let on_error = crate::policy::on_error_or_default(options.on_error, P::HANDS_ON);
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
        let rules = StagePolicy::new(on_error, hands_on, breaker, Jitter::default(), stats.name());
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
