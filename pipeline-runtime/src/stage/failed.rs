//! What a stage's `errors` port carries.

use std::fmt;

/// An item a stage failed, with the error it failed with.
///
/// A stage's `errors` port (`name[errors]` in `pipeline!`) emits one
/// `Failed` per failed item, so the item can be logged, repaired or stored
/// instead of being lost:
///
/// ```
/// use pipeline_runtime::stage::Failed;
///
/// let failed = Failed { stage: "parse", input: "x".to_string(), error: "not a number" };
/// assert_eq!(failed.to_string(), "stage `parse` failed on an item: not a number");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed<In, E> {
    /// The name of the stage that failed.
    pub stage: &'static str,
    /// The input the stage failed on, as it was before the stage saw it.
    pub input: In,
    /// Why it failed.
    pub error: E,
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
