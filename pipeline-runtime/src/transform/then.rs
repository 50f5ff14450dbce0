use std::fmt;
use std::future::Future;
use std::marker::PhantomData;

use crate::stage::{Emit, Never, Stage, StageContext};

/// Emits the output of the future `f(item)`. See [`then`].
pub struct Then<I, F> {
    f: F,
    _in: PhantomData<fn(I)>,
}

/// A stage that transforms each item asynchronously: `f` returns a future
/// whose output is emitted. Items are processed one at a time, in order.
///
/// ```
/// # use pipeline_runtime::transform::then;
/// let looked_up = then(|id: u64| async move { id + 1 });
/// # let _ = looked_up;
/// ```
pub fn then<I, Fut: Future, F: FnMut(I) -> Fut>(f: F) -> Then<I, F> {
    Then {
        f,
        _in: PhantomData,
    }
}

impl<I, Fut: Future, F: FnMut(I) -> Fut> Stage<I> for Then<I, F> {
    type Out = Fut::Output;
    type Error = Never;

    async fn process(
        &mut self,
        item: I,
        out: &mut Emit<'_, Fut::Output>,
        _: &StageContext,
    ) -> Result<(), Never> {
        out.emit((self.f)(item).await);
        Ok(())
    }
}

impl<I, F> fmt::Debug for Then<I, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Then")
    }
}

// Cloned for each worker of a `parallel` stage.
impl<I, F: Clone> Clone for Then<I, F> {
    fn clone(&self) -> Self {
        Then {
            f: self.f.clone(),
            _in: PhantomData,
        }
    }
}
