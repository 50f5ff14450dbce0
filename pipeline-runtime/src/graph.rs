//! The shape of a pipeline as the macro saw it, available at run time.

use std::fmt;

/// What role a node plays in the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NodeKind {
    /// Produces items; has no input.
    Source,
    /// Takes items and emits items.
    Transform,
    /// Groups items into batches by key.
    Accumulator,
    /// Routes each item to one of several ports.
    Branch,
    /// Joins several inputs into one.
    Merge,
    /// Consumes items; has no output.
    Sink,
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeKind::Source => "source",
            NodeKind::Transform => "transform",
            NodeKind::Accumulator => "accumulator",
            NodeKind::Branch => "branch",
            NodeKind::Merge => "merge",
            NodeKind::Sink => "sink",
        })
    }
}
