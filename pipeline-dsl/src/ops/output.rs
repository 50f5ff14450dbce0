//! `output()`: the pipeline's stream output, read with `into_stream()`.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Ident;

use super::{Call, Emit, Kind, Operator};

/// `output`.
pub(crate) static OP: Operator = Operator {
    fallible: false,
    stream_output: true,
    ..Operator::new("output", Kind::Sink, (0, 0), "output()", emit)
};

/// The sink half of the stream `into_stream` reads, made in the setup
/// code.
fn emit(call: &Call, _: &Emit) -> TokenStream {
    let sink = Ident::new(
        "__pipeline_output",
        Span::mixed_site().located_at(call.func_span()),
    );
    quote!(#sink)
}
