//! `take(n)`: passes the first `n` items on; every later one is counted as
//! filtered. It does not stop the source: the items after the `n`-th are
//! still read (to end an endless source, bound it, as `interval(.., take = n)`
//! does).

use syn::ExprCall;

use super::{Kind, Operator, Read};
use crate::diagnostics::Diagnostics;

/// `take`.
pub(crate) static OP: Operator = Operator {
    read,
    fallible: false,
    calls_per_item: false,
    composable: super::always,
    runs_as_one: Some("keeps count of the items it has seen"),
    ..Operator::new(
        "take",
        Kind::Transform,
        (1, 1),
        "take(10)",
        super::emit_stage,
    )
};

fn read(op: &'static Operator, call: &ExprCall, diagnostics: &mut Diagnostics) -> Read {
    super::args::item_count(
        op,
        call,
        "`take(0)` would pass no item; take 1 or more",
        diagnostics,
    )
}
