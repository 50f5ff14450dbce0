//! `filter(|item: &T| keep)`: keeps the items the predicate accepts.

use super::{Kind, Operator};

/// `filter`.
pub(crate) static OP: Operator = Operator {
    fallible: false,
    composable: super::always,
    ..Operator::new(
        "filter",
        Kind::Transform,
        (1, 1),
        "filter(|item: &T| keep)",
        super::emit_stage,
    )
};
