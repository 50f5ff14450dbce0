//! Typed stage traits: what a node of a pipeline is.
//!
//! A stage has an input type (the trait's parameter), an output type and an
//! error type. Stages process whole chunks of items: the runtime hands a
//! stage a `Vec` of inputs and a `Vec` to fill, so a chain of synchronous
//! stages compiles to tight loops with no per-item future.
//!
//! * [`Stage`] is the general, asynchronous trait. Implement
//!   [`Stage::process`] per item; override [`Stage::process_chunk`] only when
//!   a whole chunk can be handled faster than item by item.
//! * [`SyncStage`] is the same for stages that never wait. Every `SyncStage`
//!   is a `Stage`, and its chunks run as a plain loop.
//! * [`Source`] produces items; sinks are stages whose output is
//!   [`Never`] and that implement [`IsSink`].

mod context;
mod emit;
mod failed;
mod source;

pub use context::StageContext;
pub use emit::{Emit, Failures};
pub use failed::{Failed, StageError};
pub use source::{Pull, Source};

use std::future::Future;

/// The output type of a sink: a sink emits nothing.
pub type Never = std::convert::Infallible;

/// A boxed error, as returned by `init` and `close`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A stage that takes items of type `In`.
///
/// `#[stage]` implements this for functions; implement it by hand for a
/// stateful stage that needs [`init`](Stage::init) and [`close`](Stage::close).
///
/// ```
/// use pipeline_runtime::stage::{Emit, Stage, StageContext};
///
/// /// Emits a running total of its inputs.
/// struct RunningTotal(u64);
///
/// impl Stage<u64> for RunningTotal {
///     type Out = u64;
///     type Error = std::convert::Infallible;
///
///     async fn process(
///         &mut self,
///         item: u64,
///         out: &mut Emit<'_, u64>,
///         _ctx: &StageContext,
///     ) -> Result<(), Self::Error> {
///         self.0 += item;
///         out.emit(self.0);
///         Ok(())
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "stage `{Self}` cannot take `{In}` as its input",
    label = "this stage does not take `{In}`",
    note = "the stage before it produces `{In}`"
)]
pub trait Stage<In> {
    /// What the stage emits for each input (zero, one or many items).
    type Out;
    /// The error the stage fails an item with.
    type Error: std::fmt::Display;

    /// Called once before the first item. An error stops the pipeline.
    fn init(&mut self, ctx: &StageContext) -> impl Future<Output = Result<(), BoxError>> {
        let _ = ctx;
        std::future::ready(Ok(()))
    }

    /// Processes one item, emitting its outputs into `out`.
    ///
    /// Emitting nothing filters the item out; returning an error fails it.
    fn process(
        &mut self,
        item: In,
        out: &mut Emit<'_, Self::Out>,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<(), Self::Error>>;

    /// Processes a chunk: drains `input`, appends outputs to `out`, and
    /// records filtered and failed items in `failures`.
    ///
    /// The default calls [`process`](Stage::process) for each item in order,
    /// and catches a panic of each call: that item fails with the panic
    /// (its partial outputs are removed) and the next one goes on.
    ///
    /// An override that panics fails its whole chunk: the runtime cannot
    /// tell which items were done, so every item of the chunk the override
    /// had not failed itself fails with the panic, and the chunk's outputs
    /// are discarded (see [`Failures::panicked_chunk`]). Use
    /// [`Failures::call`] per item, or run the chunk as one pass with
    /// [`Failures::pass_each`] or [`Failures::record_each`] (one panic
    /// guard per chunk, as the built-ins do), to keep a panic to its item.
    fn process_chunk(
        &mut self,
        input: &mut Vec<In>,
        out: &mut Vec<Self::Out>,
        failures: &mut Failures<Self::Error>,
        ctx: &StageContext,
    ) -> impl Future<Output = ()> {
        async move {
            for item in input.drain(..) {
                let before = out.len();
                // The call is made inside the guarded future, so a panic
                // while creating the future is caught as well as one while
                // polling it.
                let caught =
                    futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
                        self.process(item, &mut Emit::new(out), ctx).await
                    }))
                    .await;
                match caught {
                    Ok(Ok(())) => failures.note_output(out.len() - before),
                    Ok(Err(error)) => failures.fail(error),
                    Err(panic) => {
                        out.truncate(before);
                        failures.panicked(crate::policy::panic_message(&*panic));
                    }
                }
            }
        }
    }

    /// Called once after the last item, on completion or graceful stop.
    fn close(&mut self, ctx: &StageContext) -> impl Future<Output = Result<(), BoxError>> {
        let _ = ctx;
        std::future::ready(Ok(()))
    }
}

/// A stage that never waits: its chunks run as a plain loop.
///
/// Implement it, then make the type a [`Stage`] with
/// [`sync_stage!`](crate::sync_stage) (a blanket impl would stop other
/// crates from implementing `Stage` for their own types).
///
/// ```
/// use pipeline_runtime::stage::{Emit, StageContext, SyncStage};
///
/// /// Splits a line into words.
/// struct Words;
///
/// impl SyncStage<String> for Words {
///     type Out = String;
///     type Error = std::convert::Infallible;
///
///     fn process(
///         &mut self,
///         line: String,
///         out: &mut Emit<'_, String>,
///         _ctx: &StageContext,
///     ) -> Result<(), Self::Error> {
///         out.extend(line.split_whitespace().map(str::to_owned));
///         Ok(())
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "stage `{Self}` cannot take `{In}` as its input",
    label = "this stage does not take `{In}`"
)]
pub trait SyncStage<In> {
    /// What the stage emits for each input.
    type Out;
    /// The error the stage fails an item with.
    type Error: std::fmt::Display;

    /// Processes one item, emitting its outputs into `out`.
    fn process(
        &mut self,
        item: In,
        out: &mut Emit<'_, Self::Out>,
        ctx: &StageContext,
    ) -> Result<(), Self::Error>;

    /// Processes a chunk; the default loops over
    /// [`process`](SyncStage::process), catching a panic of each call (that
    /// item fails with the panic, see [`Failures::call`]). An override that
    /// panics fails its whole chunk, as for [`Stage::process_chunk`].
    fn process_chunk(
        &mut self,
        input: &mut Vec<In>,
        out: &mut Vec<Self::Out>,
        failures: &mut Failures<Self::Error>,
        ctx: &StageContext,
    ) {
        for item in input.drain(..) {
            failures.call(out, |emit| self.process(item, emit, ctx));
        }
    }

    /// Called once before the first item.
    fn init(&mut self, ctx: &StageContext) -> Result<(), BoxError> {
        let _ = ctx;
        Ok(())
    }

    /// Called once after the last item.
    fn close(&mut self, ctx: &StageContext) -> Result<(), BoxError> {
        let _ = ctx;
        Ok(())
    }
}

/// Implements [`Stage`] for a type that implements [`SyncStage`], so its
/// chunks run as a plain loop.
///
/// ```
/// use pipeline_runtime::stage::{Emit, StageContext, SyncStage};
///
/// struct Upper;
///
/// impl SyncStage<String> for Upper {
///     type Out = String;
///     type Error = std::convert::Infallible;
///     fn process(
///         &mut self,
///         s: String,
///         out: &mut Emit<'_, String>,
///         _: &StageContext,
///     ) -> Result<(), Self::Error> {
///         out.emit(s.to_uppercase());
///         Ok(())
///     }
/// }
/// pipeline_runtime::sync_stage!(Upper: String);
/// ```
#[macro_export]
macro_rules! sync_stage {
    ($ty:ty : $in:ty) => {
        $crate::sync_stage!(impl[] $ty : $in where);
    };
    (impl[$($gen:tt)*] $ty:ty : $in:ty where $($bounds:tt)*) => {
        impl<$($gen)*> $crate::stage::Stage<$in> for $ty where $($bounds)* {
            type Out = <Self as $crate::stage::SyncStage<$in>>::Out;
            type Error = <Self as $crate::stage::SyncStage<$in>>::Error;

            fn init(
                &mut self,
                ctx: &$crate::stage::StageContext,
            ) -> impl ::core::future::Future<Output = ::core::result::Result<(), $crate::stage::BoxError>> {
                ::core::future::ready($crate::stage::SyncStage::init(self, ctx))
            }

            #[inline]
            fn process(
                &mut self,
                item: $in,
                out: &mut $crate::stage::Emit<'_, Self::Out>,
                ctx: &$crate::stage::StageContext,
            ) -> impl ::core::future::Future<Output = ::core::result::Result<(), Self::Error>> {
                ::core::future::ready($crate::stage::SyncStage::process(self, item, out, ctx))
            }

            #[inline]
            fn process_chunk(
                &mut self,
                input: &mut ::std::vec::Vec<$in>,
                out: &mut ::std::vec::Vec<Self::Out>,
                failures: &mut $crate::stage::Failures<Self::Error>,
                ctx: &$crate::stage::StageContext,
            ) -> impl ::core::future::Future<Output = ()> {
                $crate::stage::SyncStage::process_chunk(self, input, out, failures, ctx);
                ::core::future::ready(())
            }

            fn close(
                &mut self,
                ctx: &$crate::stage::StageContext,
            ) -> impl ::core::future::Future<Output = ::core::result::Result<(), $crate::stage::BoxError>> {
                ::core::future::ready($crate::stage::SyncStage::close(self, ctx))
            }
        }
    };
}

/// Marks a stage as a sink: the end of a chain.
///
/// Sinks emit [`Never`]. A pipeline whose chain does not end in a sink does
/// not compile, so no output is dropped by accident.
#[diagnostic::on_unimplemented(
    message = "the pipeline ends in `{Self}`, which is not a sink",
    label = "items coming out of this stage would go nowhere",
    note = "add `>> discard()` to drop them, or end the chain with a sink such as `for_each(..)` or `collect(..)`"
)]
pub trait IsSink {}
