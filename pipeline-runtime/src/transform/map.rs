use std::fmt;
use std::marker::PhantomData;

use crate::stage::{Emit, Failures, Never, StageContext, SyncStage};

/// Emits `f(item)` for each item. See [`map`].
pub struct Map<I, F> {
    f: F,
    _in: PhantomData<fn(I)>,
}

/// A stage that transforms each item with `f`.
///
/// ```
/// # use pipeline_runtime::transform::map;
/// let double = map(|x: u64| x * 2);
/// # let _ = double;
/// ```
pub fn map<I, O, F: FnMut(I) -> O>(f: F) -> Map<I, F> {
    Map {
        f,
        _in: PhantomData,
    }
}

impl<I, O, F: FnMut(I) -> O> SyncStage<I> for Map<I, F> {
    type Out = O;
    type Error = Never;

    #[inline]
    fn process(&mut self, item: I, out: &mut Emit<'_, O>, _: &StageContext) -> Result<(), Never> {
        out.emit((self.f)(item));
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
        failures.pass_each(input, out, |items, out| out.extend(items.map(&mut *f)));
    }
}

impl<I, F> fmt::Debug for Map<I, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Map")
    }
}

crate::sync_stage!(impl[I, O, F: FnMut(I) -> O] Map<I, F>: I where);

// Cloned for each worker of a `parallel` stage.
impl<I, F: Clone> Clone for Map<I, F> {
    fn clone(&self) -> Self {
        Map {
            f: self.f.clone(),
            _in: PhantomData,
        }
    }
}

/// Composed with the built-ins next to it into one pass (see
/// [`Composed`](super::Composed)).
impl<I, O, F: FnMut(I) -> O> super::Step<I> for Map<I, F> {
    type Out = O;
    type Error = Never;

    const FILTERS: bool = false;

    #[inline(always)]
    fn step(&mut self, item: I) -> Result<Option<Self::Out>, Never> {
        Ok(Some((self.f)(item)))
    }
}
