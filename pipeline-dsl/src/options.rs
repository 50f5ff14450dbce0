//! Node and pipeline options: `#[key = value]`, `#[key(args)]`, `#[key]`.
//!
//! This version recognises every option of the DSL, so a typo gets a
//! did-you-mean, but does not yet give any of them run-time behaviour: each
//! is reported as not supported yet rather than silently ignored.

use syn::{Attribute, Meta};

use crate::diagnostics::{Diagnostics, end_sentence, suggestion};

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

/// The key an attribute sets, checked against [`OPTION_KEYS`].
pub fn check_options(attrs: &[Attribute], diagnostics: &mut Diagnostics) {
    for attr in attrs {
        let path = match &attr.meta {
            Meta::Path(path) => path,
            Meta::List(list) => &list.path,
            Meta::NameValue(nv) => &nv.path,
        };
        let Some(key) = path.get_ident().map(ToString::to_string) else {
            diagnostics.error_spanned(
                path,
                "expected an option name such as `buffer` or `parallel`",
            );
            continue;
        };
        if OPTION_KEYS.contains(&key.as_str()) {
            diagnostics.error_spanned(
                path,
                format!(
                    "the option `{key}` is not supported yet; remove it to build this pipeline"
                ),
            );
        } else {
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
        }
    }
}
