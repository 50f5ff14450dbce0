//! Errors gathered during one expansion and reported together.
//!
//! Every phase pushes into one [`Diagnostics`] instead of returning at the
//! first problem, so the user sees all of an invocation's mistakes at once,
//! each under its own tokens.

use proc_macro2::{Span, TokenStream};
use std::fmt::Display;

/// The errors of one macro invocation.
#[derive(Default)]
pub struct Diagnostics {
    errors: Vec<syn::Error>,
}

impl Diagnostics {
    /// An empty set.
    pub fn new() -> Self {
        Diagnostics::default()
    }

    /// Records an error at `span`.
    pub fn error(&mut self, span: Span, message: impl Display) {
        self.errors.push(syn::Error::new(span, message));
    }

    /// Records an error spanning the tokens of `tokens`.
    pub fn error_spanned(&mut self, tokens: impl quote::ToTokens, message: impl Display) {
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error that syn produced.
    pub fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// Records every error of `other`, after those recorded so far (the
    /// errors a phase kept with a node, reported when the node is checked).
    pub fn extend(&mut self, other: &Diagnostics) {
        self.errors.extend(other.errors.iter().cloned());
    }

    /// Whether anything was recorded.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// How many errors were recorded.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// The messages, in order (for tests).
    pub fn messages(&self) -> Vec<String> {
        self.errors.iter().map(ToString::to_string).collect()
    }

    /// One `compile_error!` per error, each at its own span.
    pub fn to_compile_errors(&self) -> TokenStream {
        self.errors
            .iter()
            .map(syn::Error::to_compile_error)
            .collect()
    }
}

/// The candidate closest to `word`, if any is close enough to be a likely
/// typo (edit distance at most a third of the word, and at least 1).
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `; did you mean `x`?` or nothing.
pub fn suggestion<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(word, candidates)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

/// Ends a sentence after an optional suggestion: `.` when there is none,
/// the suggestion (which ends in `?`) otherwise.
pub fn end_sentence(suggestion: String) -> String {
    if suggestion.is_empty() {
        ".".to_owned()
    } else {
        suggestion
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("ordrs", ["orders", "alerts"]), Some("orders"));
        assert_eq!(
            did_you_mean("buffr", ["buffer", "parallel"]),
            Some("buffer")
        );
        assert_eq!(did_you_mean("zzz", ["orders"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
