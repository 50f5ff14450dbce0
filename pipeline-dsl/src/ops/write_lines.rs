//! `write_lines(writer, flush_every = 32KiB)`: like `write`, with a
//! newline after each item.

use super::args::io_arity;
use super::{Kind, Operator};

/// `write_lines`.
pub(crate) static OP: Operator = Operator {
    named: super::write::NAMED,
    read: super::args::plain_io,
    ..Operator::new(
        "write_lines",
        Kind::Sink,
        io_arity(1, super::write::NAMED),
        "write_lines(writer, flush_every = 32KiB)",
        super::write::emit,
    )
};
