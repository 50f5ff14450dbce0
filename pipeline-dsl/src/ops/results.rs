//! `results(source)`: reads a fallible source (`lines`, `frames`, a
//! stream of `Result`s) as `Result` items instead of failing the run on
//! its first error.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{Expr, ExprCall};

use super::{Args, Call, Emit, Kind, Operator, Read, Status, ops_at, read_call};
use crate::diagnostics::Diagnostics;

/// `results`.
pub(crate) static OP: Operator = Operator {
    read,
    fallible: false,
    ..Operator::new(
        "results",
        Kind::Source,
        (1, 1),
        "results(lines(reader))",
        emit,
    )
};

/// The source inside is read too, when it is a built-in.
fn read(op: &'static Operator, call: &ExprCall, diagnostics: &mut Diagnostics) -> Read {
    let mut io = super::args::io(op, call, diagnostics);
    let Some(Expr::Call(inner_call)) = io.positional.first() else {
        return Read::Args(Args::Io(io));
    };
    let Some(inner) = super::operator_of(inner_call) else {
        return Read::Args(Args::Io(io));
    };
    // `push` is a source its own reader refuses, with its message.
    if inner.kind != Kind::Source {
        diagnostics.error_spanned(
            &inner_call.func,
            format!(
                "`results` reads a source, as in `results(lines(reader))`; `{}` is {}",
                inner.name,
                inner.kind.described()
            ),
        );
    } else if let Some((inner, Status::Read)) = read_call(inner_call, diagnostics) {
        io.inner = Some(Box::new(inner));
    }
    Read::Args(Args::Io(io))
}

fn emit(call: &Call, emit: &Emit) -> TokenStream {
    let Some(io) = call.io() else {
        return TokenStream::new();
    };
    let span = call.func_span();
    let ops = ops_at(span);
    let inner = match &io.inner {
        Some(inner) => (inner.op.emit)(inner, emit),
        None => {
            let first = io.positional.first();
            quote!(#first)
        }
    };
    quote_spanned!(span=> #ops::results(#inner))
}
