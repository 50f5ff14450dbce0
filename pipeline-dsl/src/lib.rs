//! The compiler behind `pipeline!` and `#[stage]`.
//!
//! A normal library, so every phase can be unit- and snapshot-tested
//! without a proc-macro boundary:
//!
//! 1. [`parse`]: tokens to statements, chains and nodes (syntax only).
//! 2. [`lower`]: every option and built-in argument read, once, into a
//!    typed IR; the built-ins are [`ops`], one file each.
//! 3. [`graph`]: the IR's statements as a graph of nodes and edges.
//! 4. [`check`]: the compile-time checks of the graph.
//! 5. [`plan`]: segments, fusion, diamonds and composition, as plain data.
//! 6. [`emit`]: the plan to Rust that targets `pipeline::__private`.
//!
//! Errors from every phase are gathered in one [`Diagnostics`] and reported
//! together, each at the user's tokens.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
pub mod depth;
pub mod diagnostics;
pub mod emit;
pub mod graph;
pub mod lower;
pub mod ops;
pub mod options;
pub mod parse;
pub mod plan;
pub mod stage_attr;
pub mod values;

use proc_macro2::{Span, TokenStream};

pub use diagnostics::Diagnostics;
pub use stage_attr::expand_stage;

/// Expands the body of a `pipeline! { .. }` invocation.
pub fn expand_pipeline(input: TokenStream) -> TokenStream {
    expand_pipeline_at(input, Span::call_site())
}

/// Expands a `pipeline!` body, reporting whole-invocation errors (such as an
/// empty pipeline) at `call_site`.
pub fn expand_pipeline_at(input: TokenStream, call_site: Span) -> TokenStream {
    let mut diagnostics = Diagnostics::new();
    let ast = parse::parse(input, &mut diagnostics);
    let graph = graph::Graph::build(lower::lower(ast), &mut diagnostics);
    let verdict = check::check(&graph, call_site, &mut diagnostics);
    emit::generate(&graph, &verdict, &diagnostics)
}

/// Parses and validates a `pipeline!` body, returning the error messages
/// (used by tests and fuzzing).
pub fn check_pipeline(input: TokenStream) -> Vec<String> {
    let mut diagnostics = Diagnostics::new();
    let ast = parse::parse(input, &mut diagnostics);
    let graph = graph::Graph::build(lower::lower(ast), &mut diagnostics);
    check::check(&graph, Span::call_site(), &mut diagnostics);
    diagnostics.messages()
}
