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
pub fn filter<I, F: FnMut(&I) -> bool>(predicate: F) -> Filter<I, F> {
    Filter {
        predicate,
        _in: PhantomData,
    }
}

impl<I, F: FnMut(&I) -> bool> SyncStage<I> for Filter<I, F> {
    type Out = I;
    type Error = Never;

    #[inline]
    fn process(&mut self, item: I, out: &mut Emit<'_, I>, _: &StageContext) -> Result<(), Never> {
        if (self.predicate)(&item) {
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
        let items = input.len();
        let before = out.len();
        out.extend(input.drain(..).filter(&mut self.predicate));
        let kept = out.len() - before;
        failures.note_passed(kept);
        failures.note_filtered(items - kept);
    }
}

impl<I, F> fmt::Debug for Filter<I, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Filter")
    }
}

crate::sync_stage!(impl[I, F: FnMut(&I) -> bool] Filter<I, F>: I where);
