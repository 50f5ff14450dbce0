//! The procedural macros of `pipeline`: thin shims over `pipeline-dsl`.
//! Use them through the `pipeline` crate.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use proc_macro::TokenStream;

/// Builds a pipeline from a graph written inline. See the `pipeline` crate.
#[proc_macro]
pub fn pipeline(input: TokenStream) -> TokenStream {
    pipeline_dsl::expand_pipeline(input.into()).into()
}

/// Turns a function into a stage. See the `pipeline` crate.
#[proc_macro_attribute]
pub fn stage(args: TokenStream, item: TokenStream) -> TokenStream {
    pipeline_dsl::expand_stage(args.into(), item.into()).into()
}
