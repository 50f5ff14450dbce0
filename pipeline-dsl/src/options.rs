//! Execution options: `#![key = value]` for the pipeline, `#[key = value]`
//! before a node, or `#[stage(key = value, ..)]` as a stage's defaults.
//!
//! Every value is checked here, at compile time: an unknown key gets a
//! did-you-mean, a value of the wrong shape says what was expected, a zero
//! where zero would hang is refused, and a conflicting pair (`ordered` with
//! `unordered`) is reported at the second. What an option means for a
//! particular node (a `buffer` on a source, which has no input) is checked
//! by [`validate`](crate::validate), which knows the graph.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Lit, Meta, Token};

use crate::diagnostics::{Diagnostics, end_sentence, suggestion};
use crate::values::{Unit, count, quantity};

/// Every option key of the DSL.
pub const OPTION_KEYS: &[&str] = &[
    "parallel",
    "ordered",
    "unordered",
    "by_key",
    "buffer",
    "on_full",
    "backpressure",
    "on_error",
    "breaker",
];

/// `parallel = ..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parallel {
    /// `parallel = N`.
    Fixed(u64),
    /// `parallel = cpu`.
    Cpu,
    /// `parallel = io` or `io(max)`.
    Io(u64),
}

/// `ordered`, `unordered`, `by_key(f)`.
#[derive(Clone)]
pub enum Ordering {
    /// `ordered`.
    Ordered,
    /// `unordered`.
    Unordered,
    /// `by_key(f)`.
    ByKey(Box<Expr>),
}

/// `on_full = ..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    /// `block`.
    Block,
    /// `drop_oldest`.
    DropOldest,
    /// `drop_newest`.
    DropNewest,
}

/// `backpressure = ..`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backpressure {
    /// `credit(initial, replenish)`.
    Credit(u64, u64),
    /// `rate(per_sec, burst)`.
    Rate(u64, u64),
    /// `adaptive(min, max)`.
    Adaptive(u64, u64),
    /// `pull(window)`.
    Pull(u64),
}

/// What happens after the last retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// `then = ignore`.
    Ignore,
    /// `then = dead_letter`.
    DeadLetter,
    /// `then = fail`.
    Fail,
}

/// `on_error = ..`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OnError {
    /// `ignore`.
    Ignore,
    /// `dead_letter`.
    DeadLetter,
    /// `fail`.
    Fail,
    /// `retry(n, backoff = d, max_backoff = d, then = ..)`; times in ns.
    Retry {
        /// Attempts after the first.
        attempts: u64,
        /// First wait, in nanoseconds.
        backoff: u64,
        /// Longest wait, in nanoseconds.
        max_backoff: u64,
        /// After the last attempt; `None` means "dead-letter if the
        /// `errors` port is connected, else ignore".
        then: Option<Then>,
    },
}

/// `breaker(..)`; times in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breaker {
    /// `error_rate`, 0 to 1.
    pub error_rate: f64,
    /// `latency`.
    pub latency: Option<u64>,
    /// `window`.
    pub window: u64,
    /// `min_calls`.
    pub min_calls: u64,
    /// `cooldown`.
    pub cooldown: u64,
}

/// The options written at one level, each with the span of its key.
#[derive(Default, Clone)]
pub struct Options {
    /// `parallel`.
    pub parallel: Option<(Parallel, Span)>,
    /// `ordered` / `unordered` / `by_key`.
    pub ordering: Option<(Ordering, Span)>,
    /// `buffer`.
    pub buffer: Option<(u64, Span)>,
    /// `on_full`.
    pub on_full: Option<(OnFull, Span)>,
    /// `backpressure`.
    pub backpressure: Option<(Backpressure, Span)>,
    /// `on_error`.
    pub on_error: Option<(OnError, Span)>,
    /// `breaker`.
    pub breaker: Option<(Breaker, Span)>,
}

impl Options {
    /// Whether nothing was set.
    pub fn is_empty(&self) -> bool {
        self.keys().is_empty()
    }

    /// The keys set, with their spans.
    pub fn keys(&self) -> Vec<(&'static str, Span)> {
        let mut keys = Vec::new();
        if let Some((_, span)) = self.parallel {
            keys.push(("parallel", span));
        }
        if let Some((ordering, span)) = &self.ordering {
            keys.push((
                match ordering {
                    Ordering::Ordered => "ordered",
                    Ordering::Unordered => "unordered",
                    Ordering::ByKey(_) => "by_key",
                },
                *span,
            ));
        }
        if let Some((_, span)) = self.buffer {
            keys.push(("buffer", span));
        }
        if let Some((_, span)) = self.on_full {
            keys.push(("on_full", span));
        }
        if let Some((_, span)) = self.backpressure {
            keys.push(("backpressure", span));
        }
        if let Some((_, span)) = self.on_error {
            keys.push(("on_error", span));
        }
        if let Some((_, span)) = self.breaker {
            keys.push(("breaker", span));
        }
        keys
    }

    /// Whether the node retries failed items (so its input is kept).
    pub fn retries(&self) -> bool {
        matches!(self.on_error, Some((OnError::Retry { .. }, _)))
    }

    /// Whether an option sets up the node's input edge (so the node must
    /// read from an edge of its own).
    pub fn needs_edge(&self) -> bool {
        self.buffer.is_some()
            || self.on_full.is_some()
            || self.backpressure.is_some()
            || self.parallel.is_some()
    }

    /// A `StageOptions` literal for the runtime; `errors_connected` decides
    /// what a retry without `then` does when it runs out.
    pub fn to_runtime(&self, errors_connected: bool) -> TokenStream {
        let o = quote!(::pipeline::__private::options);
        let some = |t: TokenStream| quote!(::std::option::Option::Some(#t));
        let none = quote!(::std::option::Option::None);
        let nanos = |n: u64| quote!(::std::time::Duration::from_nanos(#n));
        let parallel = match self.parallel {
            Some((Parallel::Fixed(n), _)) => {
                let n = n as usize;
                some(quote!(#o::Parallelism::Fixed(#n)))
            }
            Some((Parallel::Cpu, _)) => some(quote!(#o::Parallelism::Cpu)),
            Some((Parallel::Io(max), _)) => {
                let max = max as usize;
                some(quote!(#o::Parallelism::Io { max: #max }))
            }
            None => none.clone(),
        };
        let ordering = match &self.ordering {
            Some((Ordering::Ordered, _)) => some(quote!(#o::Ordering::Ordered)),
            Some((Ordering::Unordered, _)) => some(quote!(#o::Ordering::Unordered)),
            Some((Ordering::ByKey(_), _)) => some(quote!(#o::Ordering::ByKey)),
            None => none.clone(),
        };
        let buffer = match self.buffer {
            Some((n, _)) => {
                let n = n as usize;
                some(quote!(#n))
            }
            None => none.clone(),
        };
        let on_full = match self.on_full {
            Some((OnFull::Block, _)) => some(quote!(#o::OnFull::Block)),
            Some((OnFull::DropOldest, _)) => some(quote!(#o::OnFull::DropOldest)),
            Some((OnFull::DropNewest, _)) => some(quote!(#o::OnFull::DropNewest)),
            None => none.clone(),
        };
        let backpressure = match self.backpressure {
            Some((Backpressure::Credit(a, b), _)) => {
                let (a, b) = (a as usize, b as usize);
                some(quote!(#o::Backpressure::Credit { initial: #a, replenish: #b }))
            }
            Some((Backpressure::Rate(a, b), _)) => {
                let (a, b) = (a as f64, b as usize);
                some(quote!(#o::Backpressure::Rate { per_sec: #a, burst: #b }))
            }
            Some((Backpressure::Adaptive(a, b), _)) => {
                let (a, b) = (a as usize, b as usize);
                some(quote!(#o::Backpressure::Adaptive { min: #a, max: #b }))
            }
            Some((Backpressure::Pull(a), _)) => {
                let a = a as usize;
                some(quote!(#o::Backpressure::Pull { window: #a }))
            }
            None => none.clone(),
        };
        let then = |then: Then| match then {
            Then::Ignore => quote!(#o::Exhausted::Ignore),
            Then::DeadLetter => quote!(#o::Exhausted::DeadLetter),
            Then::Fail => quote!(#o::Exhausted::Fail),
        };
        let on_error = match self.on_error {
            Some((OnError::Ignore, _)) => some(quote!(#o::OnError::Ignore)),
            Some((OnError::DeadLetter, _)) => some(quote!(#o::OnError::DeadLetter)),
            Some((OnError::Fail, _)) => some(quote!(#o::OnError::Fail)),
            Some((
                OnError::Retry {
                    attempts,
                    backoff,
                    max_backoff,
                    then: after,
                },
                _,
            )) => {
                let attempts = attempts.min(u64::from(u32::MAX)) as u32;
                let backoff = nanos(backoff);
                let max_backoff = nanos(max_backoff);
                let after = then(after.unwrap_or(if errors_connected {
                    Then::DeadLetter
                } else {
                    Then::Ignore
                }));
                some(quote!(#o::OnError::Retry {
                    retry: #o::Retry { attempts: #attempts, backoff: #backoff, max_backoff: #max_backoff },
                    then: #after,
                }))
            }
            None => none.clone(),
        };
        let breaker = match self.breaker {
            Some((b, _)) => {
                let rate = b.error_rate;
                let latency = match b.latency {
                    Some(l) => some(nanos(l)),
                    None => none.clone(),
                };
                let window = nanos(b.window);
                let min_calls = b.min_calls.min(u64::from(u32::MAX)) as u32;
                let cooldown = nanos(b.cooldown);
                some(quote!(#o::Breaker {
                    error_rate: #rate,
                    latency: #latency,
                    window: #window,
                    min_calls: #min_calls,
                    cooldown: #cooldown,
                }))
            }
            None => none.clone(),
        };
        quote! {
            #o::StageOptions {
                parallel: #parallel,
                ordering: #ordering,
                buffer: #buffer,
                on_full: #on_full,
                backpressure: #backpressure,
                on_error: #on_error,
                breaker: #breaker,
            }
        }
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
    OPTION_KEYS.contains(&key)
}

fn read(meta: &Meta, options: &mut Options, diagnostics: &mut Diagnostics) {
    let path = meta.path();
    let Some(key) = path.get_ident().map(ToString::to_string) else {
        diagnostics.error_spanned(
            path,
            "expected an option name such as `buffer` or `parallel`",
        );
        return;
    };
    let span = path.span();
    if !is_option(&key) {
        diagnostics.error_spanned(
            path,
            format!(
                "unknown option `{key}`{} Options are {}",
                end_sentence(suggestion(&key, OPTION_KEYS.iter().copied())),
                OPTION_KEYS
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return;
    }
    let duplicate = options.keys().iter().any(|(k, _)| *k == key)
        || (matches!(key.as_str(), "ordered" | "unordered" | "by_key")
            && options.ordering.is_some());
    if duplicate {
        let first = options
            .keys()
            .into_iter()
            .find(|(k, _)| {
                *k == key
                    || matches!(*k, "ordered" | "unordered" | "by_key")
                        && matches!(key.as_str(), "ordered" | "unordered" | "by_key")
            })
            .map(|(k, _)| k)
            .unwrap_or("it");
        let message = if first == key {
            format!("the option `{key}` is set twice on this node")
        } else {
            format!("`{key}` conflicts with `{first}`: a stage has one ordering")
        };
        diagnostics.error(span, message);
        return;
    }
    match (key.as_str(), meta) {
        ("ordered", Meta::Path(_)) => options.ordering = Some((Ordering::Ordered, span)),
        ("unordered", Meta::Path(_)) => options.ordering = Some((Ordering::Unordered, span)),
        ("by_key", Meta::List(list)) => match syn::parse2::<Expr>(list.tokens.clone()) {
            Ok(Expr::Closure(closure)) => {
                options.ordering = Some((Ordering::ByKey(Box::new(Expr::Closure(closure))), span));
            }
            _ => diagnostics.error_spanned(
                &list.tokens,
                "`by_key` takes a closure from the item to its key, as in `#[by_key(|r: &Req| r.account)]`",
            ),
        },
        ("parallel", Meta::NameValue(nv)) => {
            if let Some(parallel) = parallel(&nv.value, diagnostics) {
                options.parallel = Some((parallel, span));
            }
        }
        ("buffer", Meta::NameValue(nv)) => {
            if let Some(n) = count(&nv.value, "buffer", diagnostics) {
                options.buffer = Some((n, span));
            }
        }
        ("on_full", Meta::NameValue(nv)) => {
            let value = match word(&nv.value).as_deref() {
                Some("block") => Some(OnFull::Block),
                Some("drop_oldest") => Some(OnFull::DropOldest),
                Some("drop_newest") => Some(OnFull::DropNewest),
                _ => {
                    expected(&nv.value, "on_full", &["block", "drop_oldest", "drop_newest"], diagnostics);
                    None
                }
            };
            if let Some(value) = value {
                options.on_full = Some((value, span));
            }
        }
        ("backpressure", Meta::NameValue(nv)) => {
            if let Some(value) = backpressure(&nv.value, diagnostics) {
                options.backpressure = Some((value, span));
            }
        }
        ("on_error", Meta::NameValue(nv)) => {
            if let Some(value) = on_error(&nv.value, diagnostics) {
                options.on_error = Some((value, span));
            }
        }
        ("breaker", Meta::List(list)) => {
            if let Some(value) = breaker(list, diagnostics) {
                options.breaker = Some((value, span));
            }
        }
        (key, _) => {
            let shape = match key {
                "ordered" | "unordered" => format!("`{key}` takes no value: write `#[{key}]`"),
                "by_key" => "write `#[by_key(|item| key)]`".to_owned(),
                "breaker" => "write `#[breaker(error_rate = 0.5, window = 10s, min_calls = 20, cooldown = 5s)]`".to_owned(),
                "parallel" => "write `#[parallel = 4]`, `#[parallel = cpu]` or `#[parallel = io]`".to_owned(),
                "buffer" => "write `#[buffer = 1024]`".to_owned(),
                "on_full" => "write `#[on_full = block]`, `drop_oldest` or `drop_newest`".to_owned(),
                "backpressure" => "write `#[backpressure = rate(1000, 100)]` or `credit(..)`, `adaptive(..)`, `pull(..)`".to_owned(),
                _ => "write `#[on_error = retry(3, backoff = 10ms)]`, `dead_letter`, `fail` or `ignore`".to_owned(),
            };
            diagnostics.error_spanned(meta, format!("wrong form for `{key}`: {shape}"));
        }
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

fn parallel(expr: &Expr, diagnostics: &mut Diagnostics) -> Option<Parallel> {
    match expr {
        Expr::Lit(_) | Expr::Unary(_) => count(expr, "parallel", diagnostics).map(Parallel::Fixed),
        Expr::Path(_) => match word(expr).as_deref() {
            Some("cpu") => Some(Parallel::Cpu),
            Some("io") => Some(Parallel::Io(64)),
            _ => {
                expected(expr, "parallel", &["cpu", "io"], diagnostics);
                None
            }
        },
        Expr::Call(call) if word(&call.func).as_deref() == Some("io") && call.args.len() == 1 => {
            count(&call.args[0], "io", diagnostics).map(Parallel::Io)
        }
        other => {
            diagnostics.error_spanned(
                other,
                "`parallel` is a number of workers, `cpu` (one per core) or `io` (adaptive, `io(max)`)",
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

fn backpressure(expr: &Expr, diagnostics: &mut Diagnostics) -> Option<Backpressure> {
    let name = match expr {
        Expr::Call(call) => word(&call.func),
        _ => None,
    };
    match name.as_deref() {
        Some("credit") => {
            counts(expr, "credit", 2, diagnostics).map(|v| Backpressure::Credit(v[0], v[1]))
        }
        Some("rate") => {
            counts(expr, "rate", 2, diagnostics).map(|v| Backpressure::Rate(v[0], v[1]))
        }
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
            Some(Backpressure::Adaptive(v[0], v[1]))
        }
        Some("pull") => counts(expr, "pull", 1, diagnostics).map(|v| Backpressure::Pull(v[0])),
        _ => {
            let got = name.unwrap_or_default();
            let hint = suggestion(&got, ["credit", "rate", "adaptive", "pull"]);
            diagnostics.error_spanned(
                expr,
                format!(
                    "`backpressure` is `credit(initial, replenish)`, `rate(per_sec, burst)`, \
                     `adaptive(min, max)` or `pull(window)`{hint}"
                ),
            );
            None
        }
    }
}

fn on_error(expr: &Expr, diagnostics: &mut Diagnostics) -> Option<OnError> {
    let choices = ["retry", "dead_letter", "fail", "ignore"];
    match expr {
        Expr::Path(_) => match word(expr).as_deref() {
            Some("ignore") => Some(OnError::Ignore),
            Some("dead_letter") => Some(OnError::DeadLetter),
            Some("fail") => Some(OnError::Fail),
            Some("retry") => {
                diagnostics.error_spanned(
                    expr,
                    "`retry` needs a number of attempts, as in `retry(3, backoff = 10ms)`",
                );
                None
            }
            _ => {
                expected(expr, "on_error", &choices, diagnostics);
                None
            }
        },
        Expr::Call(call) if word(&call.func).as_deref() == Some("retry") => {
            retry(call, diagnostics)
        }
        other => {
            expected(other, "on_error", &choices, diagnostics);
            None
        }
    }
}

fn retry(call: &syn::ExprCall, diagnostics: &mut Diagnostics) -> Option<OnError> {
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
                Some("ignore") => then = Some(Then::Ignore),
                Some("dead_letter") => then = Some(Then::DeadLetter),
                Some("fail") => then = Some(Then::Fail),
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
    ok.then_some(OnError::Retry {
        attempts: attempts?,
        backoff,
        max_backoff,
        then,
    })
}

fn breaker(list: &syn::MetaList, diagnostics: &mut Diagnostics) -> Option<Breaker> {
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
        window: 10_000_000_000,
        min_calls: 20,
        cooldown: 5_000_000_000,
    };
    let mut ok = true;
    for arg in &args {
        let Expr::Assign(assign) = arg else {
            diagnostics.error_spanned(arg, "expected a setting such as `error_rate = 0.5`");
            ok = false;
            continue;
        };
        let name = word(&assign.left).unwrap_or_default();
        let value = &*assign.right;
        match name.as_str() {
            "error_rate" => {
                match value {
                    Expr::Lit(syn::ExprLit {
                        lit: Lit::Float(f), ..
                    }) => match f.base10_parse::<f64>() {
                        Ok(rate) if rate > 0.0 && rate <= 1.0 => breaker.error_rate = rate,
                        _ => {
                            diagnostics.error_spanned(f, "`error_rate` is a share of calls, above 0 and at most 1, such as `0.5`");
                            ok = false;
                        }
                    },
                    other => {
                        diagnostics.error_spanned(other, "`error_rate` is a share of calls, above 0 and at most 1, such as `0.5`");
                        ok = false;
                    }
                }
            }
            "latency" => match quantity(value, "latency", Unit::Time, diagnostics) {
                Some(l) => breaker.latency = Some(l),
                None => ok = false,
            },
            "window" => match quantity(value, "window", Unit::Time, diagnostics) {
                Some(w) => breaker.window = w,
                None => ok = false,
            },
            "cooldown" => match quantity(value, "cooldown", Unit::Time, diagnostics) {
                Some(c) => breaker.cooldown = c,
                None => ok = false,
            },
            "min_calls" => match count(value, "min_calls", diagnostics) {
                Some(n) => breaker.min_calls = n,
                None => ok = false,
            },
            _ => {
                diagnostics.error_spanned(
                    &assign.left,
                    format!(
                        "`breaker` has no setting `{name}`{} Settings are {}",
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
    match &options.ordering {
        Some((Ordering::ByKey(f), _)) => Some(f.to_token_stream()),
        _ => None,
    }
}
