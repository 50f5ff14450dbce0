use std::fmt;
use std::marker::PhantomData;

use crate::stage::{Emit, Failures, Never, StageContext, SyncStage};

/// Keeps the items for which the predicate holds. See [`filter`].
pub struct Filter<I, F> {
    predicate: F,
    _in: PhantomData<fn(I)>,
}

/// A stage that keeps the items for which `predicate` returns `true`; the
/// others are counted as filtered.
///
/// ```
/// # use pipeline_runtime::transform::filter;
/// let big = filter(|x: &u64| *x > 100);
/// # let _ = big;
/// ```
pub fn filter<I, B: Into<bool>, F: FnMut(&I) -> B>(predicate: F) -> Filter<I, F> {
    Filter {
        predicate,
        _in: PhantomData,
    }
}

// The predicate's result is generic (in practice `bool`) so that the
// generated code can name it, and an unknown one after a type error is
// not reported again.
impl<I, B: Into<bool>, F: FnMut(&I) -> B> SyncStage<I> for Filter<I, F> {
    type Out = I;
    type Error = Never;

    #[inline]
    fn process(&mut self, item: I, out: &mut Emit<'_, I>, _: &StageContext) -> Result<(), Never> {
        if (self.predicate)(&item).into() {
            out.emit(item);
        }
        Ok(())
    }

    #[inline]
    fn process_chunk(
        &mut self,
        input: &mut Vec<I>,
        out: &mut Vec<I>,
        failures: &mut Failures<Never>,
        _: &StageContext,
    ) {
        let predicate = &mut self.predicate;
        failures.pass_each(input, out, |items, out| {
            out.extend(items.filter(|item| predicate(item).into()));
        });
    }
}

impl<I, F> fmt::Debug for Filter<I, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Filter")
    }
}

crate::sync_stage!(impl[I, B: Into<bool>, F: FnMut(&I) -> B] Filter<I, F>: I where);

// Cloned for each worker of a `parallel` stage.
impl<I, F: Clone> Clone for Filter<I, F> {
    fn clone(&self) -> Self {
        Filter {
            predicate: self.predicate.clone(),
            _in: PhantomData,
        }
    }
}

/// Composed with the built-ins next to it into one pass (see
/// [`Composed`](super::Composed)).
impl<I, B: Into<bool>, F: FnMut(&I) -> B> super::Step<I> for Filter<I, F> {
    type Out = I;
    type Error = Never;

    const FILTERS: bool = true;

    #[inline(always)]
    fn step(&mut self, item: I) -> Result<Option<Self::Out>, Never> {
        Ok((self.predicate)(&item).into().then_some(item))
    }
}
