//! Readers shared by the operators: a plain count of arguments, and the
//! positional-then-named arguments of the IO operators
//! (`lines(reader, max_line = 1MiB)`).

use syn::{Expr, ExprCall};

use super::{Args, Call, Operator, Read};
use crate::diagnostics::{Diagnostics, did_you_mean};
use crate::values::{Unit, is_zero, positive_count, quantity};

/// An argument a built-in takes by name, such as `max_frame = 64KiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Named {
    /// Its name.
    pub name: &'static str,
    /// What its value is.
    pub value: Value,
}

/// The value of a named argument: a literal, checked and converted at
/// compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// A size with a unit (`64KiB`), more than zero.
    Size,
    /// A size with a unit, where zero has a meaning (`0` or `0B`).
    SizeOrZero,
    /// A count without a unit, more than zero.
    Count,
}

/// A named argument of an IO operator.
pub const fn named(name: &'static str, value: Value) -> Named {
    Named { name, value }
}

/// The arity of an IO operator: its positional arguments, then up to one
/// of each named one.
pub const fn io_arity(positional: usize, named: &[Named]) -> (usize, usize) {
    (positional, positional + named.len())
}

/// The arguments of an IO operator, read.
pub struct IoArgs {
    /// The positional arguments, as written.
    pub positional: Vec<Expr>,
    /// The named arguments given, converted: a size in bytes, or a count.
    pub named: Vec<(&'static str, u64)>,
    /// `interval`'s period, if written as a literal (`50ms`), in
    /// nanoseconds.
    pub period: Option<u64>,
    /// `frames`' delimiter, if written as a byte literal (`b'\n'`), which
    /// is not a byte string and is passed as a one-byte array.
    pub byte_delimiter: bool,
    /// The source inside `results(..)`, if it is a built-in call.
    pub inner: Option<Box<Call>>,
}

impl IoArgs {
    /// The value of the named argument `name`, if it was given.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.named.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// Reads an operator that takes its arguments as written, checking only
/// how many there are.
pub fn counted(op: &'static Operator, call: &ExprCall, diagnostics: &mut Diagnostics) -> Read {
    let args = call.args.len();
    let (min, max) = op.arity;
    if args < min || args > max {
        let expected = match (min, max) {
            (0, 0) => "no arguments".to_owned(),
            (1, 1) => "one argument".to_owned(),
            (a, b) if a == b => format!("{a} arguments"),
            (a, b) => format!("{a} to {b} arguments"),
        };
        diagnostics.error(
            call.paren_token.span.join(),
            format!("`{}` takes {expected}, as in `{}`", op.name, op.usage),
        );
        return Read::Malformed(Args::Plain);
    }
    Read::Args(Args::Plain)
}

/// Reads an operator taking one count of items (`take(n)`, `skip(n)`): a
/// literal is checked here (no suffix but `usize`, and not zero, which
/// `zero` explains); any other expression is a `usize` rustc checks.
pub fn item_count(
    op: &'static Operator,
    call: &ExprCall,
    zero: &str,
    diagnostics: &mut Diagnostics,
) -> Read {
    if let malformed @ Read::Malformed(_) = counted(op, call, diagnostics) {
        return malformed;
    }
    let name = op.name;
    if let Some(Expr::Lit(syn::ExprLit { lit, .. })) = call.args.first() {
        match lit {
            syn::Lit::Int(int) if !int.suffix().is_empty() && int.suffix() != "usize" => {
                diagnostics.error_spanned(
                    int,
                    format!(
                        "`{name}` takes a `usize` count of items; write `{name}({})` without the suffix",
                        int.base10_digits()
                    ),
                );
            }
            syn::Lit::Int(int) if int.base10_parse::<u64>().is_ok_and(|n| n == 0) => {
                diagnostics.error_spanned(int, zero);
            }
            syn::Lit::Int(_) => {}
            other => diagnostics.error_spanned(
                other,
                format!("`{name}` takes a count of items, as in `{}`", op.usage),
            ),
        }
    }
    Read::Args(Args::Plain)
}

/// Reads an IO operator's arguments, reporting every mistake: the number
/// of positional arguments, unknown or repeated named ones (with a
/// did-you-mean), and their values (units, zero).
pub fn io(op: &'static Operator, call: &ExprCall, diagnostics: &mut Diagnostics) -> IoArgs {
    let name = op.name;
    let wanted = op.arity.0;
    let mut io = IoArgs {
        positional: Vec::new(),
        named: Vec::new(),
        period: None,
        byte_delimiter: false,
        inner: None,
    };
    let mut seen: Vec<String> = Vec::new();
    let mut named_before = false;
    for arg in &call.args {
        let Expr::Assign(assign) = arg else {
            if io.positional.len() == wanted {
                let hint = match op.named {
                    [] => String::new(),
                    named => format!(
                        "; give {} by name",
                        named
                            .iter()
                            .map(|n| format!("`{} = ..`", n.name))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                };
                diagnostics.error_spanned(
                    arg,
                    format!(
                        "`{name}` takes {}{hint}, as in `{}`",
                        count_of(wanted, "positional argument"),
                        op.usage
                    ),
                );
            } else if named_before {
                diagnostics.error_spanned(
                    arg,
                    format!(
                        "positional arguments come before named ones, as in `{}`",
                        op.usage
                    ),
                );
            }
            io.positional.push(arg.clone());
            continue;
        };
        named_before = true;
        let ident = match &*assign.left {
            Expr::Path(path) => path.path.get_ident(),
            _ => None,
        };
        let Some(ident) = ident else {
            diagnostics.error_spanned(
                &assign.left,
                format!("expected an argument name, as in `{}`", op.usage),
            );
            continue;
        };
        let arg_name = ident.to_string();
        let Some(known) = op.named.iter().find(|n| n.name == arg_name) else {
            let message = match op.named {
                [] => format!("`{name}` takes no named arguments, as in `{}`", op.usage),
                named => {
                    let names: Vec<&str> = named.iter().map(|n| n.name).collect();
                    let listed = names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let hint = did_you_mean(&arg_name, names.iter().copied())
                        .map(|best| format!("did you mean `{best}`? "))
                        .unwrap_or_default();
                    let its = if names.len() == 1 {
                        format!("Its named argument is {listed}")
                    } else {
                        format!("Its named arguments are {listed}")
                    };
                    format!("`{name}` has no argument `{arg_name}`; {hint}{its}")
                }
            };
            diagnostics.error_spanned(ident, message);
            continue;
        };
        if seen.contains(&arg_name) {
            diagnostics.error_spanned(ident, format!("`{arg_name}` is given twice"));
            continue;
        }
        seen.push(arg_name);
        let value = match known.value {
            Value::Size => quantity(&assign.right, known.name, Unit::Size, diagnostics),
            Value::SizeOrZero if is_zero(&assign.right) => Some(0),
            Value::SizeOrZero => quantity(&assign.right, known.name, Unit::Size, diagnostics),
            Value::Count => positive_count(&assign.right, name, known.name, diagnostics),
        };
        if let Some(value) = value {
            io.named.push((known.name, value));
        }
    }
    if io.positional.len() < wanted {
        diagnostics.error(
            call.paren_token.span.join(),
            format!(
                "`{name}` takes {} before any named ones, as in `{}`",
                count_of(wanted, "positional argument"),
                op.usage
            ),
        );
    }
    io
}

/// Reads an IO operator with nothing more to check.
pub fn plain_io(op: &'static Operator, call: &ExprCall, diagnostics: &mut Diagnostics) -> Read {
    Read::Args(Args::Io(io(op, call, diagnostics)))
}

/// `one positional argument`, `2 positional arguments`, `no ..`.
fn count_of(n: usize, what: &str) -> String {
    match n {
        0 => format!("no {what}s"),
        1 => format!("one {what}"),
        n => format!("{n} {what}s"),
    }
}
