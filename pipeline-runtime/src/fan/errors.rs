use std::fmt;
use std::future::Future;

use super::outlet::{Broadcast, Outlet};
use crate::stage::Failed;

/// Appends clones of a chunk's items to a buffer: how a fused stage keeps
/// its inputs, captured as a function where the input type is known to be
/// `Clone` so that the stage itself needs no `Clone` bound.
pub type CloneInto<T> = fn(&[T], &mut Vec<T>);

/// The [`CloneInto`] of a `Clone` type.
pub fn clone_into<T: Clone>(items: &[T], into: &mut Vec<T>) {
    into.extend_from_slice(items);
}

/// Where a fused stage can send the items it fails: nowhere
/// ([`LogFailures`]) or its connected `errors` port ([`ErrorsPort`]).
///
/// The stage's [error policy](crate::policy) decides whether a failed item
/// is sent on (`dead_letter`, or a retry's `then = dead_letter`); the route
/// only says whether it can be, and how.
pub trait FailureRoute<In, E> {
    /// Whether failed items can be handed on (dead-lettered) rather than
    /// dropped.
    const HANDS_ON: bool;

    /// How to clone a chunk of inputs, if the route's input type is known
    /// to be `Clone`: the fused stage keeps the inputs of a chunk with it
    /// when it will need them again (to hand failed items on with their
    /// input, or to retry them).
    fn cloner(&self) -> Option<CloneInto<In>>;

    /// Hands on failed items, each with its input and why it failed, in
    /// input order.
    fn hand_on(&mut self, failed: Vec<Failed<In, E>>) -> impl Future<Output = ()>;
}

/// The route of a stage whose `errors` port is not connected: failed items
/// cannot be handed on, so the stage's policy logs them at `warn` with the
/// stage and the item's position, and drops them (they are counted as
/// failed in the report).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogFailures;

impl<In, E> FailureRoute<In, E> for LogFailures {
    const HANDS_ON: bool = false;

    #[inline]
    fn cloner(&self) -> Option<CloneInto<In>> {
        None
    }

    async fn hand_on(&mut self, failed: Vec<Failed<In, E>>) {
        // Never called: nothing is handed on to a route that does not hand
        // on. Dropping is what ignoring means.
        drop(failed);
    }
}

/// A connected `errors` port: each failed item is sent on, with its input
/// and why it failed (its error, its panic or an open breaker, see
/// [`StageError`](crate::stage::StageError)), as a [`Failed`], and counted
/// as dead-lettered rather than failed.
///
/// Keeping the inputs costs one clone per item of the stage's input, and
/// only for stages that dead-letter (or retry).
pub struct ErrorsPort<In, E> {
    output: Broadcast<Failed<In, E>>,
    clone: CloneInto<In>,
}

impl<In, E> ErrorsPort<In, E> {
    /// An `errors` port sending into `output`.
    pub fn new(output: Broadcast<Failed<In, E>>) -> Self
    where
        In: Clone,
    {
        ErrorsPort {
            output,
            clone: clone_into::<In>,
        }
    }
}

impl<In, E> FailureRoute<In, E> for ErrorsPort<In, E> {
    const HANDS_ON: bool = true;

    #[inline]
    fn cloner(&self) -> Option<CloneInto<In>> {
        Some(self.clone)
    }

    async fn hand_on(&mut self, mut failed: Vec<Failed<In, E>>) {
        if !failed.is_empty() {
            self.output.send(&mut failed).await;
        }
    }
}

impl<In, E> fmt::Debug for ErrorsPort<In, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorsPort")
            .field("output", &self.output)
            .finish()
    }
}
