use std::fmt;
use std::marker::PhantomData;

use crate::stage::{Emit, Failures, Never, StageContext, SyncStage};

/// Calls a function on each item and passes it on. See [`inspect`].
pub struct Inspect<I, F> {
    f: F,
    _in: PhantomData<fn(I)>,
}

/// A stage that looks at each item (to log or count it) and passes it on
/// unchanged.
///
/// ```
/// # use pipeline_runtime::transform::inspect;
/// let log = inspect(|x: &u64| println!("saw {x}"));
/// # let _ = log;
/// ```
pub fn inspect<I, R, F: FnMut(&I) -> R>(f: F) -> Inspect<I, F> {
    Inspect {
        f,
        _in: PhantomData,
    }
}

// Whatever `f` returns is ignored, so `inspect(|x| log.push(x.clone()))`
// and the like need no trailing `;`.
impl<I, R, F: FnMut(&I) -> R> SyncStage<I> for Inspect<I, F> {
    type Out = I;
    type Error = Never;

    #[inline]
    fn process(&mut self, item: I, out: &mut Emit<'_, I>, _: &StageContext) -> Result<(), Never> {
        let _ = (self.f)(&item);
        out.emit(item);
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
        let f = &mut self.f;
        failures.pass_each(input, out, |items, out| {
            out.extend(items.inspect(|item| {
                let _ = f(item);
            }));
        });
    }
}

impl<I, F> fmt::Debug for Inspect<I, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Inspect")
    }
}

crate::sync_stage!(impl[I, R, F: FnMut(&I) -> R] Inspect<I, F>: I where);

// Cloned for each worker of a `parallel` stage.
impl<I, F: Clone> Clone for Inspect<I, F> {
    fn clone(&self) -> Self {
        Inspect {
            f: self.f.clone(),
            _in: PhantomData,
        }
    }
}

/// Composed with the built-ins next to it into one pass (see
/// [`Composed`](super::Composed)).
impl<I, R, F: FnMut(&I) -> R> super::Step<I> for Inspect<I, F> {
    type Out = I;
    type Error = Never;

    const FILTERS: bool = false;

    #[inline(always)]
    fn step(&mut self, item: I) -> Result<Option<Self::Out>, Never> {
        (self.f)(&item);
        Ok(Some(item))
    }
}
