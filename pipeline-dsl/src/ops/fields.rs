//! The fields of `accumulate(..)` and `batch(..)`, read and checked at
//! compile time.
//!
//! ```text
//! accumulate(key = |e: &Event| e.user, max_items = 500, max_bytes = 1MiB, max_latency = 50ms)
//! accumulate(Reassemble::default(), ttl = 30s, partial_flush = false)
//! batch(max_items = 100, max_latency = 5ms)
//! ```
//!
//! Sizes and durations are literals with a unit suffix (`1MiB`, `50ms`),
//! converted here to plain numbers, so a typo in a unit is an error at the
//! literal rather than a run-time surprise.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Expr, ExprCall, Lit};

use crate::diagnostics::{Diagnostics, did_you_mean};
use crate::values::{Unit, count, quantity};

/// Every field `accumulate` knows.
pub const FIELDS: &[&str] = &[
    "key",
    "max_items",
    "max_bytes",
    "max_latency",
    "ttl",
    "partial_flush",
    "spill",
    "max_memory",
    "size",
];

/// What an accumulate node collects with.
pub enum Collector {
    /// `key = |item| ..`: batches per key.
    Key(Expr),
    /// A value implementing `Accumulator`.
    Value(Expr),
    /// `batch(..)`: one batch at a time, no key.
    Unkeyed,
}

/// A checked `accumulate(..)` or `batch(..)`.
pub struct Spec {
    /// What collects the items.
    pub collector: Collector,
    /// `max_items`.
    pub max_items: Option<u64>,
    /// `max_bytes`, in bytes.
    pub max_bytes: Option<u64>,
    /// `max_latency`, in nanoseconds.
    pub max_latency: Option<u64>,
    /// `ttl`, in nanoseconds.
    pub ttl: Option<u64>,
    /// `partial_flush` (default `true`).
    pub partial_flush: bool,
    /// `spill`: whether state may go to disk, and the directory if given:
    /// a string literal or any expression of a type that is
    /// `Into<PathBuf>`, evaluated when the pipeline is built.
    pub spill: Option<Option<Expr>>,
    /// `max_memory`, in bytes.
    pub max_memory: Option<u64>,
    /// `size = |item| bytes`.
    pub size: Option<Expr>,
}

/// Reads and checks the arguments of `accumulate(..)` (or `batch(..)`
/// when `unkeyed`), reporting every mistake. Returns `None` if any field
/// was wrong.
pub fn parse(call: &ExprCall, unkeyed: bool, diagnostics: &mut Diagnostics) -> Option<Spec> {
    let errors_before = diagnostics.len();
    let what = if unkeyed { "batch" } else { "accumulate" };
    let mut spec = Spec {
        collector: Collector::Unkeyed,
        max_items: None,
        max_bytes: None,
        max_latency: None,
        ttl: None,
        partial_flush: true,
        spill: None,
        max_memory: None,
        size: None,
    };
    let mut seen: Vec<(String, Span)> = Vec::new();
    let mut value: Option<Expr> = None;
    // A misspelt field may well be the limit that looks missing.
    let mut unknown_field = false;
    // A `spill` already reported: whether it is on is not known.
    let mut spill_unreadable = false;
    for arg in &call.args {
        let (field, right) = match arg {
            Expr::Assign(assign) => match &*assign.left {
                Expr::Path(path) if path.path.get_ident().is_some() => {
                    (path.path.get_ident().cloned(), Some(&*assign.right))
                }
                other => {
                    diagnostics.error_spanned(
                        other,
                        format!("expected a field name, as in `{what}(max_items = 100)`"),
                    );
                    continue;
                }
            },
            // `spill` on its own is a flag.
            Expr::Path(path) if path.path.is_ident("spill") => {
                (path.path.get_ident().cloned(), None)
            }
            other => {
                if unkeyed {
                    diagnostics.error_spanned(
                        other,
                        "`batch` takes only fields, as in `batch(max_items = 100, max_latency = 5ms)`",
                    );
                } else if value.is_some() {
                    diagnostics.error_spanned(
                        other,
                        "`accumulate` takes one accumulator; the other arguments are fields such as `max_items = 100`",
                    );
                } else {
                    value = Some(other.clone());
                }
                continue;
            }
        };
        let Some(field) = field else { continue };
        let name = field.to_string();
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
            let _ = first;
            diagnostics.error_spanned(&field, format!("the field `{name}` is given twice"));
            continue;
        }
        seen.push((name.clone(), field.span()));
        match (name.as_str(), right) {
            ("key", Some(_)) if unkeyed => diagnostics.error_spanned(
                &field,
                "`batch` has no key: it makes one batch at a time; \
                 use `accumulate(key = |item| .., ..)` to batch per key",
            ),
            ("key", Some(right)) => spec.collector = Collector::Key(right.clone()),
            ("max_items", Some(right)) => spec.max_items = count(right, &name, diagnostics),
            ("max_bytes", Some(right)) => {
                spec.max_bytes = quantity(right, &name, Unit::Size, diagnostics)
            }
            ("max_memory", Some(right)) => {
                spec.max_memory = quantity(right, &name, Unit::Size, diagnostics)
            }
            ("max_latency", Some(right)) => {
                spec.max_latency = quantity(right, &name, Unit::Time, diagnostics)
            }
            ("ttl", Some(right)) => spec.ttl = quantity(right, &name, Unit::Time, diagnostics),
            ("partial_flush", Some(right)) => match right {
                Expr::Lit(syn::ExprLit {
                    lit: Lit::Bool(b), ..
                }) => spec.partial_flush = b.value,
                other => diagnostics.error_spanned(other, "`partial_flush` is `true` or `false`"),
            },
            ("spill", None) => spec.spill = Some(None),
            ("spill", Some(right)) => match right {
                Expr::Lit(syn::ExprLit {
                    lit: Lit::Bool(b), ..
                }) => {
                    spec.spill = b.value.then_some(None);
                }
                Expr::Lit(syn::ExprLit {
                    lit: Lit::Str(_), ..
                }) => spec.spill = Some(Some(right.clone())),
                Expr::Lit(other) => {
                    spill_unreadable = true;
                    diagnostics.error_spanned(
                    other,
                    "`spill` is `true`, `false`, or a directory: a string such as \
                     `spill = \"/var/tmp/spill\"`, or an expression such as `spill = config.spill_dir`",
                    );
                }
                // A directory known at run time: a variable, a field, a
                // call; rustc checks that it is `Into<PathBuf>`.
                dir => spec.spill = Some(Some(dir.clone())),
            },
            ("size", Some(right)) => spec.size = Some(right.clone()),
            (_, None) => diagnostics.error_spanned(&field, format!("`{name}` needs a value")),
            _ => {
                unknown_field = true;
                let hint = did_you_mean(&name, FIELDS.iter().copied())
                    .map(|best| format!("did you mean `{best}`? "))
                    .unwrap_or_default();
                diagnostics.error_spanned(
                    &field,
                    format!(
                        "`{what}` has no field `{name}`; {hint}Fields are {}",
                        FIELDS
                            .iter()
                            .filter(|f| !(unkeyed && **f == "key"))
                            .map(|f| format!("`{f}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
    }
    if let Some(value) = value {
        if matches!(spec.collector, Collector::Key(_)) {
            diagnostics.error_spanned(
                &value,
                "give `accumulate` either `key = |item| ..` or an accumulator, not both",
            );
        } else {
            spec.collector = Collector::Value(value);
        }
    }
    let field_span = |name: &str| seen.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
    if !unkeyed && matches!(spec.collector, Collector::Unkeyed) {
        diagnostics.error(
            call.func.span(),
            "`accumulate` needs a key or an accumulator, as in \
             `accumulate(key = |item| item.user, max_items = 100)` or `accumulate(Sessions::default(), ttl = 30s)`",
        );
    }
    let has_limit = spec.max_items.is_some()
        || spec.max_bytes.is_some()
        || spec.max_latency.is_some()
        || spec.ttl.is_some();
    let limits_seen = ["max_items", "max_bytes", "max_latency", "ttl"]
        .iter()
        .any(|f| field_span(f).is_some());
    if !has_limit
        && !limits_seen
        && !unknown_field
        && !matches!(spec.collector, Collector::Value(_))
    {
        diagnostics.error(
            call.func.span(),
            format!(
                "`{what}` needs a limit, or it would hold every item until the end: \
                 add `max_items`, `max_bytes`, `max_latency` or `ttl`"
            ),
        );
    }
    match (
        spec.spill.is_some(),
        field_span("max_memory"),
        field_span("spill"),
    ) {
        (true, None, Some(spill)) => diagnostics.error(
            spill,
            "`spill` needs `max_memory`, the budget beyond which state goes to disk, \
             as in `spill, max_memory = 64MiB`",
        ),
        (false, Some(memory), _) if !spill_unreadable => diagnostics.error(
            memory,
            "`max_memory` is the budget for `spill`, which is off; add `spill` to let state go to disk, or remove `max_memory`",
        ),
        _ => {}
    }
    (diagnostics.len() == errors_before).then_some(spec)
}

/// The expressions of a spec's arguments that are Rust code (closures and
/// the accumulator value), for the IDE after an error.
pub fn code_arguments(call: &ExprCall) -> Vec<TokenStream> {
    call.args
        .iter()
        .filter_map(|arg| match arg {
            Expr::Assign(assign) if !matches!(&*assign.right, Expr::Lit(_) | Expr::Closure(_)) => {
                Some(assign.right.to_token_stream())
            }
            Expr::Assign(_) | Expr::Path(_) | Expr::Closure(_) | Expr::Lit(_) => None,
            other => Some(other.to_token_stream()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(tokens: TokenStream, unkeyed: bool) -> (Option<Spec>, Vec<String>) {
        let call: ExprCall = syn::parse2(tokens).unwrap();
        let mut diagnostics = Diagnostics::new();
        let spec = parse(&call, unkeyed, &mut diagnostics);
        (spec, diagnostics.messages())
    }

    #[test]
    fn units_become_numbers() {
        let (spec, errors) = check(
            quote::quote!(accumulate(
                key = |e| e.user,
                max_items = 500,
                max_bytes = 1MiB,
                max_latency = 50ms,
                ttl = 2min
            )),
            false,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let spec = spec.unwrap();
        assert_eq!(spec.max_items, Some(500));
        assert_eq!(spec.max_bytes, Some(1 << 20));
        assert_eq!(spec.max_latency, Some(50_000_000));
        assert_eq!(spec.ttl, Some(120_000_000_000));
        assert!(spec.partial_flush);
    }

    #[test]
    fn every_field_mistake_is_reported() {
        let (_, errors) = check(
            quote::quote!(accumulate(
                key = |e| e.user,
                max_itemz = 5,
                max_bytes = 5mb,
                max_latency = 0ms,
                ttl = 3MiB,
                max_items = 0
            )),
            false,
        );
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(
            errors[0].contains("did you mean `max_items`?"),
            "{errors:#?}"
        );
        assert!(errors[1].contains("unknown unit `mb`"), "{errors:#?}");
        assert!(errors[2].contains("is zero"), "{errors:#?}");
        assert!(
            errors[3].contains("is a size, but `ttl` is a duration"),
            "{errors:#?}"
        );
        assert!(
            errors[4].contains("would never hold an item"),
            "{errors:#?}"
        );
    }

    #[test]
    fn spill_takes_a_directory_from_a_literal_or_an_expression() {
        for dir in [
            quote::quote!("/var/tmp"),
            quote::quote!(dir),
            quote::quote!(tmp.path()),
        ] {
            let (spec, errors) = check(
                quote::quote!(accumulate(key = |e| e.k, max_items = 5, spill = #dir, max_memory = 1MiB)),
                false,
            );
            assert!(errors.is_empty(), "{errors:#?}");
            let spill = spec.unwrap().spill;
            assert_eq!(
                spill.flatten().map(|dir| dir.to_token_stream().to_string()),
                Some(dir.to_string())
            );
        }
        let (spec, errors) = check(
            quote::quote!(accumulate(key = |e| e.k, max_items = 5, spill = false)),
            false,
        );
        assert!(errors.is_empty(), "{errors:#?}");
        assert!(spec.unwrap().spill.is_none());
        let (_, errors) = check(
            quote::quote!(accumulate(
                key = |e| e.k,
                max_items = 5,
                spill = 3,
                max_memory = 1MiB
            )),
            false,
        );
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].contains("a directory"), "{errors:#?}");
    }

    #[test]
    fn spill_needs_a_budget_and_batch_has_no_key() {
        let (_, errors) = check(
            quote::quote!(accumulate(key = |e| e.k, max_items = 5, spill)),
            false,
        );
        assert!(
            errors[0].contains("`spill` needs `max_memory`"),
            "{errors:#?}"
        );
        // A directory chosen at run time is still a `spill`, so the error
        // is the same, and the only one.
        let (_, errors) = check(
            quote::quote!(accumulate(
                key = |e| e.k,
                max_items = 5,
                spill = config.dir()
            )),
            false,
        );
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0].contains("`spill` needs `max_memory`"),
            "{errors:#?}"
        );
        let (_, errors) = check(quote::quote!(batch(key = |e| e.k, max_items = 5)), true);
        assert!(errors[0].contains("`batch` has no key"), "{errors:#?}");
        let (_, errors) = check(quote::quote!(accumulate(max_items = 5)), false);
        assert!(
            errors[0].contains("needs a key or an accumulator"),
            "{errors:#?}"
        );
    }
}
