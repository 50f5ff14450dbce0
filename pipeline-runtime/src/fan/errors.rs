use std::fmt;
use std::future::Future;

use super::outlet::{Broadcast, Outlet};
use crate::stage::{Failed, StageContext};

/// What a fused stage does with the items it fails.
pub trait FailureRoute<In, E> {
    /// Whether failed items are handed on (dead-lettered) rather than
    /// dropped.
    const HANDS_ON: bool;

    /// Sees each input chunk before the stage does, so the inputs of items
    /// that fail can be handed on.
    fn keep(&mut self, input: &[In]);

    /// Handles the failures of the chunk last passed to
    /// [`keep`](Self::keep): each is the item's index in that chunk and its
    /// error.
    fn route(&mut self, failures: Vec<(usize, E)>, ctx: &StageContext) -> impl Future<Output = ()>;
}

/// The default for a stage whose `errors` port is not connected: each
/// failure is logged at `warn` with the stage and item, and dropped (it is
/// counted as failed in the report).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogFailures;

impl<In, E: fmt::Display> FailureRoute<In, E> for LogFailures {
    const HANDS_ON: bool = false;

    #[inline]
    fn keep(&mut self, _: &[In]) {}

    async fn route(&mut self, failures: Vec<(usize, E)>, ctx: &StageContext) {
        for (index, error) in failures {
            tracing::warn!(stage = ctx.name(), item = index, %error, "item failed; dropped");
        }
    }
}

/// A connected `errors` port: each failed item is sent on, with its input
/// and error, as a [`Failed`], and counted as dead-lettered rather than
/// failed.
///
/// Keeping the inputs costs one clone per item of the stage's input, and
/// only for stages whose `errors` port is connected.
pub struct ErrorsPort<In, E> {
    output: Broadcast<Failed<In, E>>,
    kept: Vec<In>,
    clone: fn(&[In]) -> Vec<In>,
}

impl<In, E> ErrorsPort<In, E> {
    /// An `errors` port sending into `output`.
    pub fn new(output: Broadcast<Failed<In, E>>) -> Self
    where
        In: Clone,
    {
        ErrorsPort {
            output,
            kept: Vec::new(),
            clone: <[In]>::to_vec,
        }
    }
}

impl<In, E> FailureRoute<In, E> for ErrorsPort<In, E> {
    const HANDS_ON: bool = true;

    fn keep(&mut self, input: &[In]) {
        self.kept = (self.clone)(input);
    }

    async fn route(&mut self, failures: Vec<(usize, E)>, ctx: &StageContext) {
        if failures.is_empty() {
            return;
        }
        let mut kept = std::mem::take(&mut self.kept).into_iter().enumerate();
        let mut failed = Vec::with_capacity(failures.len());
        // Failures arrive in input order, so one pass over the kept inputs
        // pairs each error with its item.
        for (index, error) in failures {
            if let Some((_, input)) = kept.find(|(i, _)| *i == index) {
                failed.push(Failed {
                    stage: ctx.name(),
                    input,
                    error,
                });
            }
        }
        self.output.send(&mut failed).await;
    }
}

impl<In, E> fmt::Debug for ErrorsPort<In, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorsPort")
            .field("output", &self.output)
            .finish()
    }
}
