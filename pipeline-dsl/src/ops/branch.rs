//! `branch(|item, [a, b]| if .. { a } else { b })`: routes each item to
//! one of the ports its closure declares. Wired by `crate::emit`, which
//! knows where each port leads.

use syn::{Expr, ExprCall, Ident, Pat};

use super::{Args, Kind, Operator, Read};
use crate::diagnostics::Diagnostics;

/// `branch`.
pub(crate) static OP: Operator = Operator {
    read,
    fallible: false,
    calls_per_item: false,
    ..Operator::new(
        "branch",
        Kind::Branch,
        (1, 1),
        "branch(|item, [a, b]| if .. { a } else { b })",
        super::emit_by_wiring,
    )
};

const SHAPE: &str = "as in `branch(|item, [big, small]| if .. { big } else { small })`";

/// Checks the closure's shape and reads the ports it declares: every
/// plain name, even from a list with mistakes, so each is checked for a
/// connection.
fn read(op: &'static Operator, call: &ExprCall, diagnostics: &mut Diagnostics) -> Read {
    let ports = declared_ports(call);
    if let Read::Malformed(_) = super::args::counted(op, call, diagnostics) {
        return Read::Malformed(Args::Branch(ports));
    }
    check_shape(call, diagnostics);
    Read::Args(Args::Branch(ports))
}

fn declared_ports(call: &ExprCall) -> Vec<Ident> {
    let Some(Expr::Closure(closure)) = call.args.first() else {
        return Vec::new();
    };
    let Some(Pat::Slice(slice)) = closure.inputs.iter().nth(1) else {
        return Vec::new();
    };
    slice
        .elems
        .iter()
        .filter_map(|pat| match pat {
            Pat::Ident(ident) if ident.subpat.is_none() => Some(ident.ident.clone()),
            _ => None,
        })
        .collect()
}

fn check_shape(call: &ExprCall, diagnostics: &mut Diagnostics) {
    let closure = match call.args.first() {
        Some(Expr::Closure(closure)) => closure,
        Some(other) => {
            diagnostics.error_spanned(
                other,
                format!("`branch` takes a closure of the item and its ports, {SHAPE}"),
            );
            return;
        }
        None => return,
    };
    if closure.inputs.len() != 2 {
        diagnostics.error_spanned(
            &closure.inputs,
            format!(
                "a `branch` closure takes two parameters, the item and a list of ports, {SHAPE}"
            ),
        );
        return;
    }
    let Some(Pat::Slice(slice)) = closure.inputs.iter().nth(1) else {
        let second = closure.inputs.iter().nth(1);
        diagnostics.error_spanned(
            second,
            format!("the second parameter of a `branch` closure lists its ports, {SHAPE}"),
        );
        return;
    };
    if slice.elems.is_empty() {
        diagnostics.error_spanned(
            slice,
            format!("a `branch` needs at least one port, {SHAPE}"),
        );
        return;
    }
    let mut seen: Vec<String> = Vec::new();
    for pat in &slice.elems {
        match pat {
            Pat::Ident(ident) if ident.subpat.is_none() && ident.by_ref.is_none() => {
                let port = ident.ident.to_string();
                if port == "errors" {
                    diagnostics.error_spanned(
                        &ident.ident,
                        "`errors` is the port of failed items; give this branch port another name",
                    );
                } else if seen.contains(&port) {
                    diagnostics.error_spanned(
                        &ident.ident,
                        format!("the port `{port}` is declared twice in this branch"),
                    );
                }
                seen.push(port);
            }
            other => {
                diagnostics.error_spanned(other, format!("a branch port is a plain name, {SHAPE}"))
            }
        }
    }
}
