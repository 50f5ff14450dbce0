//! `sink(s)`: a sink feeding a `futures` `Sink`.

use super::{Kind, Operator};

/// `sink`.
pub(crate) static OP: Operator = Operator {
    read: super::args::plain_io,
    ..Operator::new(
        "sink",
        Kind::Sink,
        (1, 1),
        "sink(a_futures_sink)",
        super::emit_io_one,
    )
};
