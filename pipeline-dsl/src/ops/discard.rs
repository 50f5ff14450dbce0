//! `discard()`: drops every item.

use super::{Kind, Operator};

/// `discard`.
pub(crate) static OP: Operator = Operator {
    fallible: false,
    ..Operator::new(
        "discard",
        Kind::Sink,
        (0, 0),
        "discard()",
        super::emit_stage,
    )
};
