use std::fmt;
use std::marker::PhantomData;

use crate::stage::{Emit, Never, StageContext, SyncStage};

/// Emits every item of `f(item)`. See [`flat_map`].
pub struct FlatMap<I, F> {
    f: F,
    _in: PhantomData<fn(I)>,
}

/// A stage that turns each item into any number of items; an item that
/// yields none is counted as filtered.
///
/// ```
/// # use pipeline_runtime::transform::flat_map;
/// let words = flat_map(|line: String| {
///     line.split_whitespace().map(str::to_owned).collect::<Vec<_>>()
/// });
/// # let _ = words;
/// ```
pub fn flat_map<I, U: IntoIterator, F: FnMut(I) -> U>(f: F) -> FlatMap<I, F> {
    FlatMap {
        f,
        _in: PhantomData,
    }
}

impl<I, U: IntoIterator, F: FnMut(I) -> U> SyncStage<I> for FlatMap<I, F> {
    type Out = U::Item;
    type Error = Never;

    #[inline]
    fn process(
        &mut self,
        item: I,
        out: &mut Emit<'_, U::Item>,
        _: &StageContext,
    ) -> Result<(), Never> {
        out.extend((self.f)(item));
        Ok(())
    }
}

impl<I, F> fmt::Debug for FlatMap<I, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FlatMap")
    }
}

crate::sync_stage!(impl[I, U: IntoIterator, F: FnMut(I) -> U] FlatMap<I, F>: I where);

// Cloned for each worker of a `parallel` stage.
impl<I, F: Clone> Clone for FlatMap<I, F> {
    fn clone(&self) -> Self {
        FlatMap {
            f: self.f.clone(),
            _in: PhantomData,
        }
    }
}
