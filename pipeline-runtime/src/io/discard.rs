use std::fmt;
use std::marker::PhantomData;

use crate::stage::{Emit, Failures, IsSink, Never, StageContext, SyncStage};

/// A sink that drops every item. See [`discard`].
pub struct Discard<I> {
    _in: PhantomData<fn(I)>,
}

/// A sink that drops every item it gets, counting them as processed.
///
/// End a chain with `>> discard()` when only a stage's side effects matter.
///
/// ```
/// # use pipeline_runtime::io::discard;
/// let drop_all = discard::<u64>();
/// # let _ = drop_all;
/// ```
pub fn discard<I>() -> Discard<I> {
    Discard { _in: PhantomData }
}

impl<I> SyncStage<I> for Discard<I> {
    type Out = Never;
    type Error = Never;

    fn process(&mut self, _: I, _: &mut Emit<'_, Never>, _: &StageContext) -> Result<(), Never> {
        Ok(())
    }

    fn process_chunk(
        &mut self,
        input: &mut Vec<I>,
        _: &mut Vec<Never>,
        failures: &mut Failures<Never>,
        _: &StageContext,
    ) {
        failures.note_passed(input.len());
        input.clear();
    }
}

impl<I> IsSink for Discard<I> {}

impl<I> fmt::Debug for Discard<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Discard")
    }
}

crate::sync_stage!(impl[I] Discard<I>: I where);

impl<I> Clone for Discard<I> {
    fn clone(&self) -> Self {
        Discard { _in: PhantomData }
    }
}
