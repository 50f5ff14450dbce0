//! After an error: what can still be emitted so the IDE keeps checking
//! the user's code (the stages before the first error of a segment, and
//! the expressions of nodes left out).

use std::collections::HashSet;

use petgraph::graph::NodeIndex;
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::Expr;

use super::accumulate::Intake;
use super::stage::head_expr;
use super::{Emitter, local, private_path};
use crate::check::Verdict;
use crate::graph::Kind;
use crate::lower::Op;
use crate::ops::{Args, fields};

impl Emitter<'_> {
    /// The stages of segment `index` before its first node with an error,
    /// and those nodes.
    pub(super) fn prefix_code(
        &self,
        index: usize,
        verdict: &Verdict,
    ) -> (TokenStream, Vec<NodeIndex>) {
        let graph = self.graph;
        let segment = &self.plan.segments[index];
        let chain = local("__pipeline_chain", Span::call_site());
        let mut code = TokenStream::new();
        let mut nodes = Vec::new();
        let mut stages = segment.nodes.as_slice();
        let head = segment.nodes[0];
        if segment.inlet && graph.node(head).kind == Kind::Accumulator {
            if !verdict.ok(head) {
                return (TokenStream::new(), nodes);
            }
            code.extend(self.accumulate_code(head, Intake::Edge));
            nodes.push(head);
            stages = &stages[1..];
        } else if segment.inlet && self.plan.is_parallel(head) {
            if !verdict.ok(head) {
                return (TokenStream::new(), nodes);
            }
            code.extend(self.parallel_code(head, false));
            nodes.push(head);
            stages = &stages[1..];
        } else if segment.inlet {
            let rx = self.receiver_var(head);
            let private = private_path();
            code.extend(quote! {
                let #chain = #private::inlet(#rx, #private::DEFAULT_CHUNK);
            });
        } else {
            if !verdict.ok(head) {
                return (TokenStream::new(), nodes);
            }
            code.extend(self.head_code(head));
            nodes.push(head);
            stages = &stages[1..];
        }
        if stages.first() != Some(&head) && nodes.contains(&head) {
            if self.diamond_ok(head, verdict) {
                code.extend(self.diamond_code(head));
            } else if self.plan.diamonds.contains_key(&head) {
                stages = &[];
            }
        }
        for &node in stages {
            if !verdict.ok(node) || graph.node(node).kind == Kind::Branch {
                break;
            }
            code.extend(self.stage_code(node, false));
            nodes.push(node);
            if self.plan.diamonds.contains_key(&node) {
                if !self.diamond_ok(node, verdict) {
                    break;
                }
                code.extend(self.diamond_code(node));
            }
        }
        code.extend(quote! { let _ = &#chain; });
        (code, nodes)
    }

    /// Whether every node of the diamond `fanout` heads is free of errors,
    /// so its code can be emitted as a prefix.
    pub(super) fn diamond_ok(&self, fanout: NodeIndex, verdict: &Verdict) -> bool {
        self.plan
            .diamonds
            .get(&fanout)
            .is_some_and(|d| d.branches.iter().flatten().all(|&n| verdict.ok(n)))
    }

    /// After an error: the expressions of nodes that were not emitted as
    /// part of a segment, so the IDE still sees them. Closures passed to
    /// builtins are left out, since without their upstream their
    /// parameter types are unknown.
    pub(super) fn leftover_expressions(&self, covered: &HashSet<NodeIndex>) -> TokenStream {
        let mut code = TokenStream::new();
        for index in self.graph.graph.node_indices() {
            if covered.contains(&index) {
                continue;
            }
            let node = self.graph.node(index);
            match &node.ir.op {
                Op::Builtin(call) if matches!(call.args, Args::Io(_)) => {
                    for arg in io_arguments(&call.call) {
                        code.extend(quote! { let _ = &(#arg); });
                    }
                }
                Op::Builtin(call) => {
                    for arg in fields::code_arguments(&call.call) {
                        code.extend(quote! { let _ = &(#arg); });
                    }
                }
                Op::Value(expr) => code.extend(quote! { let _ = #expr; }),
                // At the head of a chain a name is a value (a source made
                // before the macro): used, so it draws no warning.
                Op::Name(_) | Op::Path(_) if self.graph.inputs(index).is_empty() => {
                    let value = head_expr(node, &self.emit_context(index));
                    code.extend(quote! { let _ = &#value; });
                }
                _ => {}
            }
        }
        code
    }
}

/// The Rust expressions among an IO built-in's arguments (the reader,
/// the writer, an inner source's), for the IDE after an error: not the
/// literals, nor a built-in's name, which is not in scope.
pub(super) fn io_arguments(call: &syn::ExprCall) -> Vec<TokenStream> {
    call.args
        .iter()
        .flat_map(|arg| match arg {
            Expr::Assign(_) | Expr::Lit(_) | Expr::Closure(_) => Vec::new(),
            Expr::Call(inner) if crate::ops::operator_of(inner).is_some() => io_arguments(inner),
            other => vec![other.to_token_stream()],
        })
        .collect()
}
