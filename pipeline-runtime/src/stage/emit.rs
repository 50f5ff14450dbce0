use std::fmt;

use super::StageError;

/// Where a stage puts its outputs for one input item.
///
/// Emitting nothing filters the item; emitting several flat-maps it.
pub struct Emit<'a, T> {
    buf: &'a mut Vec<T>,
}

impl<'a, T> Emit<'a, T> {
    /// Wraps the output buffer of a chunk.
    pub fn new(buf: &'a mut Vec<T>) -> Self {
        Emit { buf }
    }

    /// Emits one output item.
    #[inline]
    pub fn emit(&mut self, item: T) {
        self.buf.push(item);
    }

    /// Emits every item of an iterator, in order.
    #[inline]
    pub fn extend(&mut self, items: impl IntoIterator<Item = T>) {
        self.buf.extend(items);
    }
}

impl<T> fmt::Debug for Emit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emit")
            .field("buffered", &self.buf.len())
            .finish()
    }
}

/// What happened to the items of a chunk that did not simply pass through:
/// how many were filtered out, the errors of those that failed, and the
/// panics of those whose call panicked.
///
/// The runtime reuses one `Failures` per stage, so recording allocates only
/// when errors occur. Panics are kept apart from errors, as the panic's
/// message, so that the stage's error type is not touched by them.
///
/// A stage that overrides [`process_chunk`](crate::stage::Stage::process_chunk)
/// and runs one item at a time can isolate each item's panic with
/// [`call`](Failures::call); a panic that escapes `process_chunk` fails the
/// whole chunk instead (see [`panicked_chunk`](Failures::panicked_chunk)).
pub struct Failures<E> {
    filtered: u64,
    errors: Vec<(u64, E)>,
    panics: Vec<(u64, String)>,
    /// Index, within the stage's input, of the next item to be processed.
    position: u64,
    /// Whether the stage is a sink, which emits nothing by design: an item
    /// it took without output was consumed, not filtered.
    consumes: bool,
}

impl<E> Default for Failures<E> {
    fn default() -> Self {
        Failures {
            filtered: 0,
            errors: Vec::new(),
            panics: Vec::new(),
            position: 0,
            consumes: false,
        }
    }
}

impl<E> Failures<E> {
    /// The failures of a stage of kind `kind`: for a sink, an item that
    /// produces no output counts as consumed rather than filtered.
    pub fn for_kind(kind: crate::graph::NodeKind) -> Self {
        Failures {
            consumes: kind == crate::graph::NodeKind::Sink,
            ..Failures::default()
        }
    }

    /// Records that the current item produced `outputs` items (zero means
    /// it was filtered out, unless the stage is a sink), and moves to the
    /// next item.
    #[inline]
    pub fn note_output(&mut self, outputs: usize) {
        self.filtered += u64::from(outputs == 0 && !self.consumes);
        self.position += 1;
    }

    /// Records that `count` items passed through, one output each.
    #[inline]
    pub fn note_passed(&mut self, count: usize) {
        self.position += count as u64;
    }

    /// Records that `count` items were filtered out.
    #[inline]
    pub fn note_filtered(&mut self, count: usize) {
        self.filtered += count as u64;
        self.position += count as u64;
    }

    /// Records that the current item failed with `error`, and moves on.
    pub fn fail(&mut self, error: E) {
        self.errors.push((self.position, error));
        self.position += 1;
    }

    /// Records that the call for the current item panicked with `message`,
    /// and moves on. The item is handled as failed, by the stage's error
    /// policy.
    pub fn panicked(&mut self, message: String) {
        self.panics.push((self.position, message));
        self.position += 1;
    }

    /// Runs the call for one item, which emits into `out`, and records its
    /// outcome: its outputs (none means filtered), its error, or its panic.
    /// A panic is caught: the outputs the call emitted before it are
    /// removed, and the item is recorded as [`panicked`](Failures::panicked).
    ///
    /// This is what the default [`SyncStage::process_chunk`](crate::stage::SyncStage::process_chunk)
    /// does for each item; a stage overriding it with its own loop can do
    /// the same to keep a panic to its item.
    #[inline]
    pub fn call<T>(
        &mut self,
        out: &mut Vec<T>,
        call: impl FnOnce(&mut Emit<'_, T>) -> Result<(), E>,
    ) {
        let before = out.len();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            call(&mut Emit::new(&mut *out))
        }));
        match result {
            Ok(Ok(())) => self.note_output(out.len() - before),
            Ok(Err(error)) => self.fail(error),
            Err(panic) => {
                out.truncate(before);
                self.panicked(crate::policy::panic_message(&*panic));
            }
        }
    }

    /// Runs `pass` over the items of `input`, which emits at most one
    /// output per item into `out` (a `map`, `filter` or `filter_map` written
    /// as one iterator pass), and records each item as passed (it emitted
    /// an output) or filtered (it emitted none).
    ///
    /// The pass runs under one panic guard per chunk. A panic fails the
    /// item it was raised on; the items not yet taken stay in the drain,
    /// and the pass resumes with them. So the fast path pays for a single
    /// `catch_unwind`, and a panic costs one more, never the rest of its
    /// chunk.
    ///
    /// `pass` must take items from the drain one at a time, in order, and
    /// emit an item's output before it takes the next (as `out.extend(
    /// drain.map(f))` does); an item that panics must emit nothing.
    ///
    /// ```
    /// use pipeline_runtime::stage::Failures;
    ///
    /// let mut failures = Failures::<std::convert::Infallible>::default();
    /// let (mut input, mut out) = (vec![1, 2, 3, 4], Vec::new());
    /// # let hook = std::panic::take_hook();
    /// # std::panic::set_hook(Box::new(|_| {}));
    /// failures.pass_each(&mut input, &mut out, |items, out| {
    ///     out.extend(items.map(|x: u32| {
    ///         assert!(x != 2, "two");
    ///         x * 10
    ///     }))
    /// });
    /// # std::panic::set_hook(hook);
    /// assert_eq!(out, vec![10, 30, 40]);
    /// assert_eq!(failures.panics(), &[(1, "two".to_owned())]);
    /// ```
    #[inline]
    pub fn pass_each<I, O>(
        &mut self,
        input: &mut Vec<I>,
        out: &mut Vec<O>,
        mut pass: impl FnMut(&mut std::vec::Drain<'_, I>, &mut Vec<O>),
    ) {
        let mut rest = input.drain(..);
        loop {
            let left = rest.len();
            let before = out.len();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pass(&mut rest, &mut *out)
            }));
            let taken = left - rest.len();
            let emitted = out.len() - before;
            match result {
                Ok(()) => {
                    self.note_passed(emitted);
                    self.note_filtered(taken - emitted);
                    return;
                }
                Err(panic) => {
                    // The item that panicked was taken but emitted nothing.
                    self.note_passed(emitted);
                    self.note_filtered(taken.saturating_sub(emitted + 1));
                    self.panicked(crate::policy::panic_message(&*panic));
                }
            }
        }
    }

    /// Runs `pass` over the items of `input`, recording each item's outcome
    /// itself (through the `Failures` it is given), under one panic guard
    /// per chunk: a panic fails the item it was raised on, and the pass
    /// resumes with the items after it. For a stage whose items each
    /// succeed or fail (a sink), where [`pass_each`](Failures::pass_each)
    /// counts outputs instead.
    ///
    /// `pass` must take items from the drain one at a time, in order, and
    /// record each item it took before it takes the next.
    #[inline]
    pub fn record_each<I>(
        &mut self,
        input: &mut Vec<I>,
        mut pass: impl FnMut(&mut std::vec::Drain<'_, I>, &mut Self),
    ) {
        let mut rest = input.drain(..);
        while let Err(panic) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pass(&mut rest, &mut *self)))
        {
            self.panicked(crate::policy::panic_message(&*panic));
        }
    }

    /// Records that a panic escaped the processing of a whole chunk of
    /// `count` items that started at input position `start` (the
    /// [`position`](Failures::position) before the chunk).
    ///
    /// Which items had really been done is unknown, so every item of the
    /// chunk fails with the panic's `message`, except those the stage had
    /// already failed itself (they keep their own error or panic): items it
    /// had counted as passed or filtered fail too, and the caller discards
    /// the outputs the chunk had produced. The position moves past the
    /// chunk.
    pub fn panicked_chunk(&mut self, start: u64, count: usize, message: &str) {
        let end = start + count as u64;
        // Items the stage failed before the panic, in position order.
        let mut own: Vec<u64> = self
            .errors
            .iter()
            .map(|(p, _)| *p)
            .chain(self.panics.iter().map(|(p, _)| *p))
            .filter(|p| (start..end).contains(p))
            .collect();
        own.sort_unstable();
        let mut own = own.into_iter().peekable();
        for position in start..end {
            if own.peek() == Some(&position) {
                own.next();
            } else {
                self.panics.push((position, message.to_owned()));
            }
        }
        self.panics.sort_by_key(|(p, _)| *p);
        self.filtered = 0;
        self.position = end;
    }

    /// Moves the position past `count` items the stage never saw (refused
    /// by an open circuit breaker).
    pub(crate) fn skip(&mut self, count: usize) {
        self.position += count as u64;
    }

    /// Items filtered out since the last [`take`](Failures::take).
    pub fn filtered(&self) -> u64 {
        self.filtered
    }

    /// Errors recorded since the last take.
    pub fn errors(&self) -> &[(u64, E)] {
        &self.errors
    }

    /// Panics recorded since the last take, each with the index of its item
    /// within the stage's input and the panic's message.
    pub fn panics(&self) -> &[(u64, String)] {
        &self.panics
    }

    /// Index within the stage's input of the next item.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Resets the filtered count and hands out the recorded errors, each
    /// with the index of its item within the stage's input. Recorded panics
    /// stay; [`take_all`](Failures::take_all) takes both.
    pub fn take(&mut self) -> (u64, std::vec::Drain<'_, (u64, E)>) {
        let filtered = std::mem::take(&mut self.filtered);
        (filtered, self.errors.drain(..))
    }

    /// Resets the filtered count, returning it, and hands every recorded
    /// error and panic to `each`, in input order, with the index of its
    /// item within the stage's input.
    pub fn take_all(&mut self, mut each: impl FnMut(u64, StageError<E>)) -> u64 {
        let filtered = std::mem::take(&mut self.filtered);
        if self.panics.is_empty() {
            for (position, error) in self.errors.drain(..) {
                each(position, StageError::Failed(error));
            }
            return filtered;
        }
        let mut panics = self.panics.drain(..).peekable();
        for (position, error) in self.errors.drain(..) {
            while let Some((p, message)) = panics.next_if(|(p, _)| *p < position) {
                each(p, StageError::Panicked(message));
            }
            each(position, StageError::Failed(error));
        }
        for (p, message) in panics {
            each(p, StageError::Panicked(message));
        }
        filtered
    }
}

impl<E: fmt::Debug> fmt::Debug for Failures<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failures")
            .field("filtered", &self.filtered)
            .field("errors", &self.errors)
            .field("panics", &self.panics)
            .finish()
    }
}
