//! `map(|item| new_item)`: one output per item.

use super::{Kind, Operator};

/// `map`.
pub(crate) static OP: Operator = Operator {
    fallible: false,
    composable: super::always,
    ..Operator::new(
        "map",
        Kind::Transform,
        (1, 1),
        "map(|item| new_item)",
        super::emit_stage,
    )
};
