//! `lines(reader, max_line = 1MiB)`: a source of the lines of an async
//! reader, each at most `max_line` long.

use proc_macro2::TokenStream;
use quote::quote_spanned;

use super::args::{Value, io_arity, named};
use super::{Call, Emit, Kind, Named, Operator, ops_at};

const NAMED: &[Named] = &[named("max_line", Value::Size)];

/// `lines`.
pub(crate) static OP: Operator = Operator {
    named: NAMED,
    read: super::args::plain_io,
    fallible: false,
    ..Operator::new(
        "lines",
        Kind::Source,
        io_arity(1, NAMED),
        "lines(reader, max_line = 1MiB)",
        emit,
    )
};

fn emit(call: &Call, _: &Emit) -> TokenStream {
    let Some(io) = call.io() else {
        return TokenStream::new();
    };
    let span = call.func_span();
    let ops = ops_at(span);
    let reader = io.positional.first();
    let lines = quote_spanned!(span=> #ops::lines(#reader));
    match io.get("max_line") {
        Some(max) => {
            let max = proc_macro2::Literal::u64_unsuffixed(max);
            quote_spanned!(span=> ::pipeline::io::Lines::max_line(#lines, #max))
        }
        None => lines,
    }
}
