//! `push::<T>(capacity)`: never a node. Its handle would be lost inside the
//! pipeline, so it is made before the macro and its items start a chain
//! by name.

use syn::ExprCall;

use super::{Kind, Operator, Read};
use crate::diagnostics::Diagnostics;

/// `push`.
pub(crate) static OP: Operator = Operator {
    read,
    fallible: false,
    ..Operator::new(
        "push",
        Kind::Source,
        (1, 1),
        "push::<T>(capacity)",
        super::emit_by_wiring,
    )
};

fn read(_: &'static Operator, call: &ExprCall, diagnostics: &mut Diagnostics) -> Read {
    diagnostics.error_spanned(call, made_outside());
    Read::Refused
}

/// The message for `push(..)` written as a node.
pub(crate) fn made_outside() -> String {
    "`push` cannot be a node: the handle that sends into it would be lost inside the pipeline; \
     make both before the macro, as in `let (items, handle) = pipeline::io::push::<T>(capacity);`, \
     start a chain with `items >> ..`, and send with `handle.send(item).await`"
        .to_owned()
}
