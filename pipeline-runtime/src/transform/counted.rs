//! `take(n)` and `skip(n)`: one stage that counts the items it sees and
//! keeps those before the `n`-th ([`Take`]) or from it on ([`Skip`]).

use std::fmt;
use std::marker::PhantomData;

use crate::stage::{Emit, Failures, Never, StageContext, SyncStage};

/// Counts items and keeps those on one side of the `n`-th: [`Take`] or
/// [`Skip`].
pub struct Counted<I, K> {
    n: usize,
    seen: usize,
    _in: PhantomData<fn(I, K)>,
}

/// Which side of the count a [`Counted`] keeps.
pub trait Keeps {
    /// The stage's name, for `Debug`.
    const NAME: &'static str;
    /// Whether an item is kept, given whether it comes before the `n`-th.
    fn keeps(before_limit: bool) -> bool;
}

/// The items before the `n`-th: [`Take`].
pub enum Leading {}

/// The items from the `n`-th on: [`Skip`].
pub enum Trailing {}

impl Keeps for Leading {
    const NAME: &'static str = "Take";
    #[inline(always)]
    fn keeps(before_limit: bool) -> bool {
        before_limit
    }
}

impl Keeps for Trailing {
    const NAME: &'static str = "Skip";
    #[inline(always)]
    fn keeps(before_limit: bool) -> bool {
        !before_limit
    }
}

/// Passes the first `n` items on; later ones are filtered. See [`take`].
pub type Take<I> = Counted<I, Leading>;

/// Filters the first `n` items and passes the rest on. See [`skip`].
pub type Skip<I> = Counted<I, Trailing>;

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
    Counted::new(n)
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
    Counted::new(n)
}

impl<I, K: Keeps> Counted<I, K> {
    fn new(n: usize) -> Self {
        Counted {
            n,
            seen: 0,
            _in: PhantomData,
        }
    }

    #[inline(always)]
    fn pass(&mut self, item: I) -> Option<I> {
        let before_limit = self.seen < self.n;
        if before_limit {
            self.seen += 1;
        }
        K::keeps(before_limit).then_some(item)
    }
}

impl<I, K: Keeps> SyncStage<I> for Counted<I, K> {
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

impl<I, K: Keeps> fmt::Debug for Counted<I, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(K::NAME)
            .field("n", &self.n)
            .field("seen", &self.seen)
            .finish()
    }
}

crate::sync_stage!(impl[I, K: Keeps] Counted<I, K>: I where);

/// Composed with the built-ins next to it into one pass (see
/// [`Composed`](super::Composed)).
impl<I, K: Keeps> super::Step<I> for Counted<I, K> {
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

    /// The items 1 to 7 through `stage`: two chunks, then one at a time
    /// through the composed path, so the count carries across both.
    fn through<K: Keeps>(mut stage: Counted<u32, K>) -> Vec<u32> {
        let mut failures = Failures::default();
        let ctx = StageContext::detached("test");
        let (mut out, mut input) = (Vec::new(), vec![1, 2]);
        stage.process_chunk(&mut input, &mut out, &mut failures, &ctx);
        let mut input = vec![3, 4, 5];
        stage.process_chunk(&mut input, &mut out, &mut failures, &ctx);
        out.extend((6..=7).filter_map(|x| stage.step(x).unwrap()));
        out
    }

    #[test]
    fn take_and_skip_count_in_order_across_chunks() {
        assert_eq!(through(take(3)), vec![1, 2, 3]);
        assert_eq!(through(skip(3)), vec![4, 5, 6, 7]);
        assert_eq!(through(take(0)), Vec::<u32>::new());
        assert_eq!(through(skip(9)), Vec::<u32>::new());
    }
}
