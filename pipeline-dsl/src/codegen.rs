//! Phase 4: the graph to Rust.
//!
//! A linear chain becomes a nest of `Fuse` values built one `>>` at a time:
//!
//! ```text
//! let chain = head(iter(v), stats_0, CHUNK);
//! let stage = map(marker(&chain), |x| x + 1);   // the closure learns its type here
//! let chain = fuse(chain, stage, stats_1);      // and the edge is checked here
//! ```
//!
//! Every user expression is re-emitted with its own spans, so type errors
//! land on the user's tokens. When validation failed, the chains that had no
//! error of their own are still emitted (inside a closure that never runs)
//! so the IDE keeps checking them, followed by the errors and a stub
//! pipeline of the right type.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::Expr;

use crate::diagnostics::Diagnostics;
use crate::graph::{Graph, Kind, Node};
use crate::parse::Target;
use crate::validate::Verdict;

/// The expansion of a `pipeline!`.
pub fn generate(graph: &Graph, verdict: &Verdict, diagnostics: &Diagnostics) -> TokenStream {
    let private = private_path();
    let mut chains = Vec::new();
    for (index, chain) in graph.chains.iter().enumerate() {
        if verdict.chain_ok.get(index).copied().unwrap_or(false) {
            chains.push(chain_code(graph, chain));
        }
    }
    if diagnostics.is_empty() && !chains.is_empty() {
        let (wiring, stats) = chains.swap_remove(0);
        let chain = chain_ident();
        let control = format_ident!("__pipeline_control", span = Span::mixed_site());
        return quote! {
            {
                #wiring
                #private::Pipeline::new(
                    ::std::vec![#(#stats),*],
                    move |#control: #private::Control| #private::drive(#chain, #control),
                )
            }
        };
    }
    let errors = diagnostics.to_compile_errors();
    let wirings = chains.into_iter().map(|(wiring, _)| wiring);
    quote! {
        {
            #errors
            #(
                let _ = || {
                    #wirings
                };
            )*
            #private::invalid()
        }
    }
}

fn private_path() -> TokenStream {
    quote!(::pipeline::__private)
}

/// `::pipeline::__private` with every token at `span`, so that errors from
/// a call through it are reported at the user's node (and a repeated
/// obligation lands on the same span, where rustc reports it once).
fn private_path_at(span: Span) -> TokenStream {
    quote_spanned!(span=> ::pipeline::__private)
}

fn chain_ident() -> syn::Ident {
    format_ident!("__pipeline_chain", span = Span::mixed_site())
}

/// The statements that build one chain, and the names of its stats.
fn chain_code(
    graph: &Graph,
    chain: &[petgraph::graph::NodeIndex],
) -> (TokenStream, Vec<syn::Ident>) {
    let private = private_path();
    let chain_var = chain_ident();
    let mut code = TokenStream::new();
    let mut stats = Vec::new();
    let last = chain.len() - 1;
    for (position, &index) in chain.iter().enumerate() {
        let node = graph.node(index);
        let span = node.ast.span();
        let stats_var = format_ident!(
            "__pipeline_stats_{}",
            index.index(),
            span = Span::mixed_site()
        );
        let name = &node.name;
        let kind = match (position, node.kind) {
            (0, _) => quote!(Source),
            (p, _) if p == last => quote!(Sink),
            (_, Kind::Accumulator) => quote!(Accumulator),
            (_, Kind::Branch) => quote!(Branch),
            _ => quote!(Transform),
        };
        code.extend(quote! {
            let #stats_var = #private::stats(#name, #private::NodeKind::#kind);
        });
        let expr = stage_expr(node, &chain_var);
        if position == 0 {
            let here = Span::mixed_site().located_at(span);
            let private_here = private_path_at(here);
            let source_here = syn::Ident::new("__pipeline_source", here);
            let chain_here = syn::Ident::new("__pipeline_chain", here);
            let stats_here = syn::Ident::new(&stats_var.to_string(), here);
            code.extend(quote_spanned! {span=>
                let #source_here = #expr;
            });
            code.extend(quote_spanned! {here=>
                let #chain_here = #private_here::head(#source_here, ::std::sync::Arc::clone(&#stats_here), #private_here::DEFAULT_CHUNK);
            });
        } else {
            // The stage's variable is located at the user's tokens, so a
            // mismatch at `fuse` is reported there.
            let here = Span::mixed_site().located_at(span);
            let stage_var = syn::Ident::new("__pipeline_stage", here);
            code.extend(quote_spanned! {span=>
                let #stage_var = #expr;
            });
            if position == last {
                let private_here = private_path_at(here);
                code.extend(quote_spanned! {here=>
                    #private_here::ends_in_sink(&#stage_var);
                });
            }
            // Every token of the call, the stage variable included, sits
            // at the user's node in one hygiene context: rustc then reports
            // a mismatch there, and reports it once even though both the
            // bound and the result type of `fuse` require it.
            let here = Span::mixed_site().located_at(span);
            let private_here = private_path_at(here);
            let chain_here = syn::Ident::new("__pipeline_chain", here);
            let stats_here = syn::Ident::new(&stats_var.to_string(), here);
            code.extend(quote_spanned! {here=>
                let #chain_here = #private_here::fuse(#chain_here, #stage_var, ::std::sync::Arc::clone(&#stats_here));
            });
        }
        stats.push(stats_var);
    }
    (code, stats)
}

/// The expression that makes a node's stage.
fn stage_expr(node: &Node, chain_var: &syn::Ident) -> TokenStream {
    match &node.ast.target {
        // A bare name is a `#[stage]` item: the braced struct it generated.
        Target::Name(ident) => quote_spanned!(ident.span()=> #ident {}),
        Target::Path(path) => {
            let span = path
                .segments
                .last()
                .map_or_else(Span::call_site, |s| s.ident.span());
            quote_spanned!(span=> #path {})
        }
        Target::Builtin { builtin, call } => {
            let func_span = match &*call.func {
                Expr::Path(p) => p.path.segments[0].ident.span(),
                _ => Span::call_site(),
            };
            let args = call.args.iter();
            let name = match builtin.name {
                "for_each" if call.args.first().is_some_and(is_async_closure) => "for_each_async",
                other => other,
            };
            let func = syn::Ident::new(name, func_span);
            let private = private_path_at(func_span);
            if builtin.kind == Kind::Source {
                quote_spanned!(func_span=> #private::#func(#(#args),*))
            } else {
                quote_spanned!(func_span=> #private::#func(#private::marker(&#chain_var), #(#args),*))
            }
        }
        Target::Expr(expr) => quote!(#expr),
        // Rejected by validation before code is generated.
        Target::Port { owner, .. } => quote!(#owner),
    }
}

/// `|x| async { .. }`, `|x| async move { .. }` or `async |x| ..`.
fn is_async_closure(expr: &Expr) -> bool {
    match expr {
        Expr::Closure(closure) => closure.asyncness.is_some() || ends_in_async_block(&closure.body),
        _ => false,
    }
}

/// `async { .. }`, or a block whose value is one.
fn ends_in_async_block(expr: &Expr) -> bool {
    match expr {
        Expr::Async(_) => true,
        Expr::Block(block) => match block.block.stmts.last() {
            Some(syn::Stmt::Expr(tail, None)) => ends_in_async_block(tail),
            _ => false,
        },
        Expr::Paren(paren) => ends_in_async_block(&paren.expr),
        _ => false,
    }
}
