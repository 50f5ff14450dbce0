//! `skip(n)`: drops the first `n` items (counted as filtered) and passes the
//! rest on.

use syn::ExprCall;

use super::{Kind, Operator, Read};
use crate::diagnostics::Diagnostics;

/// `skip`.
pub(crate) static OP: Operator = Operator {
    read,
    fallible: false,
    calls_per_item: false,
    composable: super::always,
    runs_as_one: Some("keeps count of the items it has seen"),
    ..Operator::new(
        "skip",
        Kind::Transform,
        (1, 1),
        "skip(10)",
        super::emit_stage,
    )
};

fn read(op: &'static Operator, call: &ExprCall, diagnostics: &mut Diagnostics) -> Read {
    super::args::item_count(
        op,
        call,
        "`skip(0)` skips nothing; remove it, or skip 1 or more",
        diagnostics,
    )
}
