use std::fmt;

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
/// how many were filtered out, and the errors of those that failed.
///
/// The runtime reuses one `Failures` per stage, so recording allocates only
/// when errors occur.
pub struct Failures<E> {
    filtered: u64,
    errors: Vec<(u64, E)>,
    /// Index, within the stage's input, of the next item to be processed.
    position: u64,
}

impl<E> Default for Failures<E> {
    fn default() -> Self {
        Failures {
            filtered: 0,
            errors: Vec::new(),
            position: 0,
        }
    }
}

impl<E> Failures<E> {
    /// Records that the current item produced `outputs` items (zero means
    /// it was filtered out), and moves to the next item.
    #[inline]
    pub fn note_output(&mut self, outputs: usize) {
        self.filtered += u64::from(outputs == 0);
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

    /// Items filtered out since the last [`take`](Failures::take_errors).
    pub fn filtered(&self) -> u64 {
        self.filtered
    }

    /// Errors recorded since the last take.
    pub fn errors(&self) -> &[(u64, E)] {
        &self.errors
    }

    /// Index within the stage's input of the next item.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Resets the filtered count and hands out the recorded errors, each
    /// with the index of its item within the stage's input.
    pub fn take(&mut self) -> (u64, std::vec::Drain<'_, (u64, E)>) {
        let filtered = std::mem::take(&mut self.filtered);
        (filtered, self.errors.drain(..))
    }
}

impl<E: fmt::Debug> fmt::Debug for Failures<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failures")
            .field("filtered", &self.filtered)
            .field("errors", &self.errors)
            .finish()
    }
}
