//! `take(n)`: passes the first `n` items on; every later one is counted as
//! filtered. It does not stop the source: the items after the `n`-th are
//! still read (to end an endless source, bound it, as `interval(.., take = n)`
//! does).

use syn::{Expr, ExprCall, Lit};

use super::{Args, Kind, Operator, Read};
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

/// A literal count is checked here; any other expression is a `usize`
/// rustc checks.
fn read(op: &'static Operator, call: &ExprCall, diagnostics: &mut Diagnostics) -> Read {
    if let malformed @ Read::Malformed(_) = super::args::counted(op, call, diagnostics) {
        return malformed;
    }
    if let Some(Expr::Lit(syn::ExprLit { lit, .. })) = call.args.first() {
        match lit {
            Lit::Int(int) if !int.suffix().is_empty() && int.suffix() != "usize" => {
                diagnostics.error_spanned(
                    int,
                    format!(
                        "`take` takes a `usize` count of items; write `take({})` without the suffix",
                        int.base10_digits()
                    ),
                );
            }
            Lit::Int(int) if int.base10_parse::<u64>().is_ok_and(|n| n == 0) => {
                diagnostics.error_spanned(int, "`take(0)` would pass no item; take 1 or more");
            }
            Lit::Int(_) => {}
            other => {
                diagnostics.error_spanned(other, "`take` takes a count of items, as in `take(10)`")
            }
        }
    }
    Read::Args(Args::Plain)
}
