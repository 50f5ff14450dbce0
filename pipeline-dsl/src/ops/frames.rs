//! `frames(reader, delimiter, max_frame = 64KiB)`: a source of the frames
//! of an async reader, split at a delimiter.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::{Expr, ExprCall, Lit};

use super::args::{Value, io_arity, named};
use super::{Args, Call, Emit, Kind, Named, Operator, Read, ops_at};
use crate::diagnostics::Diagnostics;

const NAMED: &[Named] = &[named("max_frame", Value::Size)];

/// `frames`.
pub(crate) static OP: Operator = Operator {
    named: NAMED,
    read,
    fallible: false,
    ..Operator::new(
        "frames",
        Kind::Source,
        io_arity(2, NAMED),
        "frames(reader, b\"\\r\\n\", max_frame = 64KiB)",
        emit,
    )
};

/// An empty delimiter is refused; a byte literal (`b'\n'`) is noted, to be
/// passed as a one-byte array.
fn read(op: &'static Operator, call: &ExprCall, diagnostics: &mut Diagnostics) -> Read {
    let mut io = super::args::io(op, call, diagnostics);
    if let Some(Expr::Lit(syn::ExprLit { lit, .. })) = io.positional.get(1) {
        let empty = match lit {
            Lit::ByteStr(s) => s.value().is_empty(),
            Lit::Str(s) => s.value().is_empty(),
            Lit::Byte(_) => {
                io.byte_delimiter = true;
                false
            }
            _ => false,
        };
        if empty {
            diagnostics.error_spanned(
                lit,
                "a frame delimiter cannot be empty; frames end at a delimiter \
                 such as `b\"\\n\"` or `b\"\\r\\n\"`",
            );
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
    let reader = io.positional.first();
    let delimiter = io.positional.get(1);
    let delimiter = if io.byte_delimiter {
        quote!([#delimiter])
    } else {
        quote!(#delimiter)
    };
    let max = match io.get("max_frame") {
        Some(max) => proc_macro2::Literal::u64_unsuffixed(max).into_token_stream(),
        None => quote_spanned!(span=> ::pipeline::io::DEFAULT_MAX_LINE),
    };
    quote_spanned!(span=> #ops::frames(#reader, #delimiter, #max))
}
