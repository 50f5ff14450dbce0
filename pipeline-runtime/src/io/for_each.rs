use std::fmt;
use std::future::Future;
use std::marker::PhantomData;

use crate::stage::{Emit, IsSink, Never, Stage, StageContext, SyncStage};

/// What a `for_each` closure may return: `()` or `Result<(), E>`, where an
/// `Err` fails the item.
#[diagnostic::on_unimplemented(
    message = "a `for_each` closure must return `()` or `Result<(), E>`, not `{Self}`",
    label = "this returns `{Self}`",
    note = "for an async closure, write `for_each(|item| async move {{ .. }})` so the body is an `async` block"
)]
pub trait SinkResult {
    /// The error an item can fail with.
    type Error: fmt::Display;
    /// Turns the closure's return value into a result.
    fn into_result(self) -> Result<(), Self::Error>;
}

impl SinkResult for () {
    type Error = Never;
    #[inline]
    fn into_result(self) -> Result<(), Never> {
        Ok(())
    }
}

impl<E: fmt::Display> SinkResult for Result<(), E> {
    type Error = E;
    #[inline]
    fn into_result(self) -> Result<(), E> {
        self
    }
}

/// [`for_each`] without the check on `f`'s return type, for callers that
/// check it themselves (the code `pipeline!` generates).
#[doc(hidden)]
pub fn for_each_unchecked<I, F>(f: F) -> ForEach<I, F> {
    ForEach {
        f,
        _in: PhantomData,
    }
}

/// A sink calling a function for each item. See [`for_each`].
pub struct ForEach<I, F> {
    f: F,
    _in: PhantomData<fn(I)>,
}

/// A sink that calls `f` on each item. `f` may return `()` or
/// `Result<(), E>`; an `Err` counts the item as failed.
///
/// ```
/// # use pipeline_runtime::io::for_each;
/// let print = for_each(|x: u64| println!("{x}"));
/// # let _ = print;
/// ```
pub fn for_each<I, R: SinkResult, F: FnMut(I) -> R>(f: F) -> ForEach<I, F> {
    ForEach {
        f,
        _in: PhantomData,
    }
}

impl<I, R: SinkResult, F: FnMut(I) -> R> SyncStage<I> for ForEach<I, F> {
    type Out = Never;
    type Error = R::Error;

    #[inline]
    fn process(
        &mut self,
        item: I,
        _: &mut Emit<'_, Never>,
        _: &StageContext,
    ) -> Result<(), R::Error> {
        (self.f)(item).into_result()
    }

    fn process_chunk(
        &mut self,
        input: &mut Vec<I>,
        _: &mut Vec<Never>,
        failures: &mut crate::stage::Failures<R::Error>,
        _: &StageContext,
    ) {
        let f = &mut self.f;
        failures.record_each(input, |items, failures| {
            for item in items {
                match f(item).into_result() {
                    Ok(()) => failures.note_passed(1),
                    Err(error) => failures.fail(error),
                }
            }
        });
    }
}

impl<I, F> IsSink for ForEach<I, F> {}

impl<I, F> fmt::Debug for ForEach<I, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ForEach")
    }
}

/// A sink awaiting a future for each item. See [`for_each_async`].
pub struct ForEachAsync<I, F> {
    f: F,
    _in: PhantomData<fn(I)>,
}

/// A sink that awaits `f(item)` for each item, one at a time. The future may
/// output `()` or `Result<(), E>`.
///
/// Inside `pipeline!`, `for_each(|x| async move { .. })` picks this one.
///
/// ```
/// # use pipeline_runtime::io::for_each_async;
/// let store = for_each_async(|x: u64| async move { println!("{x}") });
/// # let _ = store;
/// ```
pub fn for_each_async<I, Fut, F>(f: F) -> ForEachAsync<I, F>
where
    Fut: Future<Output: SinkResult>,
    F: FnMut(I) -> Fut,
{
    ForEachAsync {
        f,
        _in: PhantomData,
    }
}

impl<I, Fut, F> Stage<I> for ForEachAsync<I, F>
where
    F: FnMut(I) -> Fut,
    Fut: Future,
    Fut::Output: SinkResult,
{
    type Out = Never;
    type Error = <Fut::Output as SinkResult>::Error;

    async fn process(
        &mut self,
        item: I,
        _: &mut Emit<'_, Never>,
        _: &StageContext,
    ) -> Result<(), Self::Error> {
        (self.f)(item).await.into_result()
    }
}

impl<I, F> IsSink for ForEachAsync<I, F> {}

impl<I, F> fmt::Debug for ForEachAsync<I, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ForEachAsync")
    }
}

crate::sync_stage!(impl[I, R: SinkResult, F: FnMut(I) -> R] ForEach<I, F>: I where);

// Cloned for each worker of a `parallel` sink.
impl<I, F: Clone> Clone for ForEach<I, F> {
    fn clone(&self) -> Self {
        ForEach {
            f: self.f.clone(),
            _in: PhantomData,
        }
    }
}

// Cloned for each worker of a `parallel` sink.
impl<I, F: Clone> Clone for ForEachAsync<I, F> {
    fn clone(&self) -> Self {
        ForEachAsync {
            f: self.f.clone(),
            _in: PhantomData,
        }
    }
}

/// The end of a run of built-ins composed into one pass (see
/// [`Composed`](crate::transform::Composed)).
impl<I, R: SinkResult, F: FnMut(I) -> R> crate::transform::Step<I> for ForEach<I, F> {
    type Out = Never;
    type Error = R::Error;

    const FILTERS: bool = false;

    const ENDS: bool = true;

    #[inline(always)]
    fn step(&mut self, item: I) -> Result<Option<Never>, R::Error> {
        (self.f)(item).into_result().map(|()| None)
    }
}
