//! `collect(&collected)`: pushes every item into a shared collection.

use super::{Kind, Operator};

/// `collect`.
pub(crate) static OP: Operator = Operator {
    fallible: false,
    ..Operator::new(
        "collect",
        Kind::Sink,
        (1, 1),
        "collect(&collected)",
        super::emit_stage,
    )
};
