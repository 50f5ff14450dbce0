use std::fmt;
use std::marker::PhantomData;

use crate::stage::{Emit, Failures, Never, StageContext, SyncStage};

/// Emits `x` for each item where `f` returns `Some(x)`. See [`filter_map`].
pub struct FilterMap<I, F> {
    f: F,
    _in: PhantomData<fn(I)>,
}

/// A stage that transforms and filters in one step: `None` filters the item.
///
/// ```
/// # use pipeline_runtime::transform::filter_map;
/// let numbers = filter_map(|s: String| s.parse::<u64>().ok());
/// # let _ = numbers;
/// ```
pub fn filter_map<I, O, F: FnMut(I) -> Option<O>>(f: F) -> FilterMap<I, F> {
    FilterMap {
        f,
        _in: PhantomData,
    }
}

impl<I, O, F: FnMut(I) -> Option<O>> SyncStage<I> for FilterMap<I, F> {
    type Out = O;
    type Error = Never;

    #[inline]
    fn process(&mut self, item: I, out: &mut Emit<'_, O>, _: &StageContext) -> Result<(), Never> {
        if let Some(value) = (self.f)(item) {
            out.emit(value);
        }
        Ok(())
    }

    #[inline]
    fn process_chunk(
        &mut self,
        input: &mut Vec<I>,
        out: &mut Vec<O>,
        failures: &mut Failures<Never>,
        _: &StageContext,
    ) {
        let f = &mut self.f;
        failures.pass_each(input, out, |items, out| {
            out.extend(items.filter_map(&mut *f))
        });
    }
}

impl<I, F> fmt::Debug for FilterMap<I, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FilterMap")
    }
}

crate::sync_stage!(impl[I, O, F: FnMut(I) -> Option<O>] FilterMap<I, F>: I where);

// Cloned for each worker of a `parallel` stage.
impl<I, F: Clone> Clone for FilterMap<I, F> {
    fn clone(&self) -> Self {
        FilterMap {
            f: self.f.clone(),
            _in: PhantomData,
        }
    }
}

/// Composed with the built-ins next to it into one pass (see
/// [`Composed`](super::Composed)).
impl<I, O, F: FnMut(I) -> Option<O>> super::Step<I> for FilterMap<I, F> {
    type Out = O;
    type Error = Never;

    const FILTERS: bool = true;

    #[inline(always)]
    fn step(&mut self, item: I) -> Result<Option<Self::Out>, Never> {
        Ok((self.f)(item))
    }
}
