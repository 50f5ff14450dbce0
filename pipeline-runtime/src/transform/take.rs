use std::fmt;
use std::marker::PhantomData;

use crate::stage::{Emit, Failures, Never, StageContext, SyncStage};

/// Passes the first `n` items on; later ones are filtered. See [`take`].
pub struct Take<I> {
    n: usize,
    seen: usize,
    _in: PhantomData<fn(I)>,
}

/// A stage that passes on the first `n` items it sees and filters (counts,
/// and drops) every later one. It runs as one: the count is in order, so
/// it is never cloned onto parallel workers.
///
/// It does not end its input: a source keeps being read after the `n`-th
/// item. Bound an endless source where it is made (`interval(.., take = n)`).
///
/// ```
/// # use pipeline_runtime::transform::take;
/// let first_ten = take::<u64>(10);
/// # let _ = first_ten;
/// ```
pub fn take<I>(n: usize) -> Take<I> {
    Take {
        n,
        seen: 0,
        _in: PhantomData,
    }
}

impl<I> Take<I> {
    #[inline(always)]
    fn pass(&mut self, item: I) -> Option<I> {
        if self.seen < self.n {
            self.seen += 1;
            Some(item)
        } else {
            None
        }
    }
}

impl<I> SyncStage<I> for Take<I> {
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

impl<I> fmt::Debug for Take<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Take")
            .field("n", &self.n)
            .field("seen", &self.seen)
            .finish()
    }
}

crate::sync_stage!(impl[I] Take<I>: I where);

/// Composed with the built-ins next to it into one pass (see
/// [`Composed`](super::Composed)).
impl<I> super::Step<I> for Take<I> {
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
        let mut stage = take::<u32>(3);
        let mut failures = Failures::default();
        let ctx = StageContext::detached("test");
        let (mut out, mut input) = (Vec::new(), vec![1, 2]);
        stage.process_chunk(&mut input, &mut out, &mut failures, &ctx);
        let mut input = vec![3, 4, 5];
        stage.process_chunk(&mut input, &mut out, &mut failures, &ctx);
        let stepped: Vec<u32> = (6..=7).filter_map(|x| stage.step(x).unwrap()).collect();
        out.extend(stepped);
        assert_eq!(out, vec![1, 2, 3]);
    }
}
