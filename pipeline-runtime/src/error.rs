//! The error a pipeline run ends with.

use std::fmt;

use crate::stage::BoxError;

/// Why a pipeline run did not complete.
///
/// A stage failing an item is *not* a run error, unless the stage's policy
/// is `on_error = fail` (see [`ItemFailed`](Error::ItemFailed)): by
/// default the item is counted as failed in the
/// [`Report`](crate::metrics::Report) and the run goes on.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A stage's `init` failed, so no item was processed.
    Init {
        /// The stage's name.
        stage: &'static str,
        /// What went wrong.
        source: BoxError,
    },
    /// A stage's `close` failed after the last item.
    Close {
        /// The stage's name.
        stage: &'static str,
        /// What went wrong.
        source: BoxError,
    },
    /// A stage failed an item under `on_error = fail` (directly, or after
    /// its retries with `then = fail`): the pipeline stopped its sources,
    /// drained what was in flight and closed its stages, then returned
    /// this. If several items failed so, this is the first one the stage
    /// saw; the others were counted and logged.
    ItemFailed {
        /// The stage's name.
        stage: &'static str,
        /// The item's position: its index, from 0, among the items the
        /// stage took in.
        position: u64,
        /// Why it failed: the stage's error, `panicked: <message>`, or
        /// `circuit breaker open`, as text.
        error: String,
    },
    /// A task of the pipeline panicked.
    Panicked {
        /// The panic message, when it was a string.
        message: String,
    },
    /// The pipeline was aborted with [`abort`](crate::lifecycle::PipelineHandle::abort).
    Aborted,
    /// The pipeline did not compile; this value only exists so the macro can
    /// expand to a well-typed stub after reporting a compile error.
    Invalid,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Init { stage, source } => write!(f, "stage `{stage}` failed to start: {source}"),
            Error::Close { stage, source } => {
                write!(f, "stage `{stage}` failed to close: {source}")
            }
            Error::ItemFailed {
                stage,
                position,
                error,
            } => write!(
                f,
                "stage `{stage}` failed on item {position} (on_error = fail): {error}"
            ),
            Error::Panicked { message } => write!(f, "a pipeline task panicked: {message}"),
            Error::Aborted => f.write_str("the pipeline was aborted"),
            Error::Invalid => f.write_str("the pipeline did not compile"),
        }
    }
}

impl Error {
    /// Whether the other parts of the pipeline drain before the run returns
    /// this error (the sources were stopped, and nothing in flight is
    /// dropped), rather than being dropped at once.
    pub(crate) fn drains(&self) -> bool {
        matches!(self, Error::ItemFailed { .. })
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Init { source, .. } | Error::Close { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}
