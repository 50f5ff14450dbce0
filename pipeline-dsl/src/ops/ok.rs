//! `ok()`: passes the `Ok` value of each `Result` item on and fails the
//! item on `Err`, to its `errors` port.

use proc_macro2::TokenStream;
use quote::quote_spanned;

use super::{Call, Emit, Kind, Operator, ops_at, private_at};

/// `ok`.
pub(crate) static OP: Operator = Operator {
    read: super::args::plain_io,
    ..Operator::new("ok", Kind::Transform, (0, 0), "ok()", emit)
};

fn emit(call: &Call, emit: &Emit) -> TokenStream {
    let span = call.func_span();
    let private = private_at(span);
    let ops = ops_at(span);
    let chain = &emit.chain;
    quote_spanned!(span=> #ops::ok(#private::marker(&#chain)))
}
