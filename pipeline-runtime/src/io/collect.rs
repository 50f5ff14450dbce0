use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::stage::{Emit, Failures, IsSink, Never, StageContext, SyncStage};

/// A shared list that a [`collect`] sink fills; read it after the run.
///
/// ```
/// # use pipeline_runtime::io::Collected;
/// let out = Collected::<u64>::new();
/// assert!(out.take().is_empty());
/// ```
pub struct Collected<T> {
    items: Arc<Mutex<Vec<T>>>,
}

impl<T> Collected<T> {
    /// An empty list.
    pub fn new() -> Self {
        Collected {
            items: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Takes the items collected so far, leaving the list empty.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.lock())
    }

    /// How many items have been collected so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing has been collected yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        // A panic while holding the lock cannot leave a Vec half-written.
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Default for Collected<T> {
    fn default() -> Self {
        Collected::new()
    }
}

impl<T> Clone for Collected<T> {
    fn clone(&self) -> Self {
        Collected {
            items: Arc::clone(&self.items),
        }
    }
}

impl<T> fmt::Debug for Collected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collected")
            .field("len", &self.len())
            .finish()
    }
}

/// A sink appending items to a [`Collected`] list. See [`collect`].
pub struct Collect<T> {
    into: Collected<T>,
}

/// A sink that appends every item, in order, to `into`.
///
/// ```
/// # use pipeline_runtime::io::{collect, Collected};
/// let out = Collected::new();
/// let sink = collect(&out);
/// # let _: &pipeline_runtime::io::Collect<u64> = &sink;
/// ```
pub fn collect<T>(into: &Collected<T>) -> Collect<T> {
    Collect { into: into.clone() }
}

impl<T> SyncStage<T> for Collect<T> {
    type Out = Never;
    type Error = Never;

    fn process(&mut self, item: T, _: &mut Emit<'_, Never>, _: &StageContext) -> Result<(), Never> {
        self.into.lock().push(item);
        Ok(())
    }

    fn process_chunk(
        &mut self,
        input: &mut Vec<T>,
        _: &mut Vec<Never>,
        failures: &mut Failures<Never>,
        _: &StageContext,
    ) {
        failures.note_passed(input.len());
        self.into.lock().append(input);
    }
}

impl<T> IsSink for Collect<T> {}

impl<T> fmt::Debug for Collect<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Collect")
    }
}

crate::sync_stage!(impl[T] Collect<T>: T where);

// Cloned for each worker of a `parallel` sink: all share one collection.
impl<T> Clone for Collect<T> {
    fn clone(&self) -> Self {
        Collect {
            into: self.into.clone(),
        }
    }
}
