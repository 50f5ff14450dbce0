//! `filter_map(|item| Some(new_item))`: `None` drops the item.

use super::{Kind, Operator};

/// `filter_map`.
pub(crate) static OP: Operator = Operator {
    fallible: false,
    composable: super::always,
    ..Operator::new(
        "filter_map",
        Kind::Transform,
        (1, 1),
        "filter_map(|item| Some(new_item))",
        super::emit_stage,
    )
};
