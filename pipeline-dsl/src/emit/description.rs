//! The counters of every node and edge, the channels of the inlets, and
//! the graph a pipeline describes itself with (`Pipeline::graph()`).

use std::collections::HashMap;

use petgraph::graph::NodeIndex;
use proc_macro2::{Span, TokenStream};
use quote::quote;

use super::{Emitter, private_path};
use crate::graph::Kind;

impl Emitter<'_> {
    /// The node's role at run time.
    pub(super) fn runtime_kind(&self, node: NodeIndex) -> TokenStream {
        let graph = self.graph;
        let kind = match graph.node(node).kind {
            _ if graph.inputs(node).is_empty() => quote!(Source),
            Kind::Branch => quote!(Branch),
            Kind::Accumulator => quote!(Accumulator),
            _ if graph.main_outputs(node).is_empty() => quote!(Sink),
            _ => quote!(Transform),
        };
        quote!(::pipeline::graph::NodeKind::#kind)
    }

    /// Counters for every node and edge, and a channel for every inlet.
    pub(super) fn setup_code(&self) -> TokenStream {
        let private = private_path();
        let graph = self.graph;
        let mut code = TokenStream::new();
        for node in graph.graph.node_indices() {
            let var = self.stats_var(node);
            let name = &graph.node(node).name;
            let kind = self.runtime_kind(node);
            code.extend(quote! { let #var = #private::stats(#name, #kind); });
        }
        for edge in graph.graph.edge_indices() {
            let var = self.edge_var(edge);
            let (from, to) = graph.ends(edge);
            let from = &graph.node(from).name;
            let to = &graph.node(to).name;
            let port = match &graph.edge(edge).port {
                Some(port) => {
                    let port = port.to_string();
                    quote!(::std::option::Option::Some(#port))
                }
                None => quote!(::std::option::Option::None),
            };
            let (_, target) = graph.ends(edge);
            // An edge into a segment's first node is a channel; any other
            // edge into a segment is a direct call.
            let fused =
                self.plan.segment_of.get(&target).is_some_and(|&segment| {
                    self.plan.segments[segment].nodes.first() != Some(&target)
                });
            let into_diamond_merge = self.plan.diamonds.values().any(|d| d.ends.contains(&edge));
            if into_diamond_merge {
                let (source, _) = graph.ends(edge);
                let from_stats = self.stats_var(source);
                code.extend(quote! { let #var = #private::merge_edge_stats(&#from_stats, #to); });
            } else if fused {
                let into = self.stats_var(target);
                code.extend(quote! { let #var = #private::fused_edge_stats(#from, &#into); });
            } else {
                code.extend(quote! { let #var = #private::edge_stats(#from, #to, #port); });
            }
        }
        for &inlet in &self.plan.inlets {
            let tx = self.sender_var(inlet);
            let rx = self.receiver_var(inlet);
            let options = self.options_of(inlet);
            code.extend(quote! {
                let (#tx, #rx) = #private::edge_for::<_>(&#options, #private::DEFAULT_CHUNK);
            });
        }
        code
    }

    /// `Pipeline::graph()`: the nodes and edges as the macro saw them, with
    /// a merge node wherever several chains feed one node.
    pub(super) fn description(&self) -> TokenStream {
        let graph = self.graph;
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        let position: HashMap<NodeIndex, usize> = graph
            .graph
            .node_indices()
            .enumerate()
            .map(|(i, n)| (n, i))
            .collect();
        for index in graph.graph.node_indices() {
            let node = graph.node(index);
            let name = &node.name;
            let kind = self.runtime_kind(index);
            let mut ports: Vec<String> = node.ports.iter().map(ToString::to_string).collect();
            if !graph.port_outputs(index, "errors").is_empty() {
                ports.push("errors".to_owned());
            }
            nodes.push(graph_node(name, kind, &ports, node.ir.span()));
        }
        let mut next = nodes.len();
        for index in graph.graph.node_indices() {
            let inputs = graph.inputs(index);
            let to = position[&index];
            let mut merged = None;
            let target = if inputs.len() > 1 {
                let name = format!("merge into {}", graph.node(index).name);
                let kind = quote!(::pipeline::graph::NodeKind::Merge);
                nodes.push(graph_node(&name, kind, &[], graph.node(index).ir.span()));
                merged = Some(quote! {
                    ::pipeline::graph::GraphEdge { from: #next, to: #to, port: ::std::option::Option::None }
                });
                next += 1;
                next - 1
            } else {
                to
            };
            for edge in inputs {
                let (from, _) = graph.ends(edge);
                let from = position[&from];
                let port = port_literal(graph.edge(edge).port.as_ref());
                edges.push(quote! {
                    ::pipeline::graph::GraphEdge { from: #from, to: #target, port: #port }
                });
            }
            // A merge node's own edge follows the edges into it.
            edges.extend(merged);
        }
        quote! {
            ::pipeline::graph::PipelineGraph::new(::std::vec![#(#nodes),*], ::std::vec![#(#edges),*])
        }
    }
}

pub(super) fn graph_node(
    name: &str,
    kind: TokenStream,
    ports: &[String],
    span: Span,
) -> TokenStream {
    let start = span.start();
    let (line, column) = (start.line as u32, start.column as u32 + 1);
    quote! {
        ::pipeline::graph::GraphNode {
            name: #name,
            kind: #kind,
            ports: ::std::vec![#(#ports),*],
            line: #line,
            column: #column,
        }
    }
}

/// `Some("port")` or `None`.
pub(super) fn port_literal(port: Option<&syn::Ident>) -> TokenStream {
    match port {
        Some(port) => {
            let port = port.to_string();
            quote!(::std::option::Option::Some(#port))
        }
        None => quote!(::std::option::Option::None),
    }
}
