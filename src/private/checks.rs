//! Type-level markers and the checks several parts of the expansion share:
//! `Unknown` (a type left unknown after an error), the values that carry a
//! type for inference (`marker`, `edge_type`, `type_of`, `item_of`),
//! `ends_in_sink`, and the `Clone` checks of an input that is kept.

use std::marker::PhantomData;

use pipeline_runtime::chain::Outputs;
use pipeline_runtime::stage::IsSink;

/// `T`, named through `Key` so that when `Key` cannot be worked out (a
/// stage's output after a type mismatch) the whole type is unknown rather
/// than half known. Later uses of an unknown type are ambiguous, which
/// rustc does not report after an error; uses of a half-known one would
/// fail the same bound again and repeat the error at every later stage.
pub type Unknown<Key, T> = <Key as Is<T>>::Itself;

/// Implemented by every type: see [`Unknown`].
pub trait Is<T> {
    /// `T`.
    type Itself;
}

impl<K: ?Sized, T> Is<T> for K {
    type Itself = T;
}

/// The item type a chain emits, as a value the next closure's type can be
/// inferred from.
pub fn marker<C: Outputs>(_: &C) -> PhantomData<C::Out> {
    PhantomData
}

/// The item type of an edge, as a chain the next stage's closure can learn
/// its parameter type from.
pub struct EdgeType<T>(PhantomData<T>);

impl<T> Outputs for EdgeType<T> {
    type Out = T;
}

/// The item type of the edge `rx` reads.
pub fn edge_type<T>(_: &pipeline_runtime::channel::EdgeReceiver<T>) -> EdgeType<T> {
    EdgeType(PhantomData)
}

/// The type of a value, as a [`PhantomData`].
pub fn type_of<T>(_: &T) -> PhantomData<T> {
    PhantomData
}

/// Checks that the last stage of a chain is a sink.
pub fn ends_in_sink<S: EndsInSink>(_: &S) {}

/// [`IsSink`], with a message that names the fix rather than listing the
/// runtime's sink types.
#[diagnostic::on_unimplemented(
    message = "the pipeline ends in `{Self}`, which is not a sink",
    label = "items coming out of this stage would go nowhere",
    note = "add `>> discard()` to drop them, or end the chain with a sink such as `for_each(..)` or `collect(..)`"
)]
pub trait EndsInSink {}

#[diagnostic::do_not_recommend]
impl<S: IsSink> EndsInSink for S {}

/// The input of a stage whose `errors` port is connected, which is kept
/// until the stage has seen it.
#[diagnostic::on_unimplemented(
    message = "the `errors` port needs the stage's input `{Self}` to implement `Clone`",
    label = "failed items are sent on with their input, so the input is cloned before the stage sees it",
    note = "derive or implement `Clone` for `{Self}`, or leave the `errors` port unconnected"
)]
pub trait KeepsInput: Clone {}

#[diagnostic::do_not_recommend]
impl<T: Clone> KeepsInput for T {}

/// The input of a stage that retries failed items, which is kept until
/// the stage has succeeded with it.
#[diagnostic::on_unimplemented(
    message = "`retry` needs the stage's input `{Self}` to implement `Clone`",
    label = "a failed item is tried again, so the input is cloned before the stage sees it",
    note = "derive or implement `Clone` for `{Self}`, or use `on_error = dead_letter`, `fail` or `ignore`"
)]
pub trait RetriesInput: Clone {}

#[diagnostic::do_not_recommend]
impl<T: Clone> RetriesInput for T {}
