//! `flat_map(|item| items)`: any number of outputs per item.

use super::{Kind, Operator};

/// `flat_map`.
pub(crate) static OP: Operator = Operator {
    fallible: false,
    ..Operator::new(
        "flat_map",
        Kind::Transform,
        (1, 1),
        "flat_map(|item| items)",
        super::emit_stage,
    )
};
