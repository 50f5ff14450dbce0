use std::fmt;

use crate::stage::{Never, Pull, Source, StageContext};

/// A source over an iterator. See [`iter`].
pub struct Iter<I> {
    items: I,
}

/// A source that yields every item of `items`, then ends.
///
/// ```
/// # use pipeline_runtime::io::iter;
/// let numbers = iter(1..=3u64);
/// # let _ = numbers;
/// ```
pub fn iter<I: IntoIterator>(items: I) -> Iter<I::IntoIter> {
    Iter {
        items: items.into_iter(),
    }
}

impl<I: Iterator> Source for Iter<I> {
    type Out = I::Item;
    type Error = Never;

    async fn fill(
        &mut self,
        out: &mut Vec<I::Item>,
        max: usize,
        _: &StageContext,
    ) -> Result<Pull, Never> {
        let wanted = max.saturating_sub(out.len());
        let before = out.len();
        out.extend(self.items.by_ref().take(wanted));
        Ok(if out.len() - before < wanted {
            Pull::Done
        } else {
            Pull::More
        })
    }
}

impl<I> fmt::Debug for Iter<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Iter")
    }
}
