use std::fmt;
use std::marker::PhantomData;

use crate::stage::{Emit, Failures, Never, StageContext, SyncStage};

/// Filters the first `n` items and passes the rest on. See [`skip`].
pub struct Skip<I> {
    n: usize,
    seen: usize,
    _in: PhantomData<fn(I)>,
}

/// A stage that filters (counts, and drops) the first `n` items it sees and
/// passes on every later one. It runs as one: the count is in order, so it
/// is never cloned onto parallel workers.
///
/// ```
/// # use pipeline_runtime::transform::skip;
/// let after_header = skip::<String>(1);
/// # let _ = after_header;
/// ```
pub fn skip<I>(n: usize) -> Skip<I> {
    Skip {
        n,
        seen: 0,
        _in: PhantomData,
    }
}

impl<I> Skip<I> {
    #[inline(always)]
    fn pass(&mut self, item: I) -> Option<I> {
        if self.seen < self.n {
            self.seen += 1;
            None
        } else {
            Some(item)
        }
    }
}

impl<I> SyncStage<I> for Skip<I> {
    type Out = I;
    type Error = Never;

    #[inline]
    fn process(&mut self, item: I, out: &mut Emit<'_, I>, _: &StageContext) -> Result<(), Never> {
        if let Some(item) = self.pass(item) {
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
        failures.pass_each(input, out, |items, out| {
            out.extend(items.filter_map(|item| self.pass(item)));
        });
    }
}

impl<I> fmt::Debug for Skip<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Skip")
            .field("n", &self.n)
            .field("seen", &self.seen)
            .finish()
    }
}

crate::sync_stage!(impl[I] Skip<I>: I where);

/// Composed with the built-ins next to it into one pass (see
/// [`Composed`](super::Composed)).
impl<I> super::Step<I> for Skip<I> {
    type Out = I;
    type Error = Never;

    const FILTERS: bool = true;

    #[inline(always)]
    fn step(&mut self, item: I) -> Result<Option<I>, Never> {
        Ok(self.pass(item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::Step;

    #[test]
    fn counts_in_order_across_chunks() {
        let mut stage = skip::<u32>(3);
        let mut failures = Failures::default();
        let ctx = StageContext::detached("test");
        let (mut out, mut input) = (Vec::new(), vec![1, 2]);
        stage.process_chunk(&mut input, &mut out, &mut failures, &ctx);
        let mut input = vec![3, 4, 5];
        stage.process_chunk(&mut input, &mut out, &mut failures, &ctx);
        let stepped: Vec<u32> = (6..=7).filter_map(|x| stage.step(x).unwrap()).collect();
        out.extend(stepped);
        assert_eq!(out, vec![4, 5, 6, 7]);
    }
}
