//! The operators `pipeline!` knows by name, and what it knows about them.

use syn::{Expr, ExprCall, Lit};

use crate::accumulate::{Unit, count, quantity};
use crate::diagnostics::{Diagnostics, did_you_mean};
use crate::graph::Kind;

/// A built-in operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// Its name as written.
    pub name: &'static str,
    /// Source, transform or sink.
    pub kind: Kind,
    /// How many arguments it takes: (min, max).
    pub arity: (usize, usize),
    /// What the arguments are, for error messages.
    pub usage: &'static str,
    /// Whether this version generates code for it.
    pub implemented: bool,
    /// The arguments it takes by name, after its positional ones (an IO
    /// built-in; see [`check_io_call`]).
    pub named: &'static [Named],
    /// Whether its arguments are read by [`check_io_call`] (positional ones,
    /// then named ones) rather than just counted.
    pub io: bool,
}

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

const fn b(
    name: &'static str,
    kind: Kind,
    arity: (usize, usize),
    usage: &'static str,
    implemented: bool,
) -> Builtin {
    Builtin {
        name,
        kind,
        arity,
        usage,
        implemented,
        named: &[],
        io: false,
    }
}

/// An IO built-in, whose optional arguments are named.
const fn io(
    name: &'static str,
    kind: Kind,
    positional: usize,
    named: &'static [Named],
    usage: &'static str,
) -> Builtin {
    Builtin {
        name,
        kind,
        arity: (positional, positional + named.len()),
        usage,
        implemented: true,
        named,
        io: true,
    }
}

const fn named(name: &'static str, value: Value) -> Named {
    Named { name, value }
}

/// `flush_every` when it is not given: 32 KiB.
pub const DEFAULT_FLUSH_EVERY: u64 = 32 * 1024;

/// Every built-in, in the order the docs list them.
pub const BUILTINS: &[Builtin] = &[
    b("iter", Kind::Source, (1, 1), "iter(items)", true),
    b(
        "stream",
        Kind::Source,
        (1, 1),
        "stream(a_futures_stream)",
        true,
    ),
    io(
        "lines",
        Kind::Source,
        1,
        &[named("max_line", Value::Size)],
        "lines(reader, max_line = 1MiB)",
    ),
    io(
        "frames",
        Kind::Source,
        2,
        &[named("max_frame", Value::Size)],
        "frames(reader, b\"\\r\\n\", max_frame = 64KiB)",
    ),
    // Never generated: its handle would be lost in the pipeline, so it is
    // made outside (`validate` says so).
    b("push", Kind::Source, (1, 1), "push::<T>(capacity)", false),
    io(
        "interval",
        Kind::Source,
        1,
        &[named("take", Value::Count)],
        "interval(1s, take = 10)",
    ),
    io("results", Kind::Source, 1, &[], "results(lines(reader))"),
    b("map", Kind::Transform, (1, 1), "map(|item| new_item)", true),
    b(
        "filter",
        Kind::Transform,
        (1, 1),
        "filter(|item: &T| keep)",
        true,
    ),
    b(
        "filter_map",
        Kind::Transform,
        (1, 1),
        "filter_map(|item| Some(new_item))",
        true,
    ),
    b(
        "flat_map",
        Kind::Transform,
        (1, 1),
        "flat_map(|item| items)",
        true,
    ),
    b(
        "inspect",
        Kind::Transform,
        (1, 1),
        "inspect(|item: &T| ..)",
        true,
    ),
    b(
        "then",
        Kind::Transform,
        (1, 1),
        "then(|item| async move { new_item })",
        true,
    ),
    io("ok", Kind::Transform, 0, &[], "ok()"),
    io(
        "through",
        Kind::Transform,
        2,
        &[],
        "through(a_futures_sink, a_futures_stream)",
    ),
    b(
        "accumulate",
        Kind::Accumulator,
        (1, 10),
        "accumulate(key = |item| key, max_items = N)",
        true,
    ),
    b(
        "batch",
        Kind::Accumulator,
        (1, 8),
        "batch(max_items = N, max_latency = 50ms)",
        true,
    ),
    b(
        "branch",
        Kind::Branch,
        (1, 1),
        "branch(|item, [a, b]| if .. { a } else { b })",
        true,
    ),
    b("for_each", Kind::Sink, (1, 1), "for_each(|item| ..)", true),
    b("collect", Kind::Sink, (1, 1), "collect(&collected)", true),
    io(
        "write",
        Kind::Sink,
        1,
        &[named("flush_every", Value::SizeOrZero)],
        "write(writer, flush_every = 32KiB)",
    ),
    io(
        "write_lines",
        Kind::Sink,
        1,
        &[named("flush_every", Value::SizeOrZero)],
        "write_lines(writer, flush_every = 32KiB)",
    ),
    b("discard", Kind::Sink, (0, 0), "discard()", true),
    b("output", Kind::Sink, (0, 0), "output()", true),
    io("channel", Kind::Sink, 1, &[], "channel(sender)"),
    io("sink", Kind::Sink, 1, &[], "sink(a_futures_sink)"),
];

/// The built-in called `name`, if there is one.
pub fn lookup(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The built-in that `expr` calls, if it is a call of one by its plain
/// name (see [`builtin_of`]).
pub fn lookup_call(expr: &Expr) -> Option<(&'static Builtin, &ExprCall)> {
    match expr {
        Expr::Call(call) => builtin_of(call).map(|builtin| (builtin, call)),
        _ => None,
    }
}

/// The built-in `call` calls by its plain name: `lines(r)`, and also
/// `push::<T>(n)` with its turbofish (the only built-in with a type
/// argument, reported as misplaced).
pub fn builtin_of(call: &ExprCall) -> Option<&'static Builtin> {
    let Expr::Path(func) = &*call.func else {
        return None;
    };
    if func.qself.is_some() || func.path.leading_colon.is_some() {
        return None;
    }
    match func.path.segments.iter().collect::<Vec<_>>().as_slice() {
        [only] if only.arguments.is_none() => lookup(&only.ident.to_string()),
        [only] if only.ident == "push" => lookup("push"),
        _ => None,
    }
}

/// The message for `push(..)` written as a node.
pub fn push_is_made_outside() -> String {
    "`push` cannot be a node: the handle that sends into it would be lost inside the pipeline; \
     make both before the macro, as in `let (items, handle) = pipeline::io::push::<T>(capacity);`, \
     start a chain with `items >> ..`, and send with `handle.send(item).await`"
        .to_owned()
}

/// A checked call of an IO built-in (one with [`Builtin::io`]).
pub struct IoCall<'a> {
    /// The positional arguments, as written.
    pub positional: Vec<&'a Expr>,
    /// The named arguments given, converted: a size in bytes, or a count.
    pub named: Vec<(&'static str, u64)>,
    /// `interval`'s period, if written as a literal (`50ms`), in
    /// nanoseconds.
    pub period: Option<u64>,
    /// `frames`' delimiter, if written as a byte literal (`b'\n'`), which
    /// is not a byte string and is passed as a one-byte array.
    pub byte_delimiter: bool,
    /// The source inside `results(..)`, if it is a built-in call.
    pub inner: Option<(&'static Builtin, &'a ExprCall)>,
}

impl IoCall<'_> {
    /// The value of the named argument `name`, if it was given.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.named.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// Reads and checks the arguments of an IO built-in, reporting every
/// mistake: the number of positional arguments, unknown or repeated named
/// ones (with a did-you-mean), and their values (units, zero). Returns
/// `None` if anything was wrong.
pub fn check_io_call<'a>(
    builtin: &'static Builtin,
    call: &'a ExprCall,
    diagnostics: &mut Diagnostics,
) -> Option<IoCall<'a>> {
    let errors_before = diagnostics.len();
    let name = builtin.name;
    let wanted = builtin.arity.0;
    let mut io = IoCall {
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
                let hint = match builtin.named {
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
                        builtin.usage
                    ),
                );
            } else if named_before {
                diagnostics.error_spanned(
                    arg,
                    format!(
                        "positional arguments come before named ones, as in `{}`",
                        builtin.usage
                    ),
                );
            }
            io.positional.push(arg);
            continue;
        };
        named_before = true;
        let Expr::Path(path) = &*assign.left else {
            diagnostics.error_spanned(
                &assign.left,
                format!("expected an argument name, as in `{}`", builtin.usage),
            );
            continue;
        };
        let Some(ident) = path.path.get_ident() else {
            diagnostics.error_spanned(
                &assign.left,
                format!("expected an argument name, as in `{}`", builtin.usage),
            );
            continue;
        };
        let arg_name = ident.to_string();
        let Some(known) = builtin.named.iter().find(|n| n.name == arg_name) else {
            let message = match builtin.named {
                [] => format!(
                    "`{name}` takes no named arguments, as in `{}`",
                    builtin.usage
                ),
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
                builtin.usage
            ),
        );
    }
    match name {
        "interval" => {
            if let Some(period) = io.positional.first()
                && is_literal(period)
            {
                if is_zero_number(period) {
                    diagnostics.error_spanned(
                        period,
                        "an `interval` of zero would tick without pause; \
                         give a positive period, as in `interval(100ms)`",
                    );
                } else {
                    io.period = quantity(period, "period", Unit::Time, diagnostics);
                }
            }
        }
        "frames" => {
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
        }
        "results" => {
            if let Some(inner) = io.positional.first()
                && let Some((inner_builtin, inner_call)) = lookup_call(inner)
            {
                if inner_builtin.name == "push" {
                    diagnostics.error_spanned(inner_call, push_is_made_outside());
                } else if inner_builtin.kind != Kind::Source {
                    diagnostics.error_spanned(
                        &inner_call.func,
                        format!(
                            "`results` reads a source, as in `results(lines(reader))`; `{}` is {}",
                            inner_builtin.name,
                            inner_builtin.kind.described()
                        ),
                    );
                } else if inner_builtin.io {
                    check_io_call(inner_builtin, inner_call, diagnostics)?;
                    io.inner = Some((inner_builtin, inner_call));
                } else if inner_call.args.len() != 1 {
                    diagnostics.error(
                        inner_call.paren_token.span.join(),
                        format!(
                            "`{}` takes one argument, as in `{}`",
                            inner_builtin.name, inner_builtin.usage
                        ),
                    );
                } else {
                    io.inner = Some((inner_builtin, inner_call));
                }
            }
        }
        _ => {}
    }
    (diagnostics.len() == errors_before).then_some(io)
}

/// `one positional argument`, `2 positional arguments`, `no ..`.
fn count_of(n: usize, what: &str) -> String {
    match n {
        0 => format!("no {what}s"),
        1 => format!("one {what}"),
        n => format!("{n} {what}s"),
    }
}

fn is_literal(expr: &Expr) -> bool {
    match expr {
        Expr::Lit(_) => true,
        Expr::Unary(unary) => matches!(unary.op, syn::UnOp::Neg(_)) && is_literal(&unary.expr),
        _ => false,
    }
}

/// `0`, or zero with a size unit (`0B`, `0KiB`).
fn is_zero(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Lit(syn::ExprLit { lit: Lit::Int(int), .. })
            if int.base10_parse::<u64>().is_ok_and(|v| v == 0)
                && (int.suffix().is_empty() || is_size_unit(int.suffix()))
    )
}

/// A literal number that is zero, whatever its unit.
fn is_zero_number(expr: &Expr) -> bool {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(int), ..
        }) => int.base10_parse::<u64>().is_ok_and(|v| v == 0),
        Expr::Lit(syn::ExprLit {
            lit: Lit::Float(float),
            ..
        }) => float.base10_parse::<f64>().is_ok_and(|v| v == 0.0),
        _ => false,
    }
}

fn is_size_unit(suffix: &str) -> bool {
    ["B", "KB", "MB", "GB", "KiB", "MiB", "GiB"].contains(&suffix)
}

/// A count of more than zero, without a unit.
fn positive_count(
    expr: &Expr,
    builtin: &str,
    field: &str,
    diagnostics: &mut Diagnostics,
) -> Option<u64> {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(int), ..
        }) if int.suffix().is_empty() => {
            match int.base10_parse::<u64>() {
                Ok(0) => {
                    diagnostics.error_spanned(
                    int,
                    format!("`{field} = 0` would end `{builtin}` before its first item; use 1 or more"),
                );
                    None
                }
                Ok(n) => Some(n),
                Err(error) => {
                    diagnostics.error_spanned(int, error);
                    None
                }
            }
        }
        _ => count(expr, field, diagnostics),
    }
}
