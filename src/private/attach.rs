//! A bare-named stage's node, attached by its type: fused to the chain
//! before it, or on workers behind an edge when its `#[stage(parallel =
//! ..)]` defaults say so.

use std::sync::Arc;

use pipeline_runtime::chain::{Chain, Fuse, Outputs};
use pipeline_runtime::error::Error;
use pipeline_runtime::fan::{Broadcast, CloneInto, ErrorsPort, Hopped, hop_edge};
use pipeline_runtime::lifecycle::Control;
use pipeline_runtime::metrics::{EdgeStats, StageStats};
use pipeline_runtime::options;
use pipeline_runtime::parallel::{ParallelHead, Worker};
use pipeline_runtime::stage::{Failed, Stage};

use super::checks::{KeepsInput, RetriesInput, Unknown};
use super::defaults::{DefaultsOf, retry_cloner};

// A bare-named stage's node: fused to the chain before it, unless its
// `#[stage(parallel = ..)]` defaults say it runs on workers, which only its
// type knows. `(&DefaultsOf::<S>::new()).attach(..)` resolves to
// `AttachOnWorkers` for such a stage, else to `AttachFused`.

/// A `#[stage(parallel = ..)]`: runs on workers wherever it is used.
pub trait WorksInParallel {}

/// How a [parallel-by-default](WorksInParallel) stage taking `In` starts
/// its workers, and the key it orders by, written by `#[stage]` where the
/// types are known.
pub trait ParallelByDefault<In>: Stage<In> + Clone + Send + 'static {
    /// Spawns one of the stage's workers.
    fn spawn_worker(
        worker: Worker<In, pipeline_runtime::parallel::Clones<Self>, Self::Out, Self::Error>,
    ) -> JoinHandle<Result<(), Error>>;

    /// `by_key(f)`: the hash of an item's key, if the defaults order by key.
    const KEY: Option<fn(&In) -> u64> = None;
}

pub use pipeline_runtime::parallel::{JoinHandle, key_hash};

/// Attaches a stage that runs on workers by default ...
pub trait AttachOnWorkers<S> {
    /// `chain`, driven by `drive` into an edge built from `options`, read by
    /// the workers of `stage`.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn attach<A, P, F, Fut>(
        &self,
        chain: A,
        stage: S,
        stats: Arc<StageStats>,
        options: options::StageOptions,
        route: P,
        clone: Option<CloneInto<A::Out>>,
        drive: F,
        edge: &Arc<EdgeStats>,
    ) -> Unknown<
        <S as Stage<A::Out>>::Out,
        Hopped<
            ParallelHead<
                A::Out,
                pipeline_runtime::parallel::Clones<S>,
                <S as Stage<A::Out>>::Out,
                <S as Stage<A::Out>>::Error,
                P,
            >,
            A,
            A::Out,
            F,
            Fut,
        >,
    >
    where
        A: Chain,
        A::Out: Send + 'static,
        S: ParallelByDefault<A::Out>,
        <S as Stage<A::Out>>::Out: Send + 'static,
        <S as Stage<A::Out>>::Error: std::fmt::Display + Send + 'static,
        P: FailureRoute<A::Out, <S as Stage<A::Out>>::Error>,
        F: FnOnce(A, Broadcast<A::Out>, Control) -> Fut,
        Fut: Future<Output = Result<(), Error>>;
}

impl<S: WorksInParallel> AttachOnWorkers<S> for DefaultsOf<S> {
    fn attach<A, P, F, Fut>(
        &self,
        chain: A,
        stage: S,
        stats: Arc<StageStats>,
        options: options::StageOptions,
        route: P,
        clone: Option<CloneInto<A::Out>>,
        drive: F,
        edge: &Arc<EdgeStats>,
    ) -> Hopped<
        ParallelHead<
            A::Out,
            pipeline_runtime::parallel::Clones<S>,
            <S as Stage<A::Out>>::Out,
            <S as Stage<A::Out>>::Error,
            P,
        >,
        A,
        A::Out,
        F,
        Fut,
    >
    where
        A: Chain,
        A::Out: Send + 'static,
        S: ParallelByDefault<A::Out>,
        <S as Stage<A::Out>>::Out: Send + 'static,
        <S as Stage<A::Out>>::Error: std::fmt::Display + Send + 'static,
        P: FailureRoute<A::Out, <S as Stage<A::Out>>::Error>,
        F: FnOnce(A, Broadcast<A::Out>, Control) -> Fut,
        Fut: Future<Output = Result<(), Error>>,
    {
        let chunk = pipeline_runtime::parallel::chunk_for(
            options.parallel.unwrap_or(options::Parallelism::Fixed(1)),
        );
        let (output, rx) = hop_edge(&options, chunk, edge);
        let stages = pipeline_runtime::parallel::clones(stage);
        let head = ParallelHead::from_options_keyed_by(
            rx,
            stages,
            S::spawn_worker,
            &options,
            S::KEY,
            stats,
        );
        let head = head.with_route_cloned_by(options, route, clone);
        Hopped::new(head, chain, output, drive)
    }
}

/// ... and any other stage, fused to the chain before it.
pub trait AttachFused<S> {
    /// `chain >> stage`, run under `options`, with failed items that are
    /// dead-lettered going to `route`.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn attach<A, P, F, Fut>(
        &self,
        chain: A,
        stage: S,
        stats: Arc<StageStats>,
        options: options::StageOptions,
        route: P,
        clone: Option<CloneInto<A::Out>>,
        drive: F,
        edge: &Arc<EdgeStats>,
    ) -> Unknown<
        <S as Stage<A::Out>>::Out,
        Fuse<A, S, A::Out, <S as Stage<A::Out>>::Out, <S as Stage<A::Out>>::Error, P>,
    >
    where
        A: Outputs,
        S: Stage<A::Out>,
        P: FailureRoute<A::Out, <S as Stage<A::Out>>::Error>,
        F: FnOnce(A, Broadcast<A::Out>, Control) -> Fut;
}

impl<S> AttachFused<S> for &DefaultsOf<S> {
    #[inline]
    fn attach<A, P, F, Fut>(
        &self,
        chain: A,
        stage: S,
        stats: Arc<StageStats>,
        options: options::StageOptions,
        route: P,
        clone: Option<CloneInto<A::Out>>,
        _: F,
        _: &Arc<EdgeStats>,
    ) -> Fuse<A, S, A::Out, <S as Stage<A::Out>>::Out, <S as Stage<A::Out>>::Error, P>
    where
        A: Outputs,
        S: Stage<A::Out>,
        P: FailureRoute<A::Out, <S as Stage<A::Out>>::Error>,
        F: FnOnce(A, Broadcast<A::Out>, Control) -> Fut,
    {
        Fuse::with_route_cloned_by(chain, stage, stats, options, route, clone)
    }
}

/// `chain` and `stage`, checked that the stage takes what the chain emits:
/// the one place a mismatch is reported. After one, the chain's type is
/// unknown, so what is built with it next is not checked again.
#[allow(clippy::type_complexity)]
pub fn checked_stage<A, B>(
    chain: A,
    stage: B,
) -> (
    Unknown<<B as Stage<A::Out>>::Out, A>,
    Unknown<<B as Stage<A::Out>>::Out, B>,
)
where
    A: Outputs,
    B: Stage<A::Out>,
{
    (chain, stage)
}

/// The route of a node whose `errors` port is connected: its input must be
/// `Clone`, as failed items are sent on with it.
pub fn errors_route<A, E>(_: &A, errors: Broadcast<Failed<A::Out, E>>) -> ErrorsPort<A::Out, E>
where
    A: Outputs,
    A::Out: KeepsInput,
{
    ErrorsPort::new(errors)
}

/// How a node with a retrying option copies its inputs: `T` must be
/// `Clone`.
pub fn retry_input_cloner<A>(_: &A) -> Option<CloneInto<A::Out>>
where
    A: Outputs,
    A::Out: RetriesInput,
{
    Some(retry_cloner::<A::Out>())
}

pub use pipeline_runtime::fan::{FailureRoute, LogFailures};
