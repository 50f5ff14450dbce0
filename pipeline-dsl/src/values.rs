//! Literal values with units, read at compile time: counts (`100`), sizes
//! (`64KiB`) and durations (`50ms`), each converted to a plain number so a
//! typo in a unit is an error at the literal rather than a surprise at run
//! time. Options, accumulate fields and IO arguments all read theirs here.

use syn::{Expr, Lit};

use crate::diagnostics::{Diagnostics, did_you_mean};

/// What a quantity measures.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes: `B`, `KB`, `KiB`, ...
    Size,
    /// Nanoseconds: `ns`, `ms`, `s`, ...
    Time,
}

const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
];

const TIME_UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("min", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// A plain count: a positive integer without a unit.
pub fn count(expr: &Expr, field: &str, diagnostics: &mut Diagnostics) -> Option<u64> {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(int), ..
        }) if int.suffix().is_empty() => match int.base10_parse::<u64>() {
            Ok(0) => {
                diagnostics.error_spanned(
                    int,
                    format!("`{field} = 0` would never hold an item; use 1 or more"),
                );
                None
            }
            Ok(n) => Some(n),
            Err(error) => {
                diagnostics.error_spanned(int, error);
                None
            }
        },
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(int), ..
        }) => {
            diagnostics.error_spanned(
                int,
                format!(
                    "`{field}` is a count of items and takes no unit; write `{field} = {}`",
                    int.base10_digits()
                ),
            );
            None
        }
        Expr::Unary(unary) if matches!(unary.op, syn::UnOp::Neg(_)) => {
            diagnostics.error_spanned(expr, format!("`{field}` cannot be negative"));
            None
        }
        other => {
            diagnostics.error_spanned(
                other,
                format!("`{field}` takes a number literal, as in `{field} = 100`"),
            );
            None
        }
    }
}

/// A size or duration: a positive literal with a unit suffix.
pub fn quantity(
    expr: &Expr,
    field: &str,
    unit: Unit,
    diagnostics: &mut Diagnostics,
) -> Option<u64> {
    let (units, example, kind) = match unit {
        Unit::Size => (SIZE_UNITS, "64MiB", "a size"),
        Unit::Time => (TIME_UNITS, "50ms", "a duration"),
    };
    let listed = units
        .iter()
        .map(|(u, _)| format!("`{u}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let (digits, suffix, span, float) = match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(int), ..
        }) => (
            int.base10_digits().to_owned(),
            int.suffix().to_owned(),
            int.span(),
            false,
        ),
        Expr::Lit(syn::ExprLit {
            lit: Lit::Float(float),
            ..
        }) => (
            float.base10_digits().to_owned(),
            float.suffix().to_owned(),
            float.span(),
            true,
        ),
        Expr::Unary(unary) if matches!(unary.op, syn::UnOp::Neg(_)) => {
            diagnostics.error_spanned(expr, format!("`{field}` cannot be negative"));
            return None;
        }
        other => {
            diagnostics.error_spanned(
                other,
                format!("`{field}` is {kind}: a number with a unit, as in `{field} = {example}`"),
            );
            return None;
        }
    };
    if suffix.is_empty() {
        diagnostics.error(
            span,
            format!(
                "`{field}` needs a unit, as in `{field} = {digits}{}`; units are {listed}",
                units[2].0
            ),
        );
        return None;
    }
    let Some(&(_, scale)) = units.iter().find(|(u, _)| *u == suffix) else {
        let other_kind = match unit {
            Unit::Size => TIME_UNITS
                .iter()
                .any(|(u, _)| *u == suffix)
                .then_some("a duration"),
            Unit::Time => SIZE_UNITS
                .iter()
                .any(|(u, _)| *u == suffix)
                .then_some("a size"),
        };
        let message = match other_kind {
            Some(other) => format!(
                "`{digits}{suffix}` is {other}, but `{field}` is {kind}; units are {listed}"
            ),
            None => {
                let names: Vec<&str> = units.iter().map(|(u, _)| *u).collect();
                let hint = did_you_mean(&suffix, names.iter().copied())
                    .map(|best| format!("did you mean `{digits}{best}`? "))
                    .unwrap_or_default();
                format!("unknown unit `{suffix}` in `{field}`; {hint}Units are {listed}")
            }
        };
        diagnostics.error(span, message);
        return None;
    };
    let value = if float {
        digits
            .parse::<f64>()
            .ok()
            .map(|v| v * scale as f64)
            .filter(|v| v.is_finite() && *v < u64::MAX as f64)
            .map(|v| v as u64)
    } else {
        digits
            .parse::<u64>()
            .ok()
            .and_then(|v| v.checked_mul(scale))
    };
    match value {
        Some(0) => {
            diagnostics.error(
                span,
                format!(
                    "`{field} = {digits}{suffix}` is zero; use a positive {}",
                    match unit {
                        Unit::Size => "size",
                        Unit::Time => "duration",
                    }
                ),
            );
            None
        }
        Some(v) => Some(v),
        None => {
            diagnostics.error(
                span,
                format!("`{digits}{suffix}` is too large for `{field}`"),
            );
            None
        }
    }
}

/// A literal, or a negated one.
pub fn is_literal(expr: &Expr) -> bool {
    match expr {
        Expr::Lit(_) => true,
        Expr::Unary(unary) => matches!(unary.op, syn::UnOp::Neg(_)) && is_literal(&unary.expr),
        _ => false,
    }
}

/// `0`, or zero with a size unit (`0B`, `0KiB`).
pub fn is_zero(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Lit(syn::ExprLit { lit: Lit::Int(int), .. })
            if int.base10_parse::<u64>().is_ok_and(|v| v == 0)
                && (int.suffix().is_empty() || is_size_unit(int.suffix()))
    )
}

/// A literal number that is zero, whatever its unit.
pub fn is_zero_number(expr: &Expr) -> bool {
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
pub fn positive_count(
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
