//! `inspect(|item: &T| ..)`: looks at each item and passes it on.

use super::{Kind, Operator};

/// `inspect`.
pub(crate) static OP: Operator = Operator {
    fallible: false,
    composable: super::always,
    ..Operator::new(
        "inspect",
        Kind::Transform,
        (1, 1),
        "inspect(|item: &T| ..)",
        super::emit_stage,
    )
};
