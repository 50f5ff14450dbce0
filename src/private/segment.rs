//! A segment's ends: its head (a source, or an inlet fed by an edge), the
//! outlets it is driven into (edges, fan-outs, a `branch`'s route), the
//! boxing of a long chain, and diamonds fused into one segment.

use std::marker::PhantomData;
use std::sync::Arc;

use pipeline_runtime::chain::{Head, Outputs};
use pipeline_runtime::io::{Iter, Stream, StreamSource};
use pipeline_runtime::metrics::{EdgeStats, StageStats};
use pipeline_runtime::stage::Source;

use super::checks::Unknown;

/// Turns a value into the source at the head of a chain.
///
/// `Via` tells the impls apart, and rustc infers it: a value that is a
/// [`Source`] ([`AsSource`]: a built-in's, or one made before the macro,
/// such as a `push` source), a function taking nothing that returns a
/// collection or an iterator ([`CallsIter`]) or a `Stream`
/// ([`CallsStream`]): a `#[stage(source)]` function, named at the head of
/// a chain; and the struct `#[stage(source)]` adds beside it ([`AsStage`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a source, so it cannot start a chain",
    label = "a chain must start with a source",
    note = "start the chain with a source: a built-in such as `iter(..)` or `lines(..)`, a `#[stage(source)]` function (which takes no parameters), or a variable holding a source, such as the first half of `push(..)`"
)]
pub trait IntoSource<Via> {
    /// The source it becomes.
    type Source: Source;
    /// Makes the source.
    fn into_source(self) -> Self::Source;
}

/// [`IntoSource`] for a value that is a [`Source`].
pub enum AsSource {}
/// [`IntoSource`] for a function returning a collection or an iterator.
pub enum CallsIter {}
/// [`IntoSource`] for a function returning a `Stream`.
pub enum CallsStream {}
/// [`IntoSource`] for the struct of a `#[stage(source)]` function.
pub enum AsStage {}

// `do_not_recommend` makes rustc report `IntoSource`'s own message, not a
// list of the runtime's source types.
#[diagnostic::do_not_recommend]
impl<S: Source> IntoSource<AsSource> for S {
    type Source = S;
    fn into_source(self) -> S {
        self
    }
}

#[diagnostic::do_not_recommend]
impl<F, I> IntoSource<CallsIter> for F
where
    F: FnOnce() -> I,
    I: IntoIterator,
{
    type Source = Iter<I::IntoIter>;
    fn into_source(self) -> Self::Source {
        pipeline_runtime::io::iter(self())
    }
}

#[diagnostic::do_not_recommend]
impl<F, S> IntoSource<CallsStream> for F
where
    F: FnOnce() -> S,
    S: Stream,
{
    type Source = StreamSource<S>;
    fn into_source(self) -> Self::Source {
        pipeline_runtime::io::stream(self())
    }
}

/// What a `#[stage(source)]` function returning a collection returns.
#[diagnostic::on_unimplemented(
    message = "a `#[stage(source)]` function returns a collection or an iterator, not `{Self}`",
    label = "`{Self}` cannot be iterated",
    note = "return a `Vec<T>`, another collection, `impl Iterator<Item = T>` or `impl Stream<Item = T>`"
)]
pub trait SourceItems {
    /// The source that reads the items.
    type Source: Source;
    /// Makes it.
    fn into_source_items(self) -> Self::Source;
}

#[diagnostic::do_not_recommend]
impl<I: IntoIterator> SourceItems for I {
    type Source = Iter<I::IntoIter>;
    fn into_source_items(self) -> Self::Source {
        pipeline_runtime::io::iter(self)
    }
}

/// The head of a chain reading from `source` (its type is unknown if
/// `source` is not one; see [`Unknown`]).
#[allow(clippy::type_complexity)]
pub fn head<S: IntoSource<Via>, Via>(
    source: S,
    stats: Arc<StageStats>,
    chunk: usize,
) -> Unknown<<<S as IntoSource<Via>>::Source as Source>::Out, Head<<S as IntoSource<Via>>::Source>>
{
    Head::new(source.into_source(), stats, chunk)
}

/// A segment's head that reads long chunks (see
/// [`Head::with_long_chunks`]).
pub fn long_chunks<S: Source>(head: Head<S>) -> Head<S> {
    head.with_long_chunks()
}

pub use pipeline_runtime::channel::edge_for;

/// The head of a chain fed by an edge.
pub fn inlet<T>(rx: pipeline_runtime::channel::EdgeReceiver<T>, chunk: usize) -> Inlet<T> {
    Inlet::new(rx, chunk)
}

// Graph wiring: the channel boundaries between fused chains.

pub use pipeline_runtime::chain::drive_into;
pub use pipeline_runtime::fan::{Broadcast, Inlet, Output, Port, Route};

pub use pipeline_runtime::channel::DEFAULT_BUFFER;

/// An edge carrying `Self` accepts items of `U`: every chain that feeds
/// one node must produce the same type.
///
/// The edge's type is the trait's `Self` so that rustc learns it from the
/// edge (fixed by the first chain into the node) rather than guessing it
/// from `U`, and reports the mismatch as a merge error.
#[diagnostic::on_unimplemented(
    message = "this chain produces `{U}`, but the node it feeds already takes `{Self}` from another chain",
    label = "produces `{U}`, not `{Self}`",
    note = "every chain that feeds one node (a merge) must produce the same type"
)]
pub trait Accepts<U> {
    /// `U`.
    type Item;
}

impl<T> Accepts<T> for T {
    type Item = T;
}

/// The first edge into a node, out of a chain emitting `T`: it fixes the
/// type of the node's input.
pub fn first_output<T>(
    _: PhantomData<T>,
    tx: pipeline_runtime::channel::EdgeSender<T>,
    stats: Arc<EdgeStats>,
) -> Output<T> {
    Output::new(tx, stats)
}

/// A further edge into a node whose input is `T`, out of a chain emitting
/// `U`.
pub fn output<U, T>(
    _: PhantomData<U>,
    tx: pipeline_runtime::channel::EdgeSender<T>,
    stats: Arc<EdgeStats>,
) -> Unknown<<T as Accepts<U>>::Item, Output<T>>
where
    T: Accepts<U>,
{
    Output::new(tx, stats)
}

/// An edge out of an output port (`errors`), whose item type the port fixes.
pub fn port_output<T>(
    tx: pipeline_runtime::channel::EdgeSender<T>,
    stats: Arc<EdgeStats>,
) -> Output<T> {
    Output::new(tx, stats)
}

/// Items that fan out to several chains, each of which gets a clone.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot fan out to several chains because it does not implement `Clone`",
    label = "a second chain reads this output, so each item must be cloned",
    note = "derive or implement `Clone` for `{Self}`, or give the second chain its own source"
)]
pub trait FanOut: Clone {
    /// `Self`, named through this trait so that a type that cannot fan out
    /// leaves what is built from it unknown (see [`Unknown`]).
    type Same;
}

#[diagnostic::do_not_recommend]
impl<T: Clone> FanOut for T {
    type Same = T;
}

/// Sends a chain's output to one edge.
pub fn single<T>(output: Output<T>) -> Broadcast<T> {
    Broadcast::single(output)
}

/// Sends a chain's output to several edges, cloning each item.
pub fn fan_out<T: FanOut>(outputs: Vec<Output<T>>) -> Broadcast<T> {
    Broadcast::new(outputs)
}

/// What a `branch` closure returns.
#[diagnostic::on_unimplemented(
    message = "a `branch` closure must return one of its ports, not `{Self}`",
    label = "this closure returns `{Self}`",
    note = "write the ports after the item, as in `branch(|x, [big, small]| if *x > 100 {{ big }} else {{ small }})`, and return one of them"
)]
pub trait BranchResult: Into<Port> {
    /// [`Port`].
    type Port;
}

impl BranchResult for Port {
    type Port = Port;
}

/// `branch(|item, [p1, p2, ..]| ..)` at the end of a chain emitting `T`.
pub fn route<T, R, F, const N: usize>(
    _: PhantomData<T>,
    pick: F,
    outputs: [Broadcast<T>; N],
    stats: Arc<StageStats>,
) -> Unknown<R::Port, Route<T, F, N>>
where
    F: FnMut(&T, [Port; N]) -> R,
    R: BranchResult,
{
    Route::new(pick, outputs, stats)
}

pub use pipeline_runtime::chain::Boxed;

/// `chain`, its pull future boxed (see [`Boxed`]).
pub fn boxed<A>(chain: A) -> Boxed<A> {
    Boxed(chain)
}

// Diamonds: a fan-out whose branches all merge back into one node, fused.

pub use pipeline_runtime::fan::{DiamondOf, Feed};

/// The head of a diamond's branch after `chain`.
pub fn feed<A: Outputs>(_: &A) -> Feed<A::Out> {
    Feed::new()
}

/// A branch after the first, which must emit what the first emits: the
/// merge's type check, reported at the branch's edge into the merge.
pub fn merged_branch<F, B>(_: &F, branch: B) -> Unknown<<F::Out as Accepts<B::Out>>::Item, B>
where
    F: Outputs,
    B: Outputs,
    F::Out: Accepts<B::Out>,
{
    branch
}

/// `chain`, fanned out to `branches` and merged back, emitting what the
/// first branch emits.
#[allow(clippy::type_complexity)]
pub fn diamond<A, B, R>(
    chain: A,
    branches: (B, R),
) -> Unknown<<A::Out as FanOut>::Same, DiamondOf<A, (B, R), B::Out>>
where
    A: Outputs,
    A::Out: FanOut,
    B: Outputs,
{
    DiamondOf::new(chain, branches)
}
