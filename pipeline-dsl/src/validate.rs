//! Phase 3: the checks a graph must pass before code is generated.
//!
//! Each check adds errors to the shared [`Diagnostics`] and moves on, so
//! one expansion reports every problem it can find.

use proc_macro2::Span;

use crate::diagnostics::Diagnostics;
use crate::graph::{Graph, Kind};
use crate::options::check_options;
use crate::parse::Target;

/// Which chains can still be wired after validation: a chain with an error
/// of its own is left out of the generated code, so its error is not
/// followed by type errors the user did not make.
pub struct Verdict {
    /// For each chain, whether its code can be generated.
    pub chain_ok: Vec<bool>,
}

/// Runs every check.
pub fn validate(
    graph: &Graph,
    options: &[syn::Attribute],
    call_site: Span,
    diagnostics: &mut Diagnostics,
) -> Verdict {
    check_options(options, diagnostics);
    if graph.chains.is_empty() && diagnostics.is_empty() {
        diagnostics.error(
            call_site,
            "this pipeline is empty; write a chain from a source to a sink, \
             such as `iter(items) >> for_each(|item| println!(\"{item:?}\"));`",
        );
    }
    let bound: Vec<String> = graph
        .bindings
        .iter()
        .flatten()
        .map(ToString::to_string)
        .collect();
    for binding in graph.bindings.iter().flatten() {
        diagnostics.error_spanned(
            binding,
            format!(
                "binding `{binding} = ..` is not supported yet; \
                 named nodes arrive with the graph DSL"
            ),
        );
    }
    let mut chain_ok = Vec::new();
    for (chain_index, chain) in graph.chains.iter().enumerate() {
        let errors_before = diagnostics.len();
        let starts_at_graph_construct = chain.first().is_some_and(|&i| {
            matches!(graph.node(i).ast.target, Target::Port { .. })
                || matches!(&graph.node(i).ast.target, Target::Name(n) if bound.iter().any(|b| n == b))
        });
        if chain_index >= 1 && !starts_at_graph_construct && graph.bindings[chain_index].is_none() {
            let first = graph.node(graph.chains[chain_index][0]);
            diagnostics.error(
                first.ast.span(),
                "only one chain per pipeline is supported yet; \
                 fan-out, merge and several chains arrive with the graph DSL",
            );
        }
        check_chain(graph, chain, &bound, diagnostics);
        chain_ok.push(!chain.is_empty() && diagnostics.len() == errors_before);
    }
    Verdict { chain_ok }
}

fn check_chain(
    graph: &Graph,
    chain: &[petgraph::graph::NodeIndex],
    bound: &[String],
    diagnostics: &mut Diagnostics,
) {
    // A statement whose syntax error left no node has been reported.
    let Some(last) = chain.len().checked_sub(1) else {
        return;
    };
    for (position, &index) in chain.iter().enumerate() {
        let node = graph.node(index);
        check_options(&node.ast.options, diagnostics);
        match &node.ast.target {
            Target::Port { owner, port } => {
                diagnostics.error_spanned(
                    &node.ast.tokens,
                    format!(
                        "ports such as `{owner}[{port}]` are not supported yet; \
                         they arrive with the graph DSL"
                    ),
                );
                continue;
            }
            Target::Name(name) if bound.iter().any(|b| name == b) => {
                diagnostics.error_spanned(
                    name,
                    format!(
                        "using the bound name `{name}` as a node is not supported yet; \
                         it arrives with the graph DSL"
                    ),
                );
                continue;
            }
            Target::Builtin { builtin, call } => {
                if !builtin.implemented {
                    diagnostics.error_spanned(
                        &call.func,
                        format!("the built-in `{}` is not supported yet", builtin.name),
                    );
                    continue;
                }
                let args = call.args.len();
                let (min, max) = builtin.arity;
                if args < min || args > max {
                    diagnostics.error(
                        call.paren_token.span.join(),
                        format!(
                            "`{}` takes {}, as in `{}`",
                            builtin.name,
                            match (min, max) {
                                (0, 0) => "no arguments".to_owned(),
                                (1, 1) => "one argument".to_owned(),
                                (a, b) if a == b => format!("{a} arguments"),
                                (a, b) => format!("{a} to {b} arguments"),
                            },
                            builtin.usage
                        ),
                    );
                }
            }
            _ => {}
        }
        let kind = node.kind;
        if position == 0 && chain.len() == 1 {
            diagnostics.error_spanned(&node.ast.tokens, {
                let name = node.ast.display_name();
                match kind {
                    Kind::Source => format!(
                        "`{name}` alone is not a pipeline: add a sink after it, \
                             as in `{name}(..) >> for_each(|item| ..)`"
                    ),
                    Kind::Sink => format!(
                        "`{name}` alone is not a pipeline: put a source before it, \
                             as in `iter(items) >> {name}(..)`"
                    ),
                    _ => format!(
                        "`{name}` alone is not a pipeline: a chain needs a source and a sink, \
                             as in `iter(items) >> {name} >> for_each(|item| ..)`"
                    ),
                }
            });
            continue;
        }
        if position == 0 && !matches!(kind, Kind::Source | Kind::Stage) {
            diagnostics.error_spanned(
                &node.ast.tokens,
                format!(
                    "this chain starts with `{}`, which is {} and needs input; \
                     start it with a source such as `iter(items)`",
                    node.ast.display_name(),
                    kind.described()
                ),
            );
        }
        if position > 0 && kind == Kind::Source {
            diagnostics.error_spanned(
                &node.ast.tokens,
                format!(
                    "`{}` is a source, so it cannot take input; \
                     a source can only start a chain",
                    node.ast.display_name()
                ),
            );
        }
        if position < last && kind == Kind::Sink {
            let next = chain[position + 1];
            let op = graph.edge_op(index, next).cloned().unwrap_or_default();
            diagnostics.error_spanned(
                op,
                format!(
                    "`{}` is a sink, so nothing can follow it; \
                     end the chain at `{}` or use `inspect(..)` to look at items and pass them on",
                    node.ast.display_name(),
                    node.ast.display_name()
                ),
            );
        }
        // A source at the end was already reported as taking input.
        if position == last && matches!(kind, Kind::Transform | Kind::Accumulator | Kind::Branch) {
            diagnostics.error_spanned(
                &node.ast.tokens,
                format!(
                    "this chain ends in `{}`, whose output would go nowhere; \
                     add `>> discard()` to drop it, or end the chain with a sink such as `for_each(..)`",
                    node.ast.display_name()
                ),
            );
        }
    }
}
