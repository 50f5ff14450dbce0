//! What a stage's `errors` port carries.

use std::fmt;

/// Why a stage failed an item: its own error, a panic in its call, or its
/// circuit breaker refusing the call.
///
/// `Display` shows the stage's own error as it is, so code that prints a
/// [`Failed`]'s error reads the same as before panics were routed:
///
/// ```
/// use pipeline_runtime::stage::StageError;
///
/// let own: StageError<&str> = StageError::Failed("not a number");
/// assert_eq!(own.to_string(), "not a number");
/// assert_eq!(own.error(), Some(&"not a number"));
/// let panic: StageError<&str> = StageError::Panicked("index out of bounds".into());
/// assert_eq!(panic.to_string(), "panicked: index out of bounds");
/// assert_eq!(StageError::<&str>::BreakerOpen.to_string(), "circuit breaker open");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageError<E> {
    /// The stage returned this error.
    Failed(E),
    /// The stage's call panicked with this message (`"a panic"` when the
    /// payload was not a string).
    Panicked(String),
    /// The stage's circuit breaker was open, so the stage was not called.
    BreakerOpen,
}

impl<E> StageError<E> {
    /// The stage's own error, unless the call panicked or was refused.
    pub fn error(&self) -> Option<&E> {
        match self {
            StageError::Failed(error) => Some(error),
            _ => None,
        }
    }

    /// The stage's own error, unless the call panicked or was refused.
    pub fn into_error(self) -> Option<E> {
        match self {
            StageError::Failed(error) => Some(error),
            _ => None,
        }
    }

    /// The panic's message, if the call panicked.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            StageError::Panicked(message) => Some(message),
            _ => None,
        }
    }

    /// Whether the call panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, StageError::Panicked(_))
    }

    /// Whether the circuit breaker refused the call.
    pub fn is_breaker_open(&self) -> bool {
        matches!(self, StageError::BreakerOpen)
    }
}

impl<E> From<E> for StageError<E> {
    fn from(error: E) -> Self {
        StageError::Failed(error)
    }
}

impl<E: fmt::Display> fmt::Display for StageError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StageError::Failed(error) => error.fmt(f),
            StageError::Panicked(message) => write!(f, "panicked: {message}"),
            StageError::BreakerOpen => f.write_str("circuit breaker open"),
        }
    }
}

impl<E: std::error::Error> std::error::Error for StageError<E> {
    /// Transparent for the stage's own error: its source, not the error
    /// itself (which `Display` already shows).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StageError::Failed(error) => error.source(),
            _ => None,
        }
    }
}

/// An item a stage failed, with why.
///
/// A stage's `errors` port (`name[errors]` in `pipeline!`) emits one
/// `Failed` per failed item, so the item can be logged, repaired or stored
/// instead of being lost. `error` is the stage's own error, or the panic of
/// its call, or its open circuit breaker (see [`StageError`]):
///
/// ```
/// use pipeline_runtime::stage::{Failed, StageError};
///
/// let failed = Failed::new("parse", "x".to_string(), "not a number");
/// assert_eq!(failed.to_string(), "stage `parse` failed on an item: not a number");
/// assert_eq!(failed.error.error(), Some(&"not a number"));
///
/// let panicked: Failed<String, &str> = Failed {
///     stage: "parse",
///     input: "y".to_string(),
///     error: StageError::Panicked("boom".into()),
/// };
/// assert_eq!(panicked.to_string(), "stage `parse` failed on an item: panicked: boom");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed<In, E> {
    /// The name of the stage that failed.
    pub stage: &'static str,
    /// The input the stage failed on, as it was before the stage saw it.
    pub input: In,
    /// Why it failed.
    pub error: StageError<E>,
}

impl<In, E> Failed<In, E> {
    /// The item `input` that `stage` failed with its own `error`.
    pub fn new(stage: &'static str, input: In, error: E) -> Self {
        Failed {
            stage,
            input,
            error: StageError::Failed(error),
        }
    }
}

impl<In, E: fmt::Display> fmt::Display for Failed<In, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stage `{}` failed on an item: {}",
            self.stage, self.error
        )
    }
}
