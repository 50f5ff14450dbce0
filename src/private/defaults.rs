//! A `#[stage(..)]`'s defaults, and how the expansion finds them from the
//! stage's type by autoref (`DefaultsOf`): its options, how it copies a
//! retried input, and whether it hops onto an edge of its own.

use std::marker::PhantomData;
use std::sync::Arc;

use pipeline_runtime::chain::{Chain, DEFAULT_CHUNK};
use pipeline_runtime::error::Error;
use pipeline_runtime::fan::{Broadcast, CloneInto, Inlet};
use pipeline_runtime::lifecycle::Control;
use pipeline_runtime::metrics::EdgeStats;
use pipeline_runtime::options;

use super::checks::RetriesInput;

pub use pipeline_runtime::fan::{Hopped, hop_edge};

/// A `#[stage(..)]`'s default options.
pub trait StageDefaults {
    /// The options the stage runs with unless a node says otherwise.
    const DEFAULTS: options::StageOptions;
}

/// How a `#[stage(on_error = retry(..))]` copies its input `T`, which
/// must be `Clone`.
pub const fn retry_cloner<T: RetriesInput>() -> CloneInto<T> {
    pipeline_runtime::fan::clone_into::<T>
}

/// A `#[stage(on_error = retry(..))]`: it copies its input to try it
/// again, whichever pipeline uses it.
pub trait ClonesInput {
    /// The stage's input.
    type Input;
    /// Copies a chunk of inputs.
    const CLONE: CloneInto<Self::Input>;
}

/// Finds how a stage copies its input when it retries by default
/// (`(&DefaultsOf::<S>::new()).input_cloner()` resolves here first) ...
pub trait HasCloner {
    /// The stage's input.
    type Input;
    /// How to copy a chunk of inputs.
    fn input_cloner(&self) -> Option<CloneInto<Self::Input>>;
}

impl<S: ClonesInput> HasCloner for DefaultsOf<S> {
    type Input = S::Input;
    fn input_cloner(&self) -> Option<CloneInto<S::Input>> {
        Some(S::CLONE)
    }
}

/// ... and here for any other stage, which does not retry by default.
pub trait NoCloner {
    /// No way to copy.
    fn input_cloner<T>(&self) -> Option<CloneInto<T>>;
}

impl<S> NoCloner for &DefaultsOf<S> {
    fn input_cloner<T>(&self) -> Option<CloneInto<T>> {
        None
    }
}

/// A `#[stage(..)]` whose defaults ask for its own input edge (`buffer`,
/// `on_full`, `backpressure`): where `pipeline!` fused it to the stage
/// before, a [`Hopped`] puts that edge back.
pub trait HopsByDefault {}

/// Puts an edge before a stage that [hops by default](HopsByDefault)
/// (`(&DefaultsOf::<S>::new()).hop(..)` resolves here first) ...
pub trait HopBefore {
    /// `chain`, driven by `drive` into an edge built from `options` and
    /// counted in `edge`, and read on the other side.
    #[allow(clippy::type_complexity)]
    fn hop<A, F, Fut>(
        &self,
        chain: A,
        drive: F,
        options: &options::StageOptions,
        edge: &Arc<EdgeStats>,
    ) -> Hopped<Inlet<A::Out>, A, A::Out, F, Fut>
    where
        A: Chain,
        F: FnOnce(A, Broadcast<A::Out>, Control) -> Fut,
        Fut: Future<Output = Result<(), Error>>;
}

impl<S: HopsByDefault> HopBefore for DefaultsOf<S> {
    fn hop<A, F, Fut>(
        &self,
        chain: A,
        drive: F,
        options: &options::StageOptions,
        edge: &Arc<EdgeStats>,
    ) -> Hopped<Inlet<A::Out>, A, A::Out, F, Fut>
    where
        A: Chain,
        F: FnOnce(A, Broadcast<A::Out>, Control) -> Fut,
        Fut: Future<Output = Result<(), Error>>,
    {
        let (output, rx) = hop_edge(options, DEFAULT_CHUNK, edge);
        Hopped::new(Inlet::new(rx, DEFAULT_CHUNK), chain, output, drive)
    }
}

/// ... and here for any other stage, which stays fused.
pub trait NoHop {
    /// `chain`, unchanged.
    fn hop<A, F, Fut>(
        &self,
        chain: A,
        drive: F,
        options: &options::StageOptions,
        edge: &Arc<EdgeStats>,
    ) -> A
    where
        A: Chain,
        F: FnOnce(A, Broadcast<A::Out>, Control) -> Fut,
        Fut: Future<Output = Result<(), Error>>;
}

impl<S> NoHop for &DefaultsOf<S> {
    #[inline]
    fn hop<A, F, Fut>(&self, chain: A, _: F, _: &options::StageOptions, _: &Arc<EdgeStats>) -> A
    where
        A: Chain,
        F: FnOnce(A, Broadcast<A::Out>, Control) -> Fut,
        Fut: Future<Output = Result<(), Error>>,
    {
        chain
    }
}

/// Stands for a stage type, to look up its defaults before the stage is
/// made.
pub struct DefaultsOf<S>(PhantomData<S>);

impl<S> DefaultsOf<S> {
    /// The stand-in.
    pub fn new() -> Self {
        DefaultsOf(PhantomData)
    }
}

impl<S> Default for DefaultsOf<S> {
    fn default() -> Self {
        DefaultsOf::new()
    }
}

impl<S: StageDefaults> StageDefaults for DefaultsOf<S> {
    const DEFAULTS: options::StageOptions = S::DEFAULTS;
}

/// Finds a stage's defaults when it has some (`(&stage).stage_defaults()`
/// resolves here first, for a `#[stage(..)]` with options) ...
pub trait HasDefaults {
    /// The stage's defaults.
    fn stage_defaults(&self) -> options::StageOptions;
}

impl<S: StageDefaults> HasDefaults for S {
    fn stage_defaults(&self) -> options::StageOptions {
        S::DEFAULTS
    }
}

/// ... and here for any other stage, which has none.
pub trait NoDefaults {
    /// No options.
    fn stage_defaults(&self) -> options::StageOptions;
}

impl<S> NoDefaults for &S {
    fn stage_defaults(&self) -> options::StageOptions {
        options::StageOptions::NONE
    }
}
