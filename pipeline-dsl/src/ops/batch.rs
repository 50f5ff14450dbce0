//! `batch(max_items = N, max_latency = 50ms)`: one batch at a time, no
//! key; `accumulate`'s fields without `key`.

use syn::ExprCall;

use super::{Args, Kind, Operator, Read};
use crate::diagnostics::Diagnostics;

/// `batch`.
pub(crate) static OP: Operator = Operator {
    read,
    calls_per_item: false,
    ..Operator::new(
        "batch",
        Kind::Accumulator,
        (1, 8),
        "batch(max_items = N, max_latency = 50ms)",
        super::emit_by_wiring,
    )
};

fn read(op: &'static Operator, call: &ExprCall, diagnostics: &mut Diagnostics) -> Read {
    if let malformed @ Read::Malformed(_) = super::args::counted(op, call, diagnostics) {
        return malformed;
    }
    let spec = super::fields::parse(call, true, diagnostics);
    Read::Args(Args::Accumulate(spec.map(Box::new)))
}
