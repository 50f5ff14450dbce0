//! Phase 6: the plan to Rust.
//!
//! Each segment of the [`Plan`] becomes one fused chain, built one `>>` at
//! a time:
//!
//! ```text
//! let chain = head(iter(v), stats_0, CHUNK);    // or inlet(rx, CHUNK)
//! let stage = map(marker(&chain), |x| x + 1);   // the closure learns its type here
//! let chain = fuse(chain, stage, stats_1);      // and the edge is checked here
//! ```
//!
//! A segment ends in a sink (driven by `drive`), or in an outlet that
//! ships its chunks into the edges of the segments it feeds (`drive_into`).
//! Segments are emitted in the plan's order, so an edge's item type is
//! known from its producer before any consumer's closure needs it. The
//! segments go to `Pipeline::segmented`: run, they share the caller's
//! task; spawned, each is a task of its own.
//!
//! Every user expression is re-emitted with its own spans, so type errors
//! land on the user's tokens. When a check failed, the segments that had
//! no error of their own are still emitted (inside a closure that never
//! runs) so the IDE keeps checking them, followed by the errors and a stub
//! pipeline of the right type (`fallback`).
//!
//! One file per concern: `segment` (heads, diamonds, outlets), `stage` (a
//! stage fused to its chain), `accumulate`, `parallel`, `description`
//! (counters, edges and the graph a pipeline describes itself with) and
//! `fallback`.

mod accumulate;
mod description;
mod fallback;
mod parallel;
mod segment;
mod stage;

use std::cell::RefCell;
use std::collections::HashSet;

use petgraph::graph::{EdgeIndex, NodeIndex};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

use crate::check::Verdict;
use crate::diagnostics::Diagnostics;
use crate::graph::Graph;
use crate::plan::Plan;

/// The expansion of a `pipeline!`.
pub fn generate(graph: &Graph, verdict: &Verdict, diagnostics: &Diagnostics) -> TokenStream {
    let wiring = Emitter::new(graph);
    let private = private_path();
    let valid = diagnostics.is_empty();
    let order = wiring.plan.order.clone();
    let mut emitted: HashSet<usize> = HashSet::new();
    let mut covered: HashSet<NodeIndex> = HashSet::new();
    let mut segments = TokenStream::new();
    let mut segment_vars = Vec::new();
    for index in order {
        let segment = &wiring.plan.segments[index];
        let ok = segment.nodes.iter().all(|&node| verdict.ok(node))
            && wiring.plan.dependencies[index]
                .iter()
                .all(|d| emitted.contains(d));
        if !ok {
            // After an error, the stages before it in its segment are
            // still emitted, typed from upstream, so the IDE checks and
            // completes their closures.
            let ready = wiring.plan.dependencies[index]
                .iter()
                .all(|d| emitted.contains(d));
            if ready && !valid {
                let (code, nodes) = wiring.prefix_code(index, verdict);
                segments.extend(quote! { { #code } });
                covered.extend(nodes);
            }
            continue;
        }
        emitted.insert(index);
        covered.extend(segment.nodes.iter().copied());
        let var = format_ident!("__pipeline_segment_{}", index, span = Span::mixed_site());
        let code = wiring.segment_code(index);
        segments.extend(quote! { let #var = { #code }; });
        segment_vars.push(var);
    }
    let mut setup = wiring.setup_code();
    let open = has_output(graph);
    let outputs = local("__pipeline_outputs", Span::call_site());
    if open {
        let sink = local("__pipeline_output", Span::call_site());
        setup.extend(quote! {
            let (#sink, #outputs) = #private::stream_sink(#private::DEFAULT_BUFFER);
        });
    }
    if valid && !segment_vars.is_empty() {
        let body = nested_tuple(&segment_vars);
        let stats = wiring.stats_vars();
        let edges = wiring.edge_vars();
        let senders = wiring.channel_senders();
        let description = wiring.description();
        let finish = if open {
            quote!(#private::open(__pipeline, #outputs))
        } else {
            quote!(__pipeline)
        };
        return quote! {
            {
                #setup
                #segments
                // The segments hold clones; the originals must go, or the
                // edges would never close.
                #( ::std::mem::drop(#senders); )*
                // Run, the segments share the caller's task; spawned, each
                // is a task of its own.
                let __pipeline = ::pipeline::Pipeline::segmented(
                    ::std::vec![#(#stats),*],
                    #body,
                )
                .with_edges(::std::vec![#(#edges),*])
                .with_graph(#description);
                #finish
            }
        };
    }
    let errors = diagnostics.to_compile_errors();
    let leftovers = wiring.leftover_expressions(&covered);
    let stub = if open {
        quote!(#private::invalid_open())
    } else {
        quote!(#private::invalid())
    };
    quote! {
        {
            #errors
            let _ = || {
                #setup
                #segments
                #leftovers
            };
            #stub
        }
    }
}

/// Whether a chain ends in `output()`: the pipeline is then read as a
/// stream.
fn has_output(graph: &Graph) -> bool {
    graph.graph.node_indices().any(|n| {
        graph
            .node(n)
            .ir
            .builtin()
            .is_some_and(|call| call.op.stream_output)
    })
}

fn private_path() -> TokenStream {
    quote!(::pipeline::__private)
}

/// `::pipeline::__private` with every token at `span`, so that errors from
/// a call through it are reported at the user's node.
fn private_path_at(span: Span) -> TokenStream {
    quote_spanned!(span=> ::pipeline::__private)
}

/// `(a, (b, (c, ())))`: the list form the runtime takes segments and a
/// diamond's branches in.
fn nested_tuple(vars: &[syn::Ident]) -> TokenStream {
    vars.iter()
        .rev()
        .fold(quote!(()), |rest, var| quote!((#var, #rest)))
}

/// A hygienic name that reports at `span`.
fn local(name: &str, span: Span) -> syn::Ident {
    syn::Ident::new(name, Span::mixed_site().located_at(span))
}

/// Fused stages between two boxes of a chain's pull future (see
/// `__private::boxed`).
const BOX_EVERY: usize = 8;

/// What the emitting code reads: the graph, its plan, and which inlets'
/// item types an emitted edge has already fixed.
struct Emitter<'a> {
    graph: &'a Graph,
    plan: Plan,
    /// Inlets whose item type an emitted edge has already fixed.
    typed: RefCell<HashSet<NodeIndex>>,
}

impl<'a> Emitter<'a> {
    fn new(graph: &'a Graph) -> Self {
        Emitter {
            graph,
            plan: Plan::new(graph),
            typed: RefCell::new(HashSet::new()),
        }
    }
}

impl Emitter<'_> {
    fn stats_var(&self, node: NodeIndex) -> syn::Ident {
        format_ident!(
            "__pipeline_stats_{}",
            node.index(),
            span = Span::mixed_site()
        )
    }

    fn edge_var(&self, edge: EdgeIndex) -> syn::Ident {
        format_ident!(
            "__pipeline_edge_{}",
            edge.index(),
            span = Span::mixed_site()
        )
    }

    fn sender_var(&self, inlet: NodeIndex) -> syn::Ident {
        format_ident!("__pipeline_tx_{}", inlet.index(), span = Span::mixed_site())
    }

    fn receiver_var(&self, inlet: NodeIndex) -> syn::Ident {
        format_ident!("__pipeline_rx_{}", inlet.index(), span = Span::mixed_site())
    }

    fn stats_vars(&self) -> Vec<syn::Ident> {
        self.graph
            .graph
            .node_indices()
            .map(|n| self.stats_var(n))
            .collect()
    }

    fn edge_vars(&self) -> Vec<syn::Ident> {
        self.graph
            .graph
            .edge_indices()
            .map(|e| self.edge_var(e))
            .collect()
    }

    fn channel_senders(&self) -> Vec<syn::Ident> {
        self.plan
            .inlets
            .iter()
            .map(|&n| self.sender_var(n))
            .collect()
    }

    /// The locals an operator's code refers to.
    fn emit_context(&self, node: NodeIndex) -> crate::ops::Emit {
        let span = self.graph.node(node).ir.span();
        crate::ops::Emit {
            chain: local("__pipeline_chain", span),
            stats: local(&self.stats_var(node).to_string(), span),
        }
    }
}

fn first_span(tokens: &TokenStream) -> Span {
    tokens
        .clone()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span())
}
