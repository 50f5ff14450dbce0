//! A bound on how deeply brackets nest in the tokens handed to `syn`.
//!
//! `syn` parses expressions recursively, so thousands of nested brackets
//! (the fuzzer's `((((..))))`) overflow the macro's stack and crash the
//! compiler instead of reporting an error. Rustc accepts such input, so the
//! macro checks the depth itself first, without recursing.

use proc_macro2::{Span, TokenStream, TokenTree};

/// More nesting than any pipeline needs, and far below what overflows the
/// stack of a debug build of the macro.
pub const MAX_NESTING: usize = 128;

/// The opening bracket of the first group nested deeper than
/// [`MAX_NESTING`], if any.
pub fn too_deep(tokens: &TokenStream) -> Option<Span> {
    let mut stack = vec![tokens.clone().into_iter()];
    while let Some(top) = stack.last_mut() {
        match top.next() {
            Some(TokenTree::Group(group)) => {
                if stack.len() >= MAX_NESTING {
                    return Some(group.span_open());
                }
                stack.push(group.stream().into_iter());
            }
            Some(_) => {}
            None => {
                stack.pop();
            }
        }
    }
    None
}

/// The error for input nested too deeply.
pub fn message() -> String {
    format!(
        "brackets nest more than {MAX_NESTING} levels deep here; move the inner part into a function or a `let` before the macro"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn shallow_input_passes_and_deep_input_is_caught_without_recursion() {
        let shallow = TokenStream::from_str("a >> map(|x| (x + (1 * 2))) >> b").unwrap();
        assert!(too_deep(&shallow).is_none());
        let deep = format!("{}x{}", "(".repeat(20_000), ")".repeat(20_000));
        let deep = TokenStream::from_str(&deep).unwrap();
        assert!(too_deep(&deep).is_some());
    }
}
