//! `upstream >> stage`: a stage fused into its chain (`fuse`, and with
//! options, an `errors` port or retries), a run of built-ins composed into
//! one pass, and the traits a `#[stage]` fn's return type is read through.

use std::sync::Arc;

use pipeline_runtime::chain::{Fuse, Outputs};
use pipeline_runtime::fan::FailureRoute;
use pipeline_runtime::metrics::StageStats;
use pipeline_runtime::options;
use pipeline_runtime::stage::Stage;

use pipeline_runtime::transform::{Composed, First, Next, Step};

use super::checks::Unknown;

pub use pipeline_runtime::fan::{CloneInto, ErrorsPort};
pub use pipeline_runtime::stage::Failed;

/// `upstream >> stage`, with no options and no `errors` port: a failed
/// item is counted, logged and dropped. The stage's bound is checked here,
/// at the user's tokens.
///
/// (Apart from [`fuse_with`], whose policy is known only at run time, so
/// that the common case builds its `Fuse` from constants: measured 15%
/// faster on a fused diamond, `benches/fanout.rs`.)
#[allow(clippy::type_complexity)]
pub fn fuse<A, B>(
    upstream: A,
    stage: B,
    stats: Arc<StageStats>,
) -> Unknown<
    <B as Stage<A::Out>>::Out,
    Fuse<A, B, A::Out, <B as Stage<A::Out>>::Out, <B as Stage<A::Out>>::Error>,
>
where
    A: Outputs,
    B: Stage<A::Out>,
{
    Fuse::new(upstream, stage, stats)
}

/// `upstream >> stage`, run under `options`, its failed items going to `route` (`LogFailures`, or
/// `errors_route(..)` for a connected `errors` port), with `clone` to copy
/// inputs when the options retry (`retry_input_cloner(..)`, which checks
/// the input can be cloned). The stage's bound is checked here, at the
/// user's tokens.
#[allow(clippy::type_complexity)]
pub fn fuse_with<A, B, P>(
    upstream: A,
    stage: B,
    stats: Arc<StageStats>,
    options: options::StageOptions,
    route: P,
    clone: Option<CloneInto<A::Out>>,
) -> Unknown<
    <B as Stage<A::Out>>::Out,
    Fuse<A, B, A::Out, <B as Stage<A::Out>>::Out, <B as Stage<A::Out>>::Error, P>,
>
where
    A: Outputs,
    B: Stage<A::Out>,
    P: FailureRoute<A::Out, <B as Stage<A::Out>>::Error>,
{
    Fuse::with_route_cloned_by(upstream, stage, stats, options, route, clone)
}

/// `upstream >> step`, the first of a run of adjacent synchronous
/// built-ins composed into one pass.
#[allow(clippy::type_complexity)]
pub fn compose<A, S>(
    upstream: A,
    step: S,
    stats: Arc<StageStats>,
) -> Unknown<<S as Step<A::Out>>::Out, Composed<A, First<S>, A::Out, <S as Step<A::Out>>::Out>>
where
    A: Outputs,
    S: Step<A::Out>,
{
    Composed::new(upstream, step, stats)
}

/// One more built-in at the end of a composed run.
#[allow(clippy::type_complexity)]
pub fn compose_next<A, L, M, O, S>(
    run: Composed<A, L, M, O>,
    step: S,
    stats: Arc<StageStats>,
) -> Unknown<<S as Step<O>>::Out, Composed<A, Next<L, S>, M, <S as Step<O>>::Out>>
where
    S: Step<O>,
{
    run.then(step, stats)
}

/// The `Ok` and `Err` types of a fallible `#[stage]`'s return type.
pub trait Fallible {
    /// The success type.
    type Ok;
    /// The error type.
    type Err;
    /// Converts to a plain `Result`.
    fn into_result(self) -> Result<Self::Ok, Self::Err>;
}

impl<T, E> Fallible for Result<T, E> {
    type Ok = T;
    type Err = E;
    #[inline]
    fn into_result(self) -> Result<T, E> {
        self
    }
}

/// The `Some` type of a filtering `#[stage]`'s return type.
pub trait Optional {
    /// The value type.
    type Some;
    /// Converts to a plain `Option`.
    fn into_option(self) -> Option<Self::Some>;
}

impl<T> Optional for Option<T> {
    type Some = T;
    #[inline]
    fn into_option(self) -> Option<T> {
        self
    }
}
