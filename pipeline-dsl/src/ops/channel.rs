//! `channel(sender)`: a sink sending each item into a tokio `mpsc` sender.

use super::{Kind, Operator};

/// `channel`.
pub(crate) static OP: Operator = Operator {
    read: super::args::plain_io,
    ..Operator::new(
        "channel",
        Kind::Sink,
        (1, 1),
        "channel(sender)",
        super::emit_io_one,
    )
};
