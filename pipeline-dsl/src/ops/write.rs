//! `write(writer, flush_every = 32KiB)`: a sink writing each item's bytes
//! to an async writer, flushing every `flush_every` bytes (`0`: after
//! every item).

use proc_macro2::TokenStream;
use quote::quote_spanned;
use syn::Ident;

use super::args::{Value, io_arity, named};
use super::{Call, Emit, Kind, Named, Operator, ops_at};

/// `flush_every` when it is not given: 32 KiB.
pub(crate) const DEFAULT_FLUSH_EVERY: u64 = 32 * 1024;

pub(crate) const NAMED: &[Named] = &[named("flush_every", Value::SizeOrZero)];

/// `write`.
pub(crate) static OP: Operator = Operator {
    named: NAMED,
    read: super::args::plain_io,
    ..Operator::new(
        "write",
        Kind::Sink,
        io_arity(1, NAMED),
        "write(writer, flush_every = 32KiB)",
        emit,
    )
};

/// `write(writer, flush_every)` or `write_lines(..)`, as the call names it.
pub(crate) fn emit(call: &Call, _: &Emit) -> TokenStream {
    let Some(io) = call.io() else {
        return TokenStream::new();
    };
    let span = call.func_span();
    let ops = ops_at(span);
    let writer = io.positional.first();
    let flush_every =
        proc_macro2::Literal::u64_unsuffixed(io.get("flush_every").unwrap_or(DEFAULT_FLUSH_EVERY));
    let func = Ident::new(call.op.name, span);
    quote_spanned!(span=> #ops::#func(#writer, #flush_every))
}
