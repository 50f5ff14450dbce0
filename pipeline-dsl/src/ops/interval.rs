//! `interval(period, take = n)`: a source of ticks.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ExprCall;

use super::args::{Value, io_arity, named};
use super::{Args, Call, Emit, Kind, Named, Operator, Read, ops_at};
use crate::diagnostics::Diagnostics;
use crate::values::{Unit, is_literal, is_zero_number, quantity};

const NAMED: &[Named] = &[named("take", Value::Count)];

/// `interval`.
pub(crate) static OP: Operator = Operator {
    named: NAMED,
    read,
    fallible: false,
    ..Operator::new(
        "interval",
        Kind::Source,
        io_arity(1, NAMED),
        "interval(1s, take = 10)",
        emit,
    )
};

/// A literal period is converted (and zero refused); any other expression
/// is a `Duration` rustc checks.
fn read(op: &'static Operator, call: &ExprCall, diagnostics: &mut Diagnostics) -> Read {
    let mut io = super::args::io(op, call, diagnostics);
    if let Some(period) = io.positional.first()
        && is_literal(period)
    {
        if is_zero_number(period) {
            diagnostics.error_spanned(
                period,
                "an `interval` of zero would tick without pause; \
                 give a positive period, as in `interval(100ms)`",
            );
        } else {
            io.period = quantity(period, "period", Unit::Time, diagnostics);
        }
    }
    Read::Args(Args::Io(io))
}

fn emit(call: &Call, _: &Emit) -> TokenStream {
    let Some(io) = call.io() else {
        return TokenStream::new();
    };
    let span = call.func_span();
    let ops = ops_at(span);
    let number = proc_macro2::Literal::u64_unsuffixed;
    let period = match io.period {
        Some(nanos) => {
            let nanos = number(nanos);
            quote_spanned!(span=> ::core::time::Duration::from_nanos(#nanos))
        }
        None => {
            let first = io.positional.first();
            quote!(#first)
        }
    };
    let interval = quote_spanned!(span=> #ops::interval(#period));
    match io.get("take") {
        Some(ticks) => {
            let ticks = number(ticks);
            quote_spanned!(span=> ::pipeline::io::Interval::take(#interval, #ticks))
        }
        None => interval,
    }
}
