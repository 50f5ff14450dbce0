//! `for_each(|item| ..)`: a sink calling a closure per item; an async
//! closure is awaited per item.

use proc_macro2::TokenStream;
use syn::Expr;

use super::{Call, Emit, Kind, Operator};

/// `for_each`.
pub(crate) static OP: Operator = Operator {
    composable,
    ..Operator::new("for_each", Kind::Sink, (1, 1), "for_each(|item| ..)", emit)
};

/// A synchronous `for_each` ends a composed run.
fn composable(call: &Call) -> bool {
    !call.call.args.first().is_some_and(is_async_closure)
}

fn emit(call: &Call, emit: &Emit) -> TokenStream {
    let name = if composable(call) {
        "for_each"
    } else {
        "for_each_async"
    };
    super::emit_stage_named(call, emit, name)
}

/// `|x| async { .. }`, `|x| async move { .. }` or `async |x| ..`.
fn is_async_closure(expr: &Expr) -> bool {
    match expr {
        Expr::Closure(closure) => closure.asyncness.is_some() || ends_in_async_block(&closure.body),
        _ => false,
    }
}

/// `async { .. }`, or a block whose value is one.
fn ends_in_async_block(expr: &Expr) -> bool {
    match expr {
        Expr::Async(_) => true,
        Expr::Block(block) => match block.block.stmts.last() {
            Some(syn::Stmt::Expr(tail, None)) => ends_in_async_block(tail),
            _ => false,
        },
        Expr::Paren(paren) => ends_in_async_block(&paren.expr),
        _ => false,
    }
}
