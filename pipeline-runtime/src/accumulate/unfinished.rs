//! What an accumulation's `errors` port carries: [`Unfinished`].

use std::fmt;
use std::sync::Arc;

use super::codec::SpillError;

/// A key's state that an accumulation let go of without completing it, sent
/// to its `errors` port (`name[errors]` in `pipeline!`).
///
/// It carries the state's items inside `partial` (what the accumulator's
/// [`flush`](super::Accumulator::flush) made of them), so nothing is lost
/// silently:
///
/// ```
/// use pipeline_runtime::accumulate::{Unfinished, UnfinishedReason};
///
/// let expired = Unfinished { key: "user-7", partial: Some(vec![1, 2]), reason: UnfinishedReason::Expired };
/// assert_eq!(
///     expired.to_string(),
///     "the state of key \"user-7\" expired: it was not complete within its ttl (partial output kept)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Unfinished<K, O> {
    /// The key whose state it was.
    pub key: K,
    /// The state's partial output, from the accumulator's `flush`; `None` if
    /// it made none, or if the state could not be read back from disk.
    pub partial: Option<O>,
    /// Why the state was not completed.
    pub reason: UnfinishedReason,
}

/// Why a state went to the `errors` port.
#[derive(Debug, Clone)]
pub enum UnfinishedReason {
    /// It was not complete within its `ttl` (or the accumulator said it had
    /// expired), and `partial_flush` is `false`.
    Expired,
    /// The input ended (the pipeline completed or was stopped) while it was
    /// open, and `partial_flush` is `false`.
    Stopped,
    /// It had been spilled to disk and could not be read back: its items are
    /// lost (and counted as failed). Shared, so the item can be cloned for
    /// several branches.
    Spill(Arc<SpillError>),
}

impl PartialEq for UnfinishedReason {
    /// Reasons are equal if they are the same variant; two spill errors are
    /// equal if they are the same error or display the same.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (UnfinishedReason::Expired, UnfinishedReason::Expired)
            | (UnfinishedReason::Stopped, UnfinishedReason::Stopped) => true,
            (UnfinishedReason::Spill(a), UnfinishedReason::Spill(b)) => {
                Arc::ptr_eq(a, b) || a.to_string() == b.to_string()
            }
            _ => false,
        }
    }
}

impl fmt::Display for UnfinishedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnfinishedReason::Expired => f.write_str("expired: it was not complete within its ttl"),
            UnfinishedReason::Stopped => f.write_str(
                "was still open when the input ended (the pipeline finished or was stopped)",
            ),
            UnfinishedReason::Spill(error) => {
                write!(
                    f,
                    "was lost: its spilled state could not be read back: {error}"
                )
            }
        }
    }
}

impl<K: fmt::Debug, O> fmt::Display for Unfinished<K, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the state of key {:?} {}", self.key, self.reason)?;
        if !matches!(self.reason, UnfinishedReason::Spill(_)) {
            f.write_str(if self.partial.is_some() {
                " (partial output kept)"
            } else {
                " (no partial output)"
            })?;
        }
        Ok(())
    }
}
