//! A segment's chain: its head (a source, an inlet), its stages, the
//! diamonds fused into it, and how its output leaves (`drive`, an outlet
//! into edges, a branch's ports).

use petgraph::graph::{EdgeIndex, NodeIndex};
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};

use super::accumulate::Intake;
use super::stage::head_expr;
use super::{BOX_EVERY, Emitter, first_span, local, nested_tuple, private_path, private_path_at};
use crate::graph::Kind;
use crate::plan::Composing;

impl Emitter<'_> {
    /// One segment: its chain, then a closure that drives it.
    pub(super) fn segment_code(&self, index: usize) -> TokenStream {
        let graph = self.graph;
        let segment = &self.plan.segments[index];
        let chain = local("__pipeline_chain", Span::call_site());
        let mut code = TokenStream::new();
        let mut stages = segment.nodes.as_slice();
        if segment.inlet {
            let head = segment.nodes[0];
            if graph.node(head).kind == Kind::Accumulator {
                code.extend(self.accumulate_code(head, Intake::Edge));
                stages = &stages[1..];
            } else if self.plan.is_parallel(head) {
                code.extend(
                    self.parallel_code(head, head == *segment.nodes.last().unwrap_or(&head)),
                );
                stages = &stages[1..];
            } else {
                let rx = self.receiver_var(head);
                let private = private_path();
                code.extend(quote! {
                    let #chain = #private::inlet(#rx, #private::DEFAULT_CHUNK);
                });
            }
        } else {
            let head = segment.nodes[0];
            code.extend(self.head_code(head));
            stages = &stages[1..];
        }
        let head = segment.nodes[0];
        if stages.first() != Some(&head) {
            code.extend(self.diamond_code(head));
        }
        let last = *segment.nodes.last().unwrap_or(&segment.nodes[0]);
        // The plan composed the stages after the head the same way.
        debug_assert_eq!(stages.len(), segment.nodes.len() - segment.stages_from);
        let composed = &segment.composed;
        let mut units = 0;
        for (i, &node) in stages.iter().enumerate() {
            if graph.node(node).kind == Kind::Branch {
                break;
            }
            match composed[i] {
                Composing::No => code.extend(self.stage_code(node, node == last)),
                Composing::Starts => code.extend(self.compose_code(node, false)),
                Composing::Continues => code.extend(self.compose_code(node, true)),
            }
            code.extend(self.diamond_code(node));
            // A long chain's pull future nests once per stage (a composed
            // run counts once); a box every few stages keeps rustc's layout
            // query within its depth limit.
            if composed.get(i + 1) != Some(&Composing::Continues) {
                units += 1;
                if units % BOX_EVERY == 0 && node != last {
                    let chain = local("__pipeline_chain", Span::call_site());
                    let private = private_path();
                    code.extend(quote! { let #chain = #private::boxed(#chain); });
                }
            }
        }
        code.extend(self.tail_code(last));
        code
    }

    /// A source at the head of its segment.
    pub(super) fn head_code(&self, node: NodeIndex) -> TokenStream {
        let span = self.graph.node(node).ir.span();
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        let source = local("__pipeline_source", span);
        let chain = local("__pipeline_chain", span);
        let stats = local(&self.stats_var(node).to_string(), span);
        let expr = head_expr(self.graph.node(node), &self.emit_context(node));
        let mut code = quote_spanned! {here=>
            let #source = #expr;
            let #chain = #private_here::head(#source, ::std::sync::Arc::clone(&#stats), #private_here::DEFAULT_CHUNK);
        };
        let long_chunks = self
            .plan
            .segment_of
            .get(&node)
            .is_some_and(|&segment| self.plan.segments[segment].long_chunks);
        if long_chunks {
            let private = private_path();
            code.extend(quote! { let #chain = #private::long_chunks(#chain); });
        }
        code
    }

    /// If `fanout` heads a diamond: its branches, each on its own copy of
    /// the chain's chunks, merged back into one chain.
    pub(super) fn diamond_code(&self, fanout: NodeIndex) -> TokenStream {
        let Some(diamond) = self.plan.diamonds.get(&fanout) else {
            return TokenStream::new();
        };
        let graph = self.graph;
        let private = private_path();
        let chain = local("__pipeline_chain", Span::call_site());
        let up = local("__pipeline_up", Span::call_site());
        let mut code = quote! { let #up = #chain; };
        let vars: Vec<syn::Ident> = (0..diamond.branches.len())
            .map(|i| local(&format!("__pipeline_branch_{i}"), Span::call_site()))
            .collect();
        for (i, branch) in diamond.branches.iter().enumerate() {
            let var = &vars[i];
            let mut body = quote! { let #chain = #private::feed(&#up); };
            for &node in branch {
                body.extend(self.stage_code(node, false));
            }
            code.extend(quote! { let #var = { #body #chain }; });
            if i > 0 {
                // The merge's type check, at this branch's edge into it.
                let span = first_span(&graph.edge(diamond.ends[i]).target);
                let here = Span::mixed_site().located_at(span);
                let private_here = private_path_at(here);
                let first = &vars[0];
                code.extend(quote_spanned! {here=>
                    let #var = #private_here::merged_branch(&#first, #var);
                });
            }
        }
        let list = nested_tuple(&vars);
        // The fan-out's `Clone` check, at its second edge.
        let span = diamond
            .starts
            .get(1)
            .map_or_else(Span::call_site, |&e| first_span(&graph.edge(e).target));
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        code.extend(quote_spanned! {here=>
            let #chain = #private_here::diamond(#up, #list);
        });
        quote! { let #chain = { #code #chain }; }
    }

    /// How the segment's output leaves it, and the closure that runs it.
    pub(super) fn tail_code(&self, last: NodeIndex) -> TokenStream {
        let graph = self.graph;
        let private = private_path();
        let chain = local("__pipeline_chain", Span::call_site());
        let outlet = local("__pipeline_outlet", Span::call_site());
        let control = local("__pipeline_control", Span::call_site());
        let node = graph.node(last);
        if node.kind == Kind::Branch {
            let Some(call) = node.ir.builtin() else {
                return quote!();
            };
            let pick = call.call.args.first();
            let ports: Vec<TokenStream> = node
                .ports
                .iter()
                .map(|port| {
                    let edges = graph.port_outputs(last, &port.to_string());
                    let outputs = edges.iter().map(|&e| self.output(e)).collect();
                    self.broadcast(&edges, outputs, port.span())
                })
                .collect();
            let span = node.ir.span();
            let here = Span::mixed_site().located_at(span);
            let private_here = private_path_at(here);
            let chain_here = local("__pipeline_chain", span);
            let stats = local(&self.stats_var(last).to_string(), span);
            return quote! {
                let #outlet = #private_here::route(
                    #private_here::marker(&#chain_here),
                    #pick,
                    [#(#ports),*],
                    ::std::sync::Arc::clone(&#stats),
                );
                move |#control: #private::Control| #private::drive_into(#chain, #outlet, #control)
            };
        }
        let edges = graph.main_outputs(last);
        if edges.is_empty() {
            return quote! {
                move |#control: #private::Control| #private::drive(#chain, #control)
            };
        }
        let outputs = edges.iter().map(|&e| self.output(e)).collect();
        let broadcast = self.broadcast(&edges, outputs, node.ir.span());
        quote! {
            let #outlet = #broadcast;
            move |#control: #private::Control| #private::drive_into(#chain, #outlet, #control)
        }
    }

    /// The edge `edge` out of a chain emitting what `chain` emits; checked
    /// for a merge of different types at the edge's target.
    pub(super) fn output(&self, edge: EdgeIndex) -> TokenStream {
        let graph = self.graph;
        let (_, to) = graph.ends(edge);
        let span = first_span(&graph.edge(edge).target);
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        let chain = local("__pipeline_chain", span);
        let tx = local(&self.sender_var(to).to_string(), span);
        let stats = local(&self.edge_var(edge).to_string(), span);
        let function = if self.typed.borrow_mut().insert(to) {
            quote_spanned!(here=> first_output)
        } else {
            quote_spanned!(here=> output)
        };
        quote_spanned! {here=>
            #private_here::#function(#private_here::marker(&#chain), ::std::clone::Clone::clone(&#tx), ::std::sync::Arc::clone(&#stats))
        }
    }

    /// Sends to one edge, or clones to several (checked at the second).
    pub(super) fn broadcast(
        &self,
        edges: &[EdgeIndex],
        outputs: Vec<TokenStream>,
        fallback: Span,
    ) -> TokenStream {
        if let [output] = outputs.as_slice() {
            let private = private_path();
            return quote!(#private::single(#output));
        }
        let span = edges
            .get(1)
            .map(|&e| first_span(&self.graph.edge(e).target))
            .unwrap_or(fallback);
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        quote_spanned!(here=> #private_here::fan_out(::std::vec![#(#outputs),*]))
    }

    /// Where a node's `errors` port sends, if it is connected: one edge, or
    /// a clone to each of several.
    pub(super) fn errors_broadcast(&self, node: NodeIndex) -> Option<TokenStream> {
        let graph = self.graph;
        let edges = graph.port_outputs(node, "errors");
        if edges.is_empty() {
            return None;
        }
        let private = private_path();
        let outputs = edges
            .iter()
            .map(|&edge| {
                let (_, to) = graph.ends(edge);
                let tx = self.sender_var(to);
                let stats = self.edge_var(edge);
                quote!(#private::port_output(::std::clone::Clone::clone(&#tx), ::std::sync::Arc::clone(&#stats)))
            })
            .collect();
        Some(self.broadcast(&edges, outputs, graph.node(node).ir.span()))
    }
}
