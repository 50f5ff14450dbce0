//! `through(sink, stream)`: hands items to a `futures` sink and reads a
//! stream on, such as a codec's two halves. Not a stage: it keeps
//! emitting after its input ends, so it wraps the chain before it.

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;

use super::{Call, Emit, Kind, Operator, ops_at};

/// `through`.
pub(crate) static OP: Operator = Operator {
    read: super::args::plain_io,
    fallible: false,
    wraps_chain: true,
    ..Operator::new(
        "through",
        Kind::Transform,
        (2, 2),
        "through(a_futures_sink, a_futures_stream)",
        emit,
    )
};

fn emit(call: &Call, emit: &Emit) -> TokenStream {
    let here = Span::mixed_site().located_at(call.func_span());
    let ops = ops_at(here);
    let (chain, stats) = (&emit.chain, &emit.stats);
    let args = call.call.args.iter();
    quote_spanned! {here=>
        #ops::through_chain(#chain, #(#args),*, ::std::sync::Arc::clone(&#stats))
    }
}
