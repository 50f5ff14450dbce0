use std::fmt;
use std::marker::PhantomData;

use crate::stage::{BoxError, Emit, Failures, Never, Pull, Source, StageContext, SyncStage};

/// A source whose errors are items. See [`results`].
pub struct Results<S: Source> {
    source: S,
    /// The inner source's items, moved into the output after each fill;
    /// reused. Items left here by a cancelled fill go out first next time.
    scratch: Vec<S::Out>,
}

/// A source that yields `Ok(item)` for each item of `source` and `Err(error)`
/// for each error it reports, in order.
///
/// A source has no `errors` port: its read errors (a line that is not
/// UTF-8, a frame that is too long, ...) are counted and logged by the
/// runtime, and that is all. Wrapped in `results`, they become items that
/// the pipeline can route: follow it with [`ok`] to pass the values on and
/// fail the errors, so they reach `ok`'s `errors` port.
///
/// ```
/// use pipeline_runtime::io::{lines, ok, results};
///
/// let input: &[u8] = b"one\n\xff\xfe\nthree\n";
/// let each = results(lines(input)); // Ok("one"), Err(line 2 ..), Ok("three")
/// let text = ok::<String, pipeline_runtime::io::LineError>(); // its errors port gets line 2
/// # let _ = (each, text);
/// ```
pub fn results<S: Source>(source: S) -> Results<S> {
    Results {
        source,
        scratch: Vec::new(),
    }
}

impl<S: Source> Source for Results<S> {
    type Out = Result<S::Out, S::Error>;
    type Error = Never;

    fn init(&mut self, ctx: &StageContext) -> impl Future<Output = Result<(), BoxError>> {
        self.source.init(ctx)
    }

    async fn fill(
        &mut self,
        out: &mut Vec<Self::Out>,
        max: usize,
        ctx: &StageContext,
    ) -> Result<Pull, Never> {
        if self.hand_on_leftovers(out) {
            return Ok(Pull::More);
        }
        let room = max.saturating_sub(out.len());
        let filled = self.source.fill(&mut self.scratch, room, ctx).await;
        out.extend(self.scratch.drain(..).map(Ok));
        match filled {
            Ok(pull) => Ok(pull),
            Err(error) => {
                out.push(Err(error));
                Ok(Pull::More)
            }
        }
    }

    fn close(&mut self, ctx: &StageContext) -> impl Future<Output = Result<(), BoxError>> {
        self.source.close(ctx)
    }

    fn watch_stop(&mut self, control: &crate::control::Control) {
        self.source.watch_stop(control);
    }

    async fn drain_accepted(
        &mut self,
        out: &mut Vec<Self::Out>,
        max: usize,
        ctx: &StageContext,
    ) -> Pull {
        // Items a cancelled fill left behind were read before the stop.
        if self.hand_on_leftovers(out) {
            return Pull::More;
        }
        let room = max.saturating_sub(out.len());
        let pull = self
            .source
            .drain_accepted(&mut self.scratch, room, ctx)
            .await;
        out.extend(self.scratch.drain(..).map(Ok));
        pull
    }
}

impl<S: Source> Results<S> {
    /// Hands on the items a cancelled fill left in `scratch`, if any: they
    /// go out before anything read later.
    fn hand_on_leftovers(&mut self, out: &mut Vec<Result<S::Out, S::Error>>) -> bool {
        if self.scratch.is_empty() {
            return false;
        }
        out.extend(self.scratch.drain(..).map(Ok));
        true
    }
}

impl<S: Source> fmt::Debug for Results<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Results")
    }
}

/// A stage passing on `Ok` values and failing on `Err`s. See [`ok`].
pub struct OkItems<T, E> {
    _in: PhantomData<fn(Result<T, E>)>,
}

/// A stage that takes `Result` items, emits the value of each `Ok` and fails
/// each `Err` with its error, so the error goes to the stage's `errors` port
/// (or is counted and logged). Pairs with [`results`].
///
/// ```
/// use pipeline_runtime::io::ok;
///
/// let values = ok::<u64, std::num::ParseIntError>();
/// # let _ = values;
/// ```
pub fn ok<T, E>() -> OkItems<T, E> {
    OkItems { _in: PhantomData }
}

impl<T, E: fmt::Display> SyncStage<Result<T, E>> for OkItems<T, E> {
    type Out = T;
    type Error = E;

    #[inline]
    fn process(
        &mut self,
        item: Result<T, E>,
        out: &mut Emit<'_, T>,
        _: &StageContext,
    ) -> Result<(), E> {
        out.emit(item?);
        Ok(())
    }

    fn process_chunk(
        &mut self,
        input: &mut Vec<Result<T, E>>,
        out: &mut Vec<T>,
        failures: &mut Failures<E>,
        _: &StageContext,
    ) {
        for item in input.drain(..) {
            match item {
                Ok(value) => {
                    out.push(value);
                    failures.note_passed(1);
                }
                Err(error) => failures.fail(error),
            }
        }
    }
}

crate::sync_stage!(impl[T, E: fmt::Display] OkItems<T, E>: Result<T, E> where);

impl<T, E> Clone for OkItems<T, E> {
    fn clone(&self) -> Self {
        OkItems { _in: PhantomData }
    }
}

impl<T, E> fmt::Debug for OkItems<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OkItems")
    }
}
