//! `accumulate(key = |item| key, max_items = N, ..)`: batches per key,
//! flushed by count, size, age or idleness (see [`super::fields`]).
//! Wired by `crate::emit::accumulate`, which knows whether it reads an
//! edge or the chain before it.

use syn::ExprCall;

use super::{Args, Kind, Operator, Read};
use crate::diagnostics::Diagnostics;

/// `accumulate`.
pub(crate) static OP: Operator = Operator {
    read,
    calls_per_item: false,
    ..Operator::new(
        "accumulate",
        Kind::Accumulator,
        (1, 10),
        "accumulate(key = |item| key, max_items = N)",
        super::emit_by_wiring,
    )
};

fn read(op: &'static Operator, call: &ExprCall, diagnostics: &mut Diagnostics) -> Read {
    if let malformed @ Read::Malformed(_) = super::args::counted(op, call, diagnostics) {
        return malformed;
    }
    let spec = super::fields::parse(call, false, diagnostics);
    Read::Args(Args::Accumulate(spec.map(Box::new)))
}
