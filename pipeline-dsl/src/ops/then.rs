//! `then(|item| async move { new_item })`: an async map.

use super::{Kind, Operator};

/// `then`.
pub(crate) static OP: Operator = Operator {
    fallible: false,
    ..Operator::new(
        "then",
        Kind::Transform,
        (1, 1),
        "then(|item| async move { new_item })",
        super::emit_stage,
    )
};
