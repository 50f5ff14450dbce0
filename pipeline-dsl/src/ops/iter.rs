//! `iter(items)`: a source reading any `IntoIterator`.

use super::{Kind, Operator};

/// `iter`.
pub(crate) static OP: Operator = Operator {
    fallible: false,
    ..Operator::new(
        "iter",
        Kind::Source,
        (1, 1),
        "iter(items)",
        super::emit_source,
    )
};
