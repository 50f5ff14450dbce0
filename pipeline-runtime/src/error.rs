//! The error a pipeline run ends with.

use std::fmt;

use crate::stage::BoxError;

/// Why a pipeline run did not complete.
///
/// A stage failing an item is *not* a run error: the item is counted as
/// failed in the [`Report`](crate::metrics::Report) and the run goes on.
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
            Error::Panicked { message } => write!(f, "a pipeline task panicked: {message}"),
            Error::Aborted => f.write_str("the pipeline was aborted"),
            Error::Invalid => f.write_str("the pipeline did not compile"),
        }
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
