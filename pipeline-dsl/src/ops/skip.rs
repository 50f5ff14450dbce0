//! `skip(n)`: drops the first `n` items (counted as filtered) and passes the
//! rest on.

use syn::{Expr, ExprCall, Lit};

use super::{Args, Kind, Operator, Read};
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
                        "`skip` takes a `usize` count of items; write `skip({})` without the suffix",
                        int.base10_digits()
                    ),
                );
            }
            Lit::Int(int) if int.base10_parse::<u64>().is_ok_and(|n| n == 0) => {
                diagnostics
                    .error_spanned(int, "`skip(0)` skips nothing; remove it, or skip 1 or more");
            }
            Lit::Int(_) => {}
            other => {
                diagnostics.error_spanned(other, "`skip` takes a count of items, as in `skip(10)`")
            }
        }
    }
    Read::Args(Args::Plain)
}
