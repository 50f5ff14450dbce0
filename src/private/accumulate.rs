//! Keyed accumulation (`accumulate(..)`, `batch(..)`): the segment heads,
//! with and without spilling, fed by an edge or fused (`_after`), the
//! built-in accumulator, and how items are measured for `max_bytes` and
//! byte totals.

use std::marker::PhantomData;
use std::sync::Arc;

use pipeline_runtime::chain::{Chain, Outputs};
use pipeline_runtime::fan::Broadcast;
use pipeline_runtime::metrics::StageStats;

use super::checks::Unknown;
#[cfg(doc)] // only named by the docs
use super::checks::edge_type;

// Keyed accumulation: an accumulate node with deadlines heads its own
// segment, fed by an edge, so that it can wake on them when no input
// arrives; one without is fused after the chain before it (`_after`).

pub use pipeline_runtime::accumulate::{
    AccumulateHead, Accumulator, NoSpill, Policy as AccumulatePolicy, Pulled, SpillPolicy,
    Unfinished,
};
pub use std::time::Duration;

/// An accumulate node's chain head, keeping its state in memory.
pub fn accumulate<T, A, S>(
    rx: pipeline_runtime::channel::EdgeReceiver<T>,
    accumulator: A,
    size: S,
    policy: AccumulatePolicy,
    stats: Arc<StageStats>,
    chunk: usize,
) -> Unknown<<A as Accumulator<T>>::Out, AccumulateHead<T, A, S>>
where
    A: Accumulator<T>,
    S: FnMut(&T) -> u64,
{
    AccumulateHead::new(rx, accumulator, size, policy, stats, chunk)
}

/// An accumulate node's chain head with `spill`: its coldest states go to
/// disk beyond `max_memory`.
#[allow(clippy::type_complexity)]
pub fn accumulate_spilling<T, A, S>(
    rx: pipeline_runtime::channel::EdgeReceiver<T>,
    accumulator: A,
    size: S,
    policy: AccumulatePolicy,
    stats: Arc<StageStats>,
    chunk: usize,
) -> Unknown<
    <A as Accumulator<T>>::Out,
    AccumulateHead<T, A, S, pipeline_runtime::accumulate::DiskSpill<A::Key, A::State>>,
>
where
    A: Accumulator<T>,
    A::Key: pipeline_runtime::accumulate::Spill,
    A::State: pipeline_runtime::accumulate::Spill,
    S: FnMut(&T) -> u64,
{
    AccumulateHead::spilling(rx, accumulator, size, policy, stats, chunk)
}

/// The directory of `spill = dir`: a path, or anything `Into<PathBuf>`.
#[diagnostic::on_unimplemented(
    message = "`spill` takes a directory, and `{Self}` is not a path",
    label = "expected a directory: a `&str`, `String`, `&Path` or `PathBuf`",
    note = "`spill = dir` takes any value that is `Into<PathBuf>`; `spill` alone spills to the system's temporary directory"
)]
pub trait SpillDir {
    /// The directory. (A trait function, so that rustc points at no
    /// bound in this module.)
    fn spill_dir(self) -> std::path::PathBuf;
}

#[diagnostic::do_not_recommend]
impl<P: Into<std::path::PathBuf>> SpillDir for P {
    fn spill_dir(self) -> std::path::PathBuf {
        self.into()
    }
}

// An accumulate node without deadlines (no `max_latency`, no `ttl`) is
// fused after the chain before it: it pulls that chain itself.

/// `accumulate(key = f, ..)` after a chain emitting `T` (or an edge,
/// through [`edge_type`]): the key closure learns its parameter type.
pub fn batch_by<C, K, F>(_: &C, key: F) -> Unknown<K, pipeline_runtime::accumulate::BatchBy<F>>
where
    C: Outputs,
    F: FnMut(&C::Out) -> K,
    K: std::hash::Hash + Eq + Clone,
{
    pipeline_runtime::accumulate::batch_by::<C::Out, K, F>(key)
}

/// `batch(..)` after a chain emitting `T` (or an edge).
pub fn batch_all<C: Outputs>(_: &C) -> pipeline_runtime::accumulate::BatchBy<fn(&C::Out)> {
    pipeline_runtime::accumulate::batch::<C::Out>()
}

/// An accumulate node fused after `upstream`, keeping its state in memory.
#[allow(clippy::type_complexity)]
pub fn accumulate_after<C, A, S>(
    upstream: C,
    accumulator: A,
    size: S,
    policy: AccumulatePolicy,
    stats: Arc<StageStats>,
    chunk: usize,
) -> Unknown<<A as Accumulator<C::Out>>::Out, AccumulateHead<C::Out, A, S, NoSpill, Pulled<C>>>
where
    C: Chain,
    A: Accumulator<C::Out>,
    S: FnMut(&C::Out) -> u64,
{
    AccumulateHead::new(
        Pulled::new(upstream),
        accumulator,
        size,
        policy,
        stats,
        chunk,
    )
}

/// An accumulate node fused after `upstream`, with `spill`.
#[allow(clippy::type_complexity)]
pub fn accumulate_spilling_after<C, A, S>(
    upstream: C,
    accumulator: A,
    size: S,
    policy: AccumulatePolicy,
    stats: Arc<StageStats>,
    chunk: usize,
) -> Unknown<
    <A as Accumulator<C::Out>>::Out,
    AccumulateHead<
        C::Out,
        A,
        S,
        pipeline_runtime::accumulate::DiskSpill<A::Key, A::State>,
        Pulled<C>,
    >,
>
where
    C: Chain,
    A: Accumulator<C::Out>,
    A::Key: pipeline_runtime::accumulate::Spill,
    A::State: pipeline_runtime::accumulate::Spill,
    S: FnMut(&C::Out) -> u64,
{
    AccumulateHead::spilling(
        Pulled::new(upstream),
        accumulator,
        size,
        policy,
        stats,
        chunk,
    )
}

/// Connects an accumulate node's `errors` port.
pub fn accumulate_errors<T, A, S, P, I>(
    head: AccumulateHead<T, A, S, P, I>,
    errors: Broadcast<Unfinished<A::Key, A::Out>>,
) -> AccumulateHead<T, A, S, P, I>
where
    A: Accumulator<T>,
{
    head.with_errors(errors)
}

/// The size of an item, for `max_bytes` when no `size = |item| ..` is
/// given.
#[diagnostic::on_unimplemented(
    message = "`max_bytes` needs to know how many bytes a `{Self}` is",
    label = "the items reaching this node are `{Self}`",
    note = "pass `size = |item| bytes` to the `accumulate` or `batch`, or give it `String`, `Vec<u8>` or `Envelope<T>` items (whose cost says)"
)]
pub trait ItemBytes {
    /// The item's size in bytes.
    fn item_bytes(&self) -> u64;
}

impl ItemBytes for String {
    fn item_bytes(&self) -> u64 {
        self.len() as u64
    }
}

impl ItemBytes for str {
    fn item_bytes(&self) -> u64 {
        self.len() as u64
    }
}

impl ItemBytes for Vec<u8> {
    fn item_bytes(&self) -> u64 {
        self.len() as u64
    }
}

impl ItemBytes for [u8] {
    fn item_bytes(&self) -> u64 {
        self.len() as u64
    }
}

impl<T: ItemBytes + ?Sized> ItemBytes for &T {
    fn item_bytes(&self) -> u64 {
        (**self).item_bytes()
    }
}

impl<T> ItemBytes for pipeline_runtime::envelope::Envelope<T> {
    fn item_bytes(&self) -> u64 {
        self.cost().bytes
    }
}

/// `item`'s size in bytes.
pub fn item_bytes<T: ItemBytes + ?Sized>(item: &T) -> u64 {
    item.item_bytes()
}

/// An item to measure, for batch byte totals when neither `size` nor
/// `max_bytes` is given: by [`ItemBytes`] when the item has it (a
/// `String`'s length), else by its in-memory size, so that a batch's
/// `total_bytes` does not depend on whether `max_bytes` is set.
pub struct Measure<'a, T: ?Sized>(pub &'a T);

/// Measures with [`ItemBytes`] (found first by `(&Measure(x)).bytes()`).
pub trait MeasureBytes {
    /// The item's size in bytes.
    fn bytes(&self) -> u64;
}

impl<T: ItemBytes + ?Sized> MeasureBytes for Measure<'_, T> {
    fn bytes(&self) -> u64 {
        self.0.item_bytes()
    }
}

/// Measures by in-memory size, for items without [`ItemBytes`].
pub trait MeasureSize {
    /// The item's size in bytes.
    fn bytes(&self) -> u64;
}

impl<T> MeasureSize for &Measure<'_, T> {
    fn bytes(&self) -> u64 {
        std::mem::size_of::<T>() as u64
    }
}

/// How a built-in batch keeps its byte total when neither `size` nor
/// `max_bytes` is given, picked like [`Measure`]: a sum for items with
/// [`ItemBytes`] (`(&tally(..)).tally(acc)` finds [`TallyBytes`] first),
/// nothing for the others, which all weigh their in-memory size
/// ([`TallyFixed`]; a smaller state per key).
pub struct TallyOf<T>(PhantomData<fn() -> T>);

/// The tally of the items a chain (or, through [`edge_type`], an edge)
/// emits.
pub fn tally<C: Outputs>(_: &C) -> TallyOf<C::Out> {
    TallyOf(PhantomData)
}

/// Keeps a byte total: the items measure themselves.
pub trait TallyBytes {
    /// `acc`, summing sizes.
    fn tally<F>(
        &self,
        acc: pipeline_runtime::accumulate::BatchBy<F>,
    ) -> pipeline_runtime::accumulate::BatchBy<F> {
        acc
    }
}

impl<T: ItemBytes> TallyBytes for TallyOf<T> {}

/// Keeps no byte total: every item weighs its in-memory size.
pub trait TallyFixed {
    /// `acc`, with [`FixedSize`](pipeline_runtime::accumulate::FixedSize).
    fn tally<F>(
        &self,
        acc: pipeline_runtime::accumulate::BatchBy<F>,
    ) -> pipeline_runtime::accumulate::BatchBy<F, pipeline_runtime::accumulate::FixedSize> {
        acc.with_fixed_size()
    }
}

impl<T> TallyFixed for &TallyOf<T> {}
