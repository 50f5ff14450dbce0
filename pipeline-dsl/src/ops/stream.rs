//! `stream(s)`: a source reading a `futures` stream.

use super::{Kind, Operator};

/// `stream`.
pub(crate) static OP: Operator = Operator {
    fallible: false,
    ..Operator::new(
        "stream",
        Kind::Source,
        (1, 1),
        "stream(a_futures_stream)",
        super::emit_source,
    )
};
