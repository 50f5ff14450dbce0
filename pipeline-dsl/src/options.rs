//! Execution options: `#![key = value]` for the pipeline, `#[key = value]`
//! before a node, or `#[stage(key = value, ..)]` as a stage's defaults.
//!
//! The options are declared once, in `pipeline-options`
//! ([`DECLARATIONS`]): their names, how they are written, what they are
//! about. The values are that crate's types, the runtime's own. This
//! module reads each value, with one function per option found by the
//! option's name (`reader` is the one place the compiler names an
//! option), and writes them back as Rust through the value types'
//! `to_rust`.
//!
//! Every value is checked here, at compile time: an unknown key gets a
//! did-you-mean, a value of the wrong shape says what was expected, a zero
//! where zero would hang is refused, and a conflicting pair (`ordered` with
//! `unordered`) is reported at the second. What an option means for a
//! particular node (a `buffer` on a source, which has no input) is checked
//! by [`check`](crate::check), which knows the graph.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Lit, Meta, Token};

pub use pipeline_options::{
    Backpressure, Breaker, DECLARATIONS, Declaration, Exhausted, Field, Form, OnError, OnFull,
    Ordering, Parallelism, Retry, StageOptions,
};

use crate::diagnostics::{Diagnostics, end_sentence, suggestion};
use crate::values::{Unit, count, quantity};

/// Where generated code reaches the option types.
const PATH: &str = "::pipeline::__private::options";

/// The options written at one level, each with the span of its key.
#[derive(Default, Clone)]
pub struct Options {
    /// `parallel`.
    pub parallel: Option<(Parallelism, Span)>,
    /// `ordered` / `unordered` / `by_key`.
    pub ordering: Option<(Ordering, Span)>,
    /// `by_key`'s closure, set with [`Ordering::ByKey`].
    pub key: Option<Box<Expr>>,
    /// `buffer`.
    pub buffer: Option<(usize, Span)>,
    /// `on_full`.
    pub on_full: Option<(OnFull, Span)>,
    /// `backpressure`.
    pub backpressure: Option<(Backpressure, Span)>,
    /// `on_error`.
    pub on_error: Option<(OnError, Span)>,
    /// Whether `on_error` is a `retry` written without `then`: what it does
    /// when it runs out depends on whether the `errors` port is connected
    /// ([`Options::to_runtime`] decides), and its `then` here is a
    /// placeholder.
    pub then_unset: bool,
    /// `breaker`.
    pub breaker: Option<(Breaker, Span)>,
}

impl Options {
    /// Whether nothing was set.
    pub fn is_empty(&self) -> bool {
        self.keys().is_empty()
    }

    /// The options set, with the spans of their keys, in the order they are
    /// declared.
    pub fn keys(&self) -> Vec<(&'static Declaration, Span)> {
        let values = self.values();
        DECLARATIONS
            .iter()
            .filter(|declaration| (declaration.is_set)(&values))
            .filter_map(|declaration| Some((declaration, self.span(declaration.field)?)))
            .collect()
    }

    /// Where the option that sets `field` is written.
    fn span(&self, field: Field) -> Option<Span> {
        match field {
            Field::Parallel => self.parallel.map(|(_, span)| span),
            Field::Ordering => self.ordering.map(|(_, span)| span),
            Field::Buffer => self.buffer.map(|(_, span)| span),
            Field::OnFull => self.on_full.map(|(_, span)| span),
            Field::Backpressure => self.backpressure.map(|(_, span)| span),
            Field::OnError => self.on_error.map(|(_, span)| span),
            Field::Breaker => self.breaker.map(|(_, span)| span),
        }
    }

    /// The values, without their spans (a retry without `then` holds its
    /// placeholder).
    fn values(&self) -> StageOptions {
        StageOptions {
            parallel: self.parallel.map(|(value, _)| value),
            ordering: self.ordering.map(|(value, _)| value),
            buffer: self.buffer.map(|(value, _)| value),
            on_full: self.on_full.map(|(value, _)| value),
            backpressure: self.backpressure.map(|(value, _)| value),
            on_error: self.on_error.map(|(value, _)| value),
            breaker: self.breaker.map(|(value, _)| value),
        }
    }

    /// Whether the node retries failed items (so its input is kept).
    pub fn retries(&self) -> bool {
        matches!(self.on_error, Some((OnError::Retry { .. }, _)))
    }

    /// Whether an option sets up the node's input edge, or runs the node on
    /// workers behind one (so the node must read from an edge of its own).
    pub fn needs_edge(&self) -> bool {
        self.keys().iter().any(|(declaration, _)| {
            declaration.sets_up_input_edge || declaration.field == Field::Parallel
        })
    }

    /// Where the options send failed items to the `errors` port, if they
    /// do: `dead_letter`, or a retry's `then = dead_letter`.
    pub fn dead_letters(&self) -> Option<Span> {
        match self.on_error {
            Some((OnError::DeadLetter, span)) => Some(span),
            Some((
                OnError::Retry {
                    then: Exhausted::DeadLetter,
                    ..
                },
                span,
            )) if !self.then_unset => Some(span),
            _ => None,
        }
    }

    /// A `StageOptions` literal for the runtime; `errors_connected` decides
    /// what a retry without `then` does when it runs out.
    pub fn to_runtime(&self, errors_connected: bool) -> TokenStream {
        let mut values = self.values();
        if self.then_unset
            && let Some(OnError::Retry { then, .. }) = &mut values.on_error
        {
            *then = if errors_connected {
                Exhausted::DeadLetter
            } else {
                Exhausted::Ignore
            };
        }
        let rust = values.to_rust(PATH);
        // Generated text, always valid Rust; should it ever not be, the
        // macro reports it rather than panic.
        rust.parse().unwrap_or_else(|_| {
            let message = format!("pipeline: the options `{rust}` are not valid Rust");
            quote!(::core::compile_error!(#message))
        })
    }
}

/// Reads `#[..]` attributes as options, reporting every mistake.
pub fn parse_attributes(attrs: &[Attribute], diagnostics: &mut Diagnostics) -> Options {
    let mut options = Options::default();
    for attr in attrs {
        read(&attr.meta, &mut options, diagnostics);
    }
    options
}

/// Reads the options among `#[stage(..)]`'s arguments.
pub fn parse_metas<'a>(
    metas: impl IntoIterator<Item = &'a Meta>,
    diagnostics: &mut Diagnostics,
) -> Options {
    let mut options = Options::default();
    for meta in metas {
        read(meta, &mut options, diagnostics);
    }
    options
}

/// Whether `key` names an option.
pub fn is_option(key: &str) -> bool {
    pipeline_options::declaration(key).is_some()
}

/// The names of the options, in the order they are declared.
pub fn names() -> impl Iterator<Item = &'static str> + Clone {
    DECLARATIONS.iter().map(|declaration| declaration.name)
}

/// The name of the (first) option that sets `field`, for messages that
/// mention it.
pub fn name_of(field: Field) -> &'static str {
    DECLARATIONS
        .iter()
        .find(|declaration| declaration.field == field)
        .map_or("", |declaration| declaration.name)
}

/// How the (first) option that sets `field` is written among
/// `#[stage(..)]`'s arguments, such as `parallel = 4`.
pub fn written_as_argument(field: Field) -> &'static str {
    DECLARATIONS
        .iter()
        .find(|declaration| declaration.field == field)
        .map_or("", |declaration| {
            let written = declaration.written;
            written
                .strip_prefix("#[")
                .and_then(|w| w.strip_suffix(']'))
                .unwrap_or(written)
        })
}

/// Reads one option's value into `options`; the meta has the option's form.
type Reader = fn(&Declaration, &Meta, Span, &mut Options, &mut Diagnostics);

/// The function that reads the value of the option called `name`: the one
/// place the compiler names each option (a unit test checks that every
/// declared option has one).
fn reader(name: &str) -> Option<Reader> {
    let reader: Reader = match name {
        "parallel" => read_parallel,
        "ordered" => read_ordered,
        "unordered" => read_unordered,
        "by_key" => read_by_key,
        "buffer" => read_buffer,
        "on_full" => read_on_full,
        "backpressure" => read_backpressure,
        "on_error" => read_on_error,
        "breaker" => read_breaker,
        _ => return None,
    };
    Some(reader)
}

fn read(meta: &Meta, options: &mut Options, diagnostics: &mut Diagnostics) {
    let path = meta.path();
    let Some(key) = path.get_ident().map(ToString::to_string) else {
        diagnostics.error_spanned(
            path,
            format!(
                "expected an option name such as `{}` or `{}`",
                name_of(Field::Buffer),
                name_of(Field::Parallel)
            ),
        );
        return;
    };
    let span = path.span();
    let (Some(declaration), Some(reader)) = (pipeline_options::declaration(&key), reader(&key))
    else {
        diagnostics.error_spanned(
            path,
            format!(
                "unknown option `{key}`{} Options are {}",
                end_sentence(suggestion(&key, names())),
                names()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return;
    };
    // Options that set the same field exclude each other.
    let first = options
        .keys()
        .into_iter()
        .find(|(set, _)| set.field == declaration.field);
    if let Some((first, _)) = first {
        let message = if first.name == key {
            format!("the option `{key}` is set twice on this node")
        } else {
            format!(
                "`{key}` conflicts with `{}`: a stage has one {}",
                first.name,
                declaration.field.name()
            )
        };
        diagnostics.error(span, message);
        return;
    }
    let form = match meta {
        Meta::Path(_) => Form::Flag,
        Meta::List(_) => Form::List,
        Meta::NameValue(_) => Form::Value,
    };
    if form != declaration.form {
        diagnostics.error_spanned(
            meta,
            format!("wrong form for `{key}`: {}", declaration.wrong_form),
        );
        return;
    }
    reader(declaration, meta, span, options, diagnostics);
}

/// The value of `#[key = value]`.
fn value(meta: &Meta) -> Option<&Expr> {
    match meta {
        Meta::NameValue(nv) => Some(&nv.value),
        _ => None,
    }
}

/// A count as a `usize`.
fn size(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn read_parallel(
    declaration: &Declaration,
    meta: &Meta,
    span: Span,
    options: &mut Options,
    diagnostics: &mut Diagnostics,
) {
    if let Some(parallel) = value(meta).and_then(|v| parallel(v, declaration.name, diagnostics)) {
        options.parallel = Some((parallel, span));
    }
}

fn read_ordered(_: &Declaration, _: &Meta, span: Span, options: &mut Options, _: &mut Diagnostics) {
    options.ordering = Some((Ordering::Ordered, span));
}

fn read_unordered(
    _: &Declaration,
    _: &Meta,
    span: Span,
    options: &mut Options,
    _: &mut Diagnostics,
) {
    options.ordering = Some((Ordering::Unordered, span));
}

fn read_by_key(
    declaration: &Declaration,
    meta: &Meta,
    span: Span,
    options: &mut Options,
    diagnostics: &mut Diagnostics,
) {
    let Meta::List(list) = meta else {
        return;
    };
    match syn::parse2::<Expr>(list.tokens.clone()) {
        Ok(Expr::Closure(closure)) => {
            options.ordering = Some((Ordering::ByKey, span));
            options.key = Some(Box::new(Expr::Closure(closure)));
        }
        _ => diagnostics.error_spanned(
            &list.tokens,
            format!(
                "`{key}` takes a closure from the item to its key, as in `#[{key}(|r: &Req| r.account)]`",
                key = declaration.name
            ),
        ),
    }
}

fn read_buffer(
    declaration: &Declaration,
    meta: &Meta,
    span: Span,
    options: &mut Options,
    diagnostics: &mut Diagnostics,
) {
    if let Some(n) = value(meta).and_then(|v| count(v, declaration.name, diagnostics)) {
        options.buffer = Some((size(n), span));
    }
}

fn read_on_full(
    declaration: &Declaration,
    meta: &Meta,
    span: Span,
    options: &mut Options,
    diagnostics: &mut Diagnostics,
) {
    let Some(expr) = value(meta) else {
        return;
    };
    let value = match word(expr).as_deref() {
        Some("block") => OnFull::Block,
        Some("drop_oldest") => OnFull::DropOldest,
        Some("drop_newest") => OnFull::DropNewest,
        _ => {
            let choices = ["block", "drop_oldest", "drop_newest"];
            expected(expr, declaration.name, &choices, diagnostics);
            return;
        }
    };
    options.on_full = Some((value, span));
}

fn read_backpressure(
    declaration: &Declaration,
    meta: &Meta,
    span: Span,
    options: &mut Options,
    diagnostics: &mut Diagnostics,
) {
    if let Some(value) = value(meta).and_then(|v| backpressure(v, declaration.name, diagnostics)) {
        options.backpressure = Some((value, span));
    }
}

fn read_on_error(
    declaration: &Declaration,
    meta: &Meta,
    span: Span,
    options: &mut Options,
    diagnostics: &mut Diagnostics,
) {
    if let Some((value, then_unset)) =
        value(meta).and_then(|v| on_error(v, declaration.name, diagnostics))
    {
        options.on_error = Some((value, span));
        options.then_unset = then_unset;
    }
}

fn read_breaker(
    declaration: &Declaration,
    meta: &Meta,
    span: Span,
    options: &mut Options,
    diagnostics: &mut Diagnostics,
) {
    let Meta::List(list) = meta else {
        return;
    };
    if let Some(value) = breaker(list, declaration.name, diagnostics) {
        options.breaker = Some((value, span));
    }
}

/// A bare identifier value such as `block`.
fn word(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path(path) => path.path.get_ident().map(ToString::to_string),
        _ => None,
    }
}

fn expected(expr: &Expr, key: &str, choices: &[&str], diagnostics: &mut Diagnostics) {
    let got = word(expr).unwrap_or_default();
    let hint = suggestion(&got, choices.iter().copied());
    diagnostics.error_spanned(
        expr,
        format!(
            "`{key}` is one of {}{}",
            choices
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", "),
            hint
        ),
    );
}

fn parallel(expr: &Expr, key: &str, diagnostics: &mut Diagnostics) -> Option<Parallelism> {
    match expr {
        Expr::Lit(_) | Expr::Unary(_) => {
            count(expr, key, diagnostics).map(|n| Parallelism::Fixed(size(n)))
        }
        Expr::Path(_) => match word(expr).as_deref() {
            Some("cpu") => Some(Parallelism::Cpu),
            Some("io") => Some(Parallelism::Io { max: 64 }),
            _ => {
                expected(expr, key, &["cpu", "io"], diagnostics);
                None
            }
        },
        Expr::Call(call) if word(&call.func).as_deref() == Some("io") && call.args.len() == 1 => {
            count(&call.args[0], "io", diagnostics).map(|max| Parallelism::Io { max: size(max) })
        }
        other => {
            diagnostics.error_spanned(
                other,
                format!(
                    "`{key}` is a number of workers, `cpu` (one per core) or `io` (adaptive, `io(max)`)"
                ),
            );
            None
        }
    }
}

/// `name(a, b)` with positive integer arguments.
fn counts(expr: &Expr, name: &str, n: usize, diagnostics: &mut Diagnostics) -> Option<Vec<u64>> {
    let Expr::Call(call) = expr else {
        return None;
    };
    if call.args.len() != n {
        diagnostics.error_spanned(
            &call.args,
            format!("`{name}` takes {n} number{}", if n == 1 { "" } else { "s" }),
        );
        return None;
    }
    let values: Vec<Option<u64>> = call
        .args
        .iter()
        .map(|arg| count(arg, name, diagnostics))
        .collect();
    values.into_iter().collect()
}

fn backpressure(expr: &Expr, key: &str, diagnostics: &mut Diagnostics) -> Option<Backpressure> {
    let name = match expr {
        Expr::Call(call) => word(&call.func),
        _ => None,
    };
    match name.as_deref() {
        Some("credit") => counts(expr, "credit", 2, diagnostics).map(|v| Backpressure::Credit {
            initial: size(v[0]),
            replenish: size(v[1]),
        }),
        Some("rate") => counts(expr, "rate", 2, diagnostics).map(|v| Backpressure::Rate {
            per_sec: v[0] as f64,
            burst: size(v[1]),
        }),
        Some("adaptive") => {
            let v = counts(expr, "adaptive", 2, diagnostics)?;
            if v[0] > v[1] {
                diagnostics.error_spanned(
                    expr,
                    format!(
                        "`adaptive({}, {})`: the minimum is above the maximum",
                        v[0], v[1]
                    ),
                );
                return None;
            }
            Some(Backpressure::Adaptive {
                min: size(v[0]),
                max: size(v[1]),
            })
        }
        Some("pull") => {
            counts(expr, "pull", 1, diagnostics).map(|v| Backpressure::Pull { window: size(v[0]) })
        }
        _ => {
            let got = name.unwrap_or_default();
            let hint = suggestion(&got, ["credit", "rate", "adaptive", "pull"]);
            diagnostics.error_spanned(
                expr,
                format!(
                    "`{key}` is `credit(initial, replenish)`, `rate(per_sec, burst)`, \
                     `adaptive(min, max)` or `pull(window)`{hint}"
                ),
            );
            None
        }
    }
}

/// The policy, and whether it is a retry without `then`.
fn on_error(expr: &Expr, key: &str, diagnostics: &mut Diagnostics) -> Option<(OnError, bool)> {
    let choices = ["retry", "dead_letter", "fail", "ignore"];
    match expr {
        Expr::Path(_) => match word(expr).as_deref() {
            Some("ignore") => Some((OnError::Ignore, false)),
            Some("dead_letter") => Some((OnError::DeadLetter, false)),
            Some("fail") => Some((OnError::Fail, false)),
            Some("retry") => {
                diagnostics.error_spanned(
                    expr,
                    "`retry` needs a number of attempts, as in `retry(3, backoff = 10ms)`",
                );
                None
            }
            _ => {
                expected(expr, key, &choices, diagnostics);
                None
            }
        },
        Expr::Call(call) if word(&call.func).as_deref() == Some("retry") => {
            retry(call, diagnostics)
        }
        other => {
            expected(other, key, &choices, diagnostics);
            None
        }
    }
}

fn retry(call: &syn::ExprCall, diagnostics: &mut Diagnostics) -> Option<(OnError, bool)> {
    let mut args = call.args.iter();
    let Some(first) = args.next() else {
        diagnostics.error(
            call.paren_token.span.join(),
            "`retry` needs a number of attempts, as in `retry(3, backoff = 10ms)`",
        );
        return None;
    };
    let attempts = count(first, "retry", diagnostics);
    let mut backoff = Some(10_000_000); // 10ms
    let mut max_backoff = None;
    let mut then = None;
    let mut ok = attempts.is_some();
    for arg in args {
        let Expr::Assign(assign) = arg else {
            diagnostics.error_spanned(
                arg,
                "expected `backoff = 10ms`, `max_backoff = 1s` or `then = dead_letter`",
            );
            ok = false;
            continue;
        };
        match word(&assign.left).as_deref() {
            Some("backoff") => {
                backoff = quantity(&assign.right, "backoff", Unit::Time, diagnostics)
            }
            Some("max_backoff") => {
                max_backoff =
                    quantity(&assign.right, "max_backoff", Unit::Time, diagnostics).map(Some);
            }
            Some("then") => match word(&assign.right).as_deref() {
                Some("ignore") => then = Some(Exhausted::Ignore),
                Some("dead_letter") => then = Some(Exhausted::DeadLetter),
                Some("fail") => then = Some(Exhausted::Fail),
                _ => {
                    expected(
                        &assign.right,
                        "then",
                        &["dead_letter", "fail", "ignore"],
                        diagnostics,
                    );
                    ok = false;
                }
            },
            other => {
                let other = other.unwrap_or_default();
                diagnostics.error_spanned(
                    &assign.left,
                    format!(
                        "`retry` has no setting `{other}`{} Settings are `backoff`, `max_backoff`, `then`",
                        end_sentence(suggestion(other, ["backoff", "max_backoff", "then"]))
                    ),
                );
                ok = false;
            }
        }
    }
    let backoff = backoff?;
    let max_backoff = match max_backoff {
        Some(max) => max?,
        None => backoff.saturating_mul(64).min(60_000_000_000),
    };
    if max_backoff < backoff {
        diagnostics.error_spanned(call, "`max_backoff` is shorter than `backoff`");
        return None;
    }
    let retry = Retry {
        attempts: u32::try_from(attempts?).unwrap_or(u32::MAX),
        backoff: Duration::from_nanos(backoff),
        max_backoff: Duration::from_nanos(max_backoff),
    };
    ok.then_some((
        OnError::Retry {
            retry,
            then: then.unwrap_or_default(),
        },
        then.is_none(),
    ))
}

fn breaker(list: &syn::MetaList, key: &str, diagnostics: &mut Diagnostics) -> Option<Breaker> {
    const SETTINGS: &[&str] = &["error_rate", "latency", "window", "min_calls", "cooldown"];
    let args = match Punctuated::<Expr, Token![,]>::parse_terminated.parse2(list.tokens.clone()) {
        Ok(args) => args,
        Err(error) => {
            diagnostics.push(error);
            return None;
        }
    };
    let mut breaker = Breaker {
        error_rate: 0.5,
        latency: None,
        window: Duration::from_secs(10),
        min_calls: 20,
        cooldown: Duration::from_secs(5),
    };
    let mut ok = true;
    let error_rate = "`error_rate` is a share of calls, above 0 and at most 1, such as `0.5`";
    for arg in &args {
        let Expr::Assign(assign) = arg else {
            diagnostics.error_spanned(arg, "expected a setting such as `error_rate = 0.5`");
            ok = false;
            continue;
        };
        let name = word(&assign.left).unwrap_or_default();
        let value = &*assign.right;
        let time = |setting: &str, diagnostics: &mut Diagnostics| {
            quantity(value, setting, Unit::Time, diagnostics).map(Duration::from_nanos)
        };
        match name.as_str() {
            "error_rate" => match value {
                Expr::Lit(syn::ExprLit {
                    lit: Lit::Float(f), ..
                }) => match f.base10_parse::<f64>() {
                    Ok(rate) if rate > 0.0 && rate <= 1.0 => breaker.error_rate = rate,
                    _ => {
                        diagnostics.error_spanned(f, error_rate);
                        ok = false;
                    }
                },
                other => {
                    diagnostics.error_spanned(other, error_rate);
                    ok = false;
                }
            },
            "latency" => match time("latency", diagnostics) {
                Some(l) => breaker.latency = Some(l),
                None => ok = false,
            },
            "window" => match time("window", diagnostics) {
                Some(w) => breaker.window = w,
                None => ok = false,
            },
            "cooldown" => match time("cooldown", diagnostics) {
                Some(c) => breaker.cooldown = c,
                None => ok = false,
            },
            "min_calls" => match count(value, "min_calls", diagnostics) {
                Some(n) => breaker.min_calls = u32::try_from(n).unwrap_or(u32::MAX),
                None => ok = false,
            },
            _ => {
                diagnostics.error_spanned(
                    &assign.left,
                    format!(
                        "`{key}` has no setting `{name}`{} Settings are {}",
                        end_sentence(suggestion(&name, SETTINGS.iter().copied())),
                        SETTINGS
                            .iter()
                            .map(|s| format!("`{s}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(breaker)
}

/// The by-key closure's tokens, if the options have one.
pub fn by_key(options: &Options) -> Option<TokenStream> {
    match (&options.ordering, &options.key) {
        (Some((Ordering::ByKey, _)), Some(f)) => Some(f.to_token_stream()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
