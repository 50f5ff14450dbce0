//! A node with `parallel`: the head that runs its workers, its options,
//! and the checks, made where the stage's type is known, that each part
//! of it can move to a worker's thread.

use std::marker::PhantomData;
use std::sync::Arc;

use pipeline_runtime::error::Error;
use pipeline_runtime::fan::{CloneInto, FailureRoute};
use pipeline_runtime::metrics::StageStats;
use pipeline_runtime::options;
use pipeline_runtime::parallel::JoinHandle;
use pipeline_runtime::stage::Stage;

use super::checks::Unknown;

// Parallel stages: a node with `parallel` heads its own segment and runs
// its workers as spawned tasks.

pub use pipeline_runtime::parallel::{Clones, ParallelHead, Worker};

/// `node` with `parallel`, reading from `rx`: one clone of `stage` per
/// worker.
#[allow(clippy::type_complexity)]
pub fn parallel<In, B>(
    rx: pipeline_runtime::channel::EdgeReceiver<In>,
    stage: B,
    spawn: pipeline_runtime::parallel::Spawn<
        In,
        pipeline_runtime::parallel::Clones<B>,
        <B as Stage<In>>::Out,
        <B as Stage<In>>::Error,
    >,
    options: options::StageOptions,
    stats: Arc<StageStats>,
) -> Unknown<
    <B as Stage<In>>::Out,
    ParallelHead<
        In,
        pipeline_runtime::parallel::Clones<B>,
        <B as Stage<In>>::Out,
        <B as Stage<In>>::Error,
    >,
>
where
    In: Send + 'static,
    B: Stage<In> + ParallelStage,
    <B as Stage<In>>::Out: Send + 'static,
    <B as Stage<In>>::Error: Send + 'static,
{
    ParallelHead::from_options(
        rx,
        pipeline_runtime::parallel::clones(stage),
        spawn,
        &options,
        stats,
    )
}

/// `node` with `parallel` and `by_key(key)`.
#[allow(clippy::type_complexity)]
pub fn parallel_by_key<In, B, K, H>(
    rx: pipeline_runtime::channel::EdgeReceiver<In>,
    stage: B,
    spawn: pipeline_runtime::parallel::Spawn<
        In,
        pipeline_runtime::parallel::Clones<B>,
        <B as Stage<In>>::Out,
        <B as Stage<In>>::Error,
    >,
    options: options::StageOptions,
    key: K,
    stats: Arc<StageStats>,
) -> Unknown<
    <B as Stage<In>>::Out,
    ParallelHead<
        In,
        pipeline_runtime::parallel::Clones<B>,
        <B as Stage<In>>::Out,
        <B as Stage<In>>::Error,
    >,
>
where
    In: Send + 'static,
    B: Stage<In> + ParallelStage,
    <B as Stage<In>>::Out: Send + 'static,
    <B as Stage<In>>::Error: Send + 'static,
    K: Fn(&In) -> H + Send + Sync + 'static,
    H: std::hash::Hash,
{
    ParallelHead::by_key_from_options(
        rx,
        pipeline_runtime::parallel::clones(stage),
        spawn,
        &options,
        key,
        stats,
    )
}

/// A parallel node's error policy and breaker, under `options`, with
/// failed items going to `route` (`LogFailures`, or `errors_route(..)`
/// for a connected `errors` port) and `clone` to copy inputs when the
/// options retry (`retry_input_cloner(..)`); as [`fuse`](super::fuse)
/// takes them.
pub fn parallel_policy<In, M, O, E, P>(
    head: ParallelHead<In, M, O, E>,
    options: options::StageOptions,
    route: P,
    clone: Option<CloneInto<In>>,
) -> ParallelHead<In, M, O, E, P>
where
    E: std::fmt::Display,
    P: FailureRoute<In, E>,
{
    head.with_route_cloned_by(options, route, clone)
}

/// A stage that can run on several workers: each gets its own clone, on
/// another thread. Checked, with a message, by [`WorkerStage`] before it
/// is required here.
pub trait ParallelStage: Clone + Send + 'static {}

impl<B: Clone + Send + 'static> ParallelStage for B {}

// What a stage on workers needs, checked where its type is known, before
// anything is built with it. One trait per part, so that the error names
// the part and the type that cannot move to another thread, and
// `do_not_recommend`, so that rustc does not explain why through std's or
// the runtime's types (notes that depend on the toolchain).
//
// Each check has two impls: one that holds when the part can move, and one
// that never holds (`Impossible` has no impls). With two candidates, rustc
// picks one only after checking their bounds, so when the part cannot
// move, the checked value's type is unknown rather than known, and what is
// built with it is not checked again (see `Unknown`). Each check is a
// trait function, not a free one with a bound, so that rustc points at no
// bound in this module.

/// Which impl of a parallel stage's check holds: see [`WorkerStage`].
pub enum Holds {}

/// The impl of a check that never holds: see [`WorkerStage`].
pub enum Fails {}

/// Implemented by nothing: see [`WorkerStage`].
pub trait Impossible {}

/// Defines a check of a stage on workers: a trait on the type checked,
/// naming in its message the trait's parameters (the stage, `S`), with a
/// `checked` function that passes a value on if the check holds, and
/// makes its type unknown if not.
macro_rules! worker_check {
    (
        $(#[$meta:meta])*
        $name:ident<$($param:ident),*> for $checked:ty where $x:ident: $($bound:tt)+
    ) => {
        $(#[$meta])*
        pub trait $name<$($param,)* Via>: Sized {
            /// `()`.
            type Checked;

            /// `value`, or a value of unknown type if the check fails.
            /// (The stage comes first: rustc checks the arguments in
            /// order, and reports a failed check as soon as it can.)
            fn checked<T>(
                $(_: PhantomData<$param>,)*
                of: PhantomData<Self>,
                value: T,
            ) -> Unknown<Self::Checked, T>;
        }

        #[diagnostic::do_not_recommend]
        impl<$x: $($bound)+ $(, $param)*> $name<$($param,)* Holds> for $checked {
            type Checked = ();

            fn checked<T>($(_: PhantomData<$param>,)* _: PhantomData<Self>, value: T) -> T {
                value
            }
        }

        #[diagnostic::do_not_recommend]
        impl<$x: Impossible $(, $param)*> $name<$($param,)* Fails> for $checked {
            type Checked = ();

            fn checked<T>($(_: PhantomData<$param>,)* _: PhantomData<Self>, value: T) -> T {
                value
            }
        }
    };
}

worker_check! {
    /// The stage itself, cloned for each worker and moved to its thread.
    #[diagnostic::on_unimplemented(
        message = "`parallel` needs stage `{S}` to be `Clone + Send + Sync + 'static`",
        label = "each worker gets its own clone of this stage, on another thread",
        note = "a closure is `Clone`, `Send` and `Sync` when what it captures is; capture owned or `Arc` values, not `Rc`s, `RefCell`s or references to locals"
    )]
    WorkerStage<S> for B where B: Clone + Send + Sync + 'static
}

worker_check! {
    /// The input of `S`, a stage that runs on workers.
    #[diagnostic::on_unimplemented(
        message = "stage `{S}` runs on parallel workers, so its input `{Self}` must be `Send`",
        label = "the items of this stage move to its workers' threads",
        note = "make the item type `Send` (for example `Arc` instead of `Rc`), or remove `parallel`"
    )]
    WorkerInput<S> for X where X: Send + 'static
}

worker_check! {
    /// The output of `S`, a stage that runs on workers.
    #[diagnostic::on_unimplemented(
        message = "stage `{S}` runs on parallel workers, so its output `{Self}` must be `Send`",
        label = "the outputs of this stage come back from its workers' threads",
        note = "make the output type `Send` (for example `Arc` instead of `Rc`), or remove `parallel`"
    )]
    WorkerOutput<S> for X where X: Send + 'static
}

worker_check! {
    /// The error of `S`, a stage that runs on workers.
    #[diagnostic::on_unimplemented(
        message = "stage `{S}` runs on parallel workers, so its error `{Self}` must be `Send`",
        label = "the errors of this stage come back from its workers' threads",
        note = "make the error type `Send` (for example `Arc` instead of `Rc`), or remove `parallel`"
    )]
    WorkerError<S> for X where X: Send + 'static
}

/// The `by_key` closure `K` of a stage on workers: see [`WorkerKey`].
pub struct KeyFn<K>(PhantomData<K>);

worker_check! {
    /// The `by_key` closure of a stage on workers, as a [`KeyFn`] (so
    /// that rustc does not suggest calling it).
    #[diagnostic::on_unimplemented(
        message = "`by_key` on a parallel stage needs its closure to be `Send + Sync + 'static`",
        label = "this key goes with the stage's workers to other threads",
        note = "a closure is `Send` and `Sync` when what it captures is; capture owned or `Arc` values, not `Rc`s, `RefCell`s or references to locals"
    )]
    WorkerKey<> for KeyFn<K> where K: Send + Sync + 'static
}

/// `key`'s type, as a [`KeyFn`].
pub fn key_fn<K>(_: &K) -> PhantomData<KeyFn<K>> {
    PhantomData
}

/// `key`, the `by_key` closure of a parallel stage reading items of type
/// `In`, typed so that its parameter's type is inferred.
pub fn key_for<In, K, H>(_: PhantomData<In>, key: K) -> K
where
    K: Fn(&In) -> H,
{
    key
}

/// A stage taking `In` whose every check above holds: a
/// `#[stage(parallel = ..)]` is `WorksInParallel` only then, so that a
/// pipeline using one that failed its checks (reported where the stage is
/// defined) runs it fused, rather than fail the same bounds again.
pub trait RunsOnWorkers<In> {}

impl<In, B> RunsOnWorkers<In> for B
where
    B: Stage<In> + WorkerStage<B, Holds>,
    In: WorkerInput<B, Holds>,
    B::Out: WorkerOutput<B, Holds>,
    B::Error: WorkerError<B, Holds>,
{
}

/// The output and error types of `stage` taking `In`.
#[allow(clippy::type_complexity)]
pub fn outputs_of<In, B>(
    _: PhantomData<In>,
    _: &B,
) -> (
    PhantomData<<B as Stage<In>>::Out>,
    PhantomData<<B as Stage<In>>::Error>,
)
where
    B: Stage<In>,
{
    (PhantomData, PhantomData)
}

/// The stage type of a worker, for [`SpawnsWorker`]'s message.
pub fn stage_of<In, B, O, E>(_: &Worker<In, Clones<B>, O, E>) -> PhantomData<B> {
    PhantomData
}

/// The future of a worker of stage `S`, which runs on another thread.
#[diagnostic::on_unimplemented(
    message = "stage `{S}` cannot run on parallel workers: a future it awaits is not `Send`",
    label = "its workers run on other threads",
    note = "an `async` stage must not hold a value that is not `Send` (an `Rc`, a `RefCell` borrow, a `std::sync::MutexGuard`) across an `.await`: drop it before the `.await`, or remove `parallel`"
)]
pub trait SpawnsWorker<S>: Sized {
    /// Spawns the worker's future on the tokio runtime. (`stage` comes
    /// first, so that it is known when rustc reports a future that is not
    /// `Send`.)
    fn spawn(stage: PhantomData<S>, future: Self) -> JoinHandle<Result<(), Error>>;
}

#[diagnostic::do_not_recommend]
impl<F, S> SpawnsWorker<S> for F
where
    F: Future<Output = Result<(), Error>> + Send + 'static,
{
    fn spawn(_: PhantomData<S>, future: F) -> JoinHandle<Result<(), Error>> {
        pipeline_runtime::parallel::spawn(future)
    }
}
