//! `upstream >> stage`: a stage fused into its chain (`fuse`, and with
//! options, an `errors` port or retries), a run of built-ins composed into
//! one pass, and the traits a `#[stage]` fn's return type is read through.

use std::sync::Arc;

use pipeline_runtime::chain::{Fuse, Outputs};
use pipeline_runtime::fan::Broadcast;
use pipeline_runtime::metrics::StageStats;
use pipeline_runtime::options;
use pipeline_runtime::stage::Stage;

use pipeline_runtime::transform::{Composed, First, Next, Step};

use super::checks::{KeepsInput, RetriesInput, Unknown};

pub use pipeline_runtime::fan::{CloneInto, ErrorsPort};
pub use pipeline_runtime::stage::Failed;

/// `upstream >> stage`. The bound is checked here, at the user's tokens.
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

/// `upstream >> stage` where the stage's `errors` port is connected to
/// `errors`, with its options.
#[allow(clippy::type_complexity)]
pub fn fuse_with_errors<A, B>(
    upstream: A,
    stage: B,
    stats: Arc<StageStats>,
    options: options::StageOptions,
    errors: Broadcast<Failed<A::Out, <B as Stage<A::Out>>::Error>>,
) -> Unknown<
    <B as Stage<A::Out>>::Out,
    Fuse<
        A,
        B,
        A::Out,
        <B as Stage<A::Out>>::Out,
        <B as Stage<A::Out>>::Error,
        ErrorsPort<A::Out, <B as Stage<A::Out>>::Error>,
    >,
>
where
    A: Outputs,
    A::Out: KeepsInput,
    B: Stage<A::Out>,
{
    Fuse::with_errors(upstream, stage, stats, options, errors)
}

/// `upstream >> stage` with its options (no retry).
#[allow(clippy::type_complexity)]
pub fn fuse_with_options<A, B>(
    upstream: A,
    stage: B,
    stats: Arc<StageStats>,
    options: options::StageOptions,
    clone: Option<CloneInto<A::Out>>,
) -> Unknown<
    <B as Stage<A::Out>>::Out,
    Fuse<A, B, A::Out, <B as Stage<A::Out>>::Out, <B as Stage<A::Out>>::Error>,
>
where
    A: Outputs,
    B: Stage<A::Out>,
{
    Fuse::with_options_cloned_by(upstream, stage, stats, options, clone)
}

/// `upstream >> stage` with options that retry failed items.
#[allow(clippy::type_complexity)]
pub fn fuse_retrying<A, B>(
    upstream: A,
    stage: B,
    stats: Arc<StageStats>,
    options: options::StageOptions,
) -> Unknown<
    <B as Stage<A::Out>>::Out,
    Fuse<A, B, A::Out, <B as Stage<A::Out>>::Out, <B as Stage<A::Out>>::Error>,
>
where
    A: Outputs,
    A::Out: RetriesInput,
    B: Stage<A::Out>,
{
    Fuse::with_options_cloning(upstream, stage, stats, options)
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
