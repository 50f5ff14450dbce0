//! The constructors of the built-in operators (`map`, `filter`, `iter`,
//! `lines`, `write`, `ok`, `through`, ...), and the checks of what their
//! closures return.

use std::marker::PhantomData;
use std::sync::Arc;

use pipeline_runtime::chain::{Chain, DEFAULT_CHUNK, Outputs};
use pipeline_runtime::io::{Iter, Stream};
use pipeline_runtime::metrics::StageStats;

use super::checks::Unknown;

// Built-ins, each taking the upstream item type as a marker so the closure
// gets its parameter type from the chain, as in an iterator chain.

/// `map(f)` after a chain emitting `I`.
pub fn map<I, O, F: FnMut(I) -> O>(
    _: PhantomData<I>,
    f: F,
) -> Unknown<O, pipeline_runtime::transform::Map<I, F>> {
    pipeline_runtime::transform::map(f)
}

/// `filter(f)` after a chain emitting `I`.
pub fn filter<I, B: Predicate, F: FnMut(&I) -> B>(
    _: PhantomData<I>,
    f: F,
) -> Unknown<B::Bool, pipeline_runtime::transform::Filter<I, F>> {
    pipeline_runtime::transform::filter(f)
}

/// What a `filter` closure returns.
#[diagnostic::on_unimplemented(
    message = "a `filter` closure must return `bool`, not `{Self}`",
    label = "this closure returns `{Self}`",
    note = "to transform items and drop some, use `filter_map(|x| ..)` returning an `Option`"
)]
pub trait Predicate: Into<bool> {
    /// `bool`.
    type Bool;
}

impl Predicate for bool {
    type Bool = bool;
}

/// `filter_map(f)` after a chain emitting `I`.
pub fn filter_map<I, O, F: FnMut(I) -> Option<O>>(
    _: PhantomData<I>,
    f: F,
) -> Unknown<O, pipeline_runtime::transform::FilterMap<I, F>> {
    pipeline_runtime::transform::filter_map(f)
}

/// `flat_map(f)` after a chain emitting `I`.
pub fn flat_map<I, U: IntoIterator, F: FnMut(I) -> U>(
    _: PhantomData<I>,
    f: F,
) -> Unknown<U, pipeline_runtime::transform::FlatMap<I, F>> {
    pipeline_runtime::transform::flat_map(f)
}

/// `inspect(f)` after a chain emitting `I`.
pub fn inspect<I, R, F: FnMut(&I) -> R>(
    _: PhantomData<I>,
    f: F,
) -> Unknown<R, pipeline_runtime::transform::Inspect<I, F>> {
    pipeline_runtime::transform::inspect(f)
}

/// `take(n)` after a chain emitting `I`.
pub fn take<I>(_: PhantomData<I>, n: usize) -> pipeline_runtime::transform::Take<I> {
    pipeline_runtime::transform::take(n)
}

/// `skip(n)` after a chain emitting `I`.
pub fn skip<I>(_: PhantomData<I>, n: usize) -> pipeline_runtime::transform::Skip<I> {
    pipeline_runtime::transform::skip(n)
}

/// `then(f)` after a chain emitting `I`.
pub fn then<I, Fut: Future, F: FnMut(I) -> Fut>(
    _: PhantomData<I>,
    f: F,
) -> Unknown<Fut, pipeline_runtime::transform::Then<I, F>> {
    pipeline_runtime::transform::then(f)
}

/// `for_each(f)` with a synchronous `f`, after a chain emitting `I`. The
/// result is keyed on `f`'s return type, so a closure that returns
/// something other than `()` or a `Result` is reported once, at the
/// closure.
pub fn for_each<I, R, F>(
    _: PhantomData<I>,
    f: F,
) -> Unknown<R::Error, pipeline_runtime::io::ForEach<I, F>>
where
    R: pipeline_runtime::io::SinkResult,
    F: FnMut(I) -> R,
{
    pipeline_runtime::io::for_each_unchecked(f)
}

/// `for_each(|x| async { .. })`, after a chain emitting `I`.
pub fn for_each_async<I, Fut, F>(
    _: PhantomData<I>,
    f: F,
) -> Unknown<Fut, pipeline_runtime::io::ForEachAsync<I, F>>
where
    F: FnMut(I) -> Fut,
    Fut: Future,
    Fut::Output: pipeline_runtime::io::SinkResult,
{
    pipeline_runtime::io::for_each_async(f)
}

/// `collect(&out)` after a chain emitting `I`.
pub fn collect<I>(
    _: PhantomData<I>,
    into: &pipeline_runtime::io::Collected<I>,
) -> pipeline_runtime::io::Collect<I> {
    pipeline_runtime::io::collect(into)
}

/// `discard()` after a chain emitting `I`.
pub fn discard<I>(_: PhantomData<I>) -> pipeline_runtime::io::Discard<I> {
    pipeline_runtime::io::discard()
}

/// `iter(items)` at the head of a chain.
pub fn iter<I: IntoIterator>(items: I) -> Iter<I::IntoIter> {
    pipeline_runtime::io::iter(items)
}

pub use pipeline_runtime::io::stream;

// IO built-ins. They take no closures, so they need no marker: the
// runtime's constructors are called as they are.

pub use pipeline_runtime::io::{
    DEFAULT_MAX_LINE, Interval, Lines, channel, frames, interval, lines, results, sink, write,
    write_lines,
};

/// The items `ok()` takes.
#[diagnostic::on_unimplemented(
    message = "`ok()` takes `Result` items, not `{Self}`",
    label = "the items reaching `ok()` are `{Self}`",
    note = "`ok()` follows `results(..)`, as in `results(lines(reader)) >> ok()`, or any stage emitting `Result`s"
)]
pub trait IsResult {
    /// The `Ok` type.
    type Ok;
    /// The `Err` type.
    type Err;
}

impl<T, E> IsResult for Result<T, E> {
    type Ok = T;
    type Err = E;
}

/// `ok()` after a chain emitting `Result<T, E>`: passes each `T` on and
/// fails each `E`, which goes to its `errors` port.
pub fn ok<I: IsResult>(
    _: PhantomData<I>,
) -> Unknown<I::Ok, pipeline_runtime::io::OkItems<I::Ok, I::Err>> {
    pipeline_runtime::io::ok()
}

/// `chain >> through(sink, stream)`: the chain's items go into `sink`, and
/// what `stream` yields goes on (see [`pipeline_runtime::io::through`]).
pub fn through_chain<A, Si, St>(
    chain: A,
    sink: Si,
    stream: St,
    stats: Arc<StageStats>,
) -> impl Chain<Out = St::Item> + Outputs<Out = St::Item>
where
    A: Chain,
    Si: pipeline_runtime::io::Sink<A::Out>,
    Si::Error: std::fmt::Display,
    St: Stream,
{
    pipeline_runtime::io::through(sink, stream).attach(chain, stats, DEFAULT_CHUNK)
}
