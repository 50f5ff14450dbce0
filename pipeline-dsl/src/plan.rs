//! Phase 5: how the checked graph runs, as plain data.
//!
//! The graph is cut into **segments**: maximal runs of nodes where items
//! flow from one stage straight to the next. A segment starts at a source
//! or at an *inlet* (a node fed by a merge, a fan-out, a branch port, an
//! `errors` port, or an option of its input edge) and runs as one fused
//! chain. A fan-out whose branches all merge back into one node is a
//! *diamond*, fused into the fan-out's segment. Within a segment, runs of
//! synchronous built-ins are *composed* into one pass, and a source
//! followed only by cheap built-ins reads *long chunks*.
//!
//! Nothing here makes tokens: [`emit`](crate::emit) reads the plan.
//! [`Plan::describe`] renders it in words, which its unit tests snapshot.

use std::collections::{HashMap, HashSet};
use std::fmt;

use petgraph::graph::{EdgeIndex, NodeIndex};

use crate::graph::{Graph, Kind};
use crate::lower::Op;

/// The most stages composed into one pass: the runtime's
/// `transform::MAX_STEPS`.
pub const COMPOSE_MAX: usize = 16;

/// How the pipeline runs.
pub struct Plan {
    /// The fused chains.
    pub segments: Vec<Segment>,
    /// The segment each node runs in (a diamond's branches run in the
    /// fan-out's).
    pub segment_of: HashMap<NodeIndex, usize>,
    /// Diamonds, by fan-out node.
    pub diamonds: HashMap<NodeIndex, Diamond>,
    /// Nodes fed by an edge (a channel), in node order.
    pub inlets: Vec<NodeIndex>,
    /// Nodes whose stage runs on parallel workers.
    pub parallel: HashSet<NodeIndex>,
    /// Segments in an order where each comes after those that feed it;
    /// segments on a cycle are left out.
    pub order: Vec<usize>,
    /// For each segment, the segments that feed it.
    pub dependencies: Vec<Vec<usize>>,
}

/// A run of nodes fused into one chain.
pub struct Segment {
    /// Its nodes in order (not a diamond's branches).
    pub nodes: Vec<NodeIndex>,
    /// Whether the first node is fed by an edge rather than being a source.
    pub inlet: bool,
    /// Where the stages fused after the head start in `nodes`: 1 when the
    /// first node makes the chain itself (a source, an accumulation or a
    /// parallel stage reading the edge), else 0 (a plain inlet).
    pub stages_from: usize,
    /// For each of `nodes[stages_from..]`, whether it is composed with its
    /// neighbours.
    pub composed: Vec<Composing>,
    /// Whether its source reads long chunks (`Head::with_long_chunks`).
    pub long_chunks: bool,
}

/// A fan-out whose branches all merge back into one node, with nothing on
/// the way that needs an edge: fused into the fan-out's segment.
pub struct Diamond {
    /// The nodes of each branch, in order (a branch may be empty: the
    /// fan-out feeds the merge directly).
    pub branches: Vec<Vec<NodeIndex>>,
    /// Each branch's edge out of the fan-out.
    pub starts: Vec<EdgeIndex>,
    /// Each branch's edge into the merge node.
    pub ends: Vec<EdgeIndex>,
    /// The node the branches merge into.
    pub merge: NodeIndex,
}

/// Whether a stage is composed with its neighbours into one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Composing {
    /// Fused on its own.
    No,
    /// The first of a composed run.
    Starts,
    /// A later stage of a composed run.
    Continues,
}

impl Plan {
    /// Plans a checked graph.
    pub fn new(graph: &Graph) -> Plan {
        let parallel: HashSet<NodeIndex> = graph
            .graph
            .node_indices()
            .filter(|&node| runs_on_workers(graph, node))
            .collect();
        let diamonds = find_diamonds(graph, &parallel);
        let fused_in: HashSet<NodeIndex> = diamonds
            .values()
            .flat_map(|d| d.branches.iter().flatten().copied().chain([d.merge]))
            .collect();
        let is_inlet = |node: NodeIndex| -> bool {
            if fused_in.contains(&node) {
                return false;
            }
            let inputs = graph.inputs(node);
            // An option of the node's input edge (or its workers) gives it
            // an edge of its own.
            let needs_edge = graph.node(node).ir.options.needs_edge() || parallel.contains(&node);
            if needs_edge && !inputs.is_empty() {
                return true;
            }
            // An accumulator with deadlines wakes on them, so it reads from
            // an edge rather than pulling its upstream; one without is fused.
            if graph.node(node).kind == Kind::Accumulator
                && !inputs.is_empty()
                && has_deadlines(graph, node)
            {
                return true;
            }
            match inputs.as_slice() {
                [] => false,
                [edge] => {
                    let (from, _) = graph.ends(*edge);
                    graph.edge(*edge).port.is_some()
                        || graph.node(from).kind == Kind::Branch
                        || graph.main_outputs(from).len() > 1
                }
                _ => true,
            }
        };
        let inlets: Vec<NodeIndex> = graph
            .graph
            .node_indices()
            .filter(|&n| is_inlet(n))
            .collect();
        let mut segments = Vec::new();
        let mut segment_of = HashMap::new();
        for head in graph.graph.node_indices() {
            let starts = graph.inputs(head).is_empty() || is_inlet(head);
            if !starts {
                continue;
            }
            let mut nodes = vec![head];
            let mut inner = Vec::new();
            let mut current = head;
            while graph.node(current).kind != Kind::Branch {
                let next = match diamonds.get(&current) {
                    Some(diamond) => {
                        inner.extend(diamond.branches.iter().flatten().copied());
                        diamond.merge
                    }
                    None => {
                        let outputs = graph.main_outputs(current);
                        let [edge] = outputs.as_slice() else { break };
                        graph.ends(*edge).1
                    }
                };
                if is_inlet(next) || nodes.contains(&next) {
                    break;
                }
                nodes.push(next);
                current = next;
            }
            for &node in nodes.iter().chain(&inner) {
                segment_of.insert(node, segments.len());
            }
            let inlet = !graph.inputs(head).is_empty();
            let own_head =
                !inlet || graph.node(head).kind == Kind::Accumulator || parallel.contains(&head);
            let stages_from = usize::from(own_head);
            let composable = |node: NodeIndex| composable(graph, &parallel, node);
            let composed = composed_runs(&nodes[stages_from..], &diamonds, composable);
            let long_chunks = !inlet && long_chunks(graph, &nodes, &diamonds, composable);
            segments.push(Segment {
                nodes,
                inlet,
                stages_from,
                composed,
                long_chunks,
            });
        }
        let dependencies: Vec<Vec<usize>> = segments
            .iter()
            .map(|segment| {
                if !segment.inlet {
                    return Vec::new();
                }
                graph
                    .inputs(segment.nodes[0])
                    .into_iter()
                    .filter_map(|edge| segment_of.get(&graph.ends(edge).0).copied())
                    .collect()
            })
            .collect();
        let order = order(&dependencies);
        Plan {
            segments,
            segment_of,
            diamonds,
            inlets,
            parallel,
            order,
            dependencies,
        }
    }

    /// Whether `node`'s stage runs on parallel workers.
    pub fn is_parallel(&self, node: NodeIndex) -> bool {
        self.parallel.contains(&node)
    }

    /// The one edge into `node` if it is fused to the node before it.
    pub fn fused_input(&self, graph: &Graph, node: NodeIndex) -> Option<EdgeIndex> {
        let first_of_segment = self
            .segment_of
            .get(&node)
            .is_none_or(|&segment| self.segments[segment].nodes.first() == Some(&node));
        match graph.inputs(node).as_slice() {
            [edge] if !first_of_segment => Some(*edge),
            _ => None,
        }
    }

    /// The plan in words, one segment per line, for tests and debugging:
    /// `0: iter >> [map >> filter >> for_each] (long chunks)`, with a
    /// composed run in brackets, `inlet` before a segment fed by an edge,
    /// `(workers)` after a parallel stage, and a diamond as
    /// `<a | b> merge`.
    pub fn describe(&self, graph: &Graph) -> String {
        let mut lines = Vec::new();
        for &index in &self.order {
            let segment = &self.segments[index];
            let mut line = format!("{index}: ");
            if segment.inlet {
                line.push_str("inlet ");
            }
            let name = |node: NodeIndex| {
                let mut name = graph.node(node).name.clone();
                if self.is_parallel(node) {
                    name.push_str(" (workers)");
                }
                name
            };
            let mut words = Vec::new();
            for (i, &node) in segment.nodes.iter().enumerate() {
                let at = i.checked_sub(segment.stages_from);
                let composing = at
                    .and_then(|at| segment.composed.get(at))
                    .copied()
                    .unwrap_or(Composing::No);
                let next = at
                    .and_then(|at| segment.composed.get(at + 1))
                    .copied()
                    .unwrap_or(Composing::No);
                let closes = composing != Composing::No && next != Composing::Continues;
                let mut word = String::new();
                if composing == Composing::Starts {
                    word.push('[');
                }
                word.push_str(&name(node));
                if closes {
                    word.push(']');
                }
                words.push(word);
                if let Some(diamond) = self.diamonds.get(&node) {
                    let branches: Vec<String> = diamond
                        .branches
                        .iter()
                        .map(|branch| {
                            if branch.is_empty() {
                                "-".to_owned()
                            } else {
                                branch
                                    .iter()
                                    .map(|&n| name(n))
                                    .collect::<Vec<_>>()
                                    .join(" >> ")
                            }
                        })
                        .collect();
                    words.push(format!("<{}>", branches.join(" | ")));
                }
            }
            line.push_str(&words.join(" >> "));
            if segment.long_chunks {
                line.push_str(" (long chunks)");
            }
            lines.push(line);
        }
        lines.join("\n")
    }
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field("segments", &self.segments.len())
            .field("order", &self.order)
            .finish_non_exhaustive()
    }
}

/// Segments in an order where each comes after those it depends on;
/// segments on a cycle are left out.
fn order(dependencies: &[Vec<usize>]) -> Vec<usize> {
    let mut order = Vec::new();
    let mut placed = HashSet::new();
    loop {
        let before = order.len();
        for (index, needs) in dependencies.iter().enumerate() {
            if !placed.contains(&index) && needs.iter().all(|d| placed.contains(d)) {
                placed.insert(index);
                order.push(index);
            }
        }
        if order.len() == before {
            return order;
        }
    }
}

/// Whether `node` runs on workers: its own `parallel`, or the pipeline's
/// `#![parallel = ..]`, which applies to every transform that can run on
/// workers (see [`Graph::pipeline_parallel_applies`]).
fn runs_on_workers(graph: &Graph, node: NodeIndex) -> bool {
    graph.node(node).ir.options.parallel.is_some()
        || (graph.options.parallel.is_some() && graph.pipeline_parallel_applies(node))
}

/// Whether `node` is a synchronous built-in that can be composed into one
/// pass with the ones next to it: its operator says so, and nothing is set
/// on it that a composed pass would not honour (options, an `errors` port,
/// workers).
fn composable(graph: &Graph, parallel: &HashSet<NodeIndex>, node: NodeIndex) -> bool {
    let Some(call) = graph.node(node).ir.builtin() else {
        return false;
    };
    (call.op.composable)(call)
        && graph.node(node).ir.options.is_empty()
        && graph.options.is_empty()
        && graph.port_outputs(node, "errors").is_empty()
        && !parallel.contains(&node)
}

/// Whether each of `stages` is composed with its neighbours into one pass:
/// runs of two or more adjacent composable built-ins with no diamond
/// between them, at most [`COMPOSE_MAX`] long (a longer one is cut).
fn composed_runs(
    stages: &[NodeIndex],
    diamonds: &HashMap<NodeIndex, Diamond>,
    composable: impl Fn(NodeIndex) -> bool,
) -> Vec<Composing> {
    let composable: Vec<bool> = stages.iter().map(|&n| composable(n)).collect();
    // Whether stage `i` may continue the run of the stage before it.
    let joins = |i: usize| {
        i > 0 && composable[i] && composable[i - 1] && !diamonds.contains_key(&stages[i - 1])
    };
    let mut runs = vec![Composing::No; stages.len()];
    let mut length = 0;
    for (i, run) in runs.iter_mut().enumerate() {
        if joins(i) && length > 0 && length < COMPOSE_MAX {
            *run = Composing::Continues;
            length += 1;
        } else if i + 1 < stages.len() && joins(i + 1) {
            *run = Composing::Starts;
            length = 1;
        } else {
            length = 0;
        }
    }
    runs
}

/// Whether a source's segment reads long chunks: when nothing but
/// composable built-ins follow the source, up to a fused accumulation or a
/// composed sink that ends the segment. Such a chain does little per item,
/// and reading its input in longer runs was measured to pay
/// (`BENCHMARKS.md`); a stage of the user's, an async one or an edge after
/// it keeps chunks of 512.
fn long_chunks(
    graph: &Graph,
    nodes: &[NodeIndex],
    diamonds: &HashMap<NodeIndex, Diamond>,
    composable: impl Fn(NodeIndex) -> bool,
) -> bool {
    if nodes.iter().any(|node| diamonds.contains_key(node)) {
        return false;
    }
    for (i, &node) in nodes.iter().enumerate().skip(1) {
        if graph.node(node).kind == Kind::Accumulator {
            return true;
        }
        if !composable(node) {
            return false;
        }
        if i + 1 == nodes.len() {
            return graph.node(node).kind == Kind::Sink;
        }
    }
    false
}

/// Whether an accumulate node has a deadline to wake for (`max_latency`
/// or `ttl`); one that cannot be read is assumed to.
fn has_deadlines(graph: &Graph, node: NodeIndex) -> bool {
    match graph.node(node).ir.builtin().and_then(|call| call.spec()) {
        Some(spec) => spec.max_latency.is_some() || spec.ttl.is_some(),
        None => true,
    }
}

/// The fan-outs whose branches all merge back into one node with nothing
/// on the way that needs an edge of its own: no option on the way, no
/// accumulator, branch or parallel stage, no bare-named stage (whose
/// `#[stage(..)]` defaults might ask for an edge, which the macro cannot
/// see), and the merge node fed by these branches alone.
fn find_diamonds(graph: &Graph, parallel: &HashSet<NodeIndex>) -> HashMap<NodeIndex, Diamond> {
    let own_edge = |node: NodeIndex| {
        graph.node(node).ir.options.needs_edge()
            || parallel.contains(&node)
            || matches!(
                graph.node(node).kind,
                Kind::Accumulator | Kind::Branch | Kind::Source
            )
    };
    // A bare-named stage may hop by its defaults, and `through` drives the
    // chain before it itself: either takes its chain away from the feed.
    let bare = |node: NodeIndex| match &graph.node(node).ir.op {
        Op::Name(_) | Op::Path(_) => true,
        Op::Builtin(call) => call.op.wraps_chain,
        _ => false,
    };
    let mut diamonds = HashMap::new();
    for fanout in graph.graph.node_indices() {
        if graph.node(fanout).kind == Kind::Branch {
            continue;
        }
        let starts = graph.main_outputs(fanout);
        if starts.len() < 2 {
            continue;
        }
        let mut branches = Vec::new();
        let mut ends = Vec::new();
        let mut merge = None;
        let mut ok = true;
        for &start in &starts {
            let mut branch = Vec::new();
            let mut edge = start;
            loop {
                let (_, next) = graph.ends(edge);
                if graph.inputs(next).len() > 1 {
                    if merge.is_some_and(|m| m != next) {
                        ok = false;
                    }
                    merge = Some(next);
                    ends.push(edge);
                    break;
                }
                let outputs = graph.main_outputs(next);
                if own_edge(next) || bare(next) || branch.contains(&next) || outputs.len() != 1 {
                    ok = false;
                    break;
                }
                branch.push(next);
                edge = outputs[0];
            }
            if !ok {
                break;
            }
            branches.push(branch);
        }
        let Some(merge) = merge.filter(|_| ok) else {
            continue;
        };
        if graph.inputs(merge).len() != starts.len() || own_edge(merge) {
            continue;
        }
        diamonds.insert(
            fanout,
            Diamond {
                branches,
                starts,
                ends,
                merge,
            },
        );
    }
    diamonds
}

#[cfg(test)]
mod tests {
    use proc_macro2::{Span, TokenStream};
    use quote::quote;

    use super::*;
    use crate::diagnostics::Diagnostics;

    /// The plan of a pipeline the checks accept, in words (the inline
    /// snapshots below are `Plan::describe`'s output).
    fn plan_of(tokens: TokenStream) -> String {
        let mut diagnostics = Diagnostics::new();
        let ast = crate::parse::parse(tokens, &mut diagnostics);
        let graph = Graph::build(crate::lower::lower(ast), &mut diagnostics);
        crate::check::check(&graph, Span::call_site(), &mut diagnostics);
        assert!(diagnostics.is_empty(), "{:?}", diagnostics.messages());
        Plan::new(&graph).describe(&graph)
    }

    #[test]
    fn cheap_built_ins_compose_into_one_pass_and_the_source_reads_long_chunks() {
        insta::assert_snapshot!(
            plan_of(quote! {
                iter(v) >> skip(1) >> map(|x| x + 1) >> filter(|x| *x > 2) >> take(9) >> for_each(|x| drop(x));
            }),
            @"0: iter >> [skip >> map >> filter >> take >> for_each] (long chunks)"
        );
    }

    #[test]
    fn a_users_stage_or_an_async_closure_breaks_a_composed_run() {
        insta::assert_snapshot!(
            plan_of(quote! {
                iter(v) >> map(|x| x) >> filter(|x| true) >> parse >> inspect(|x| ()) >> for_each(|x| async move { drop(x) });
            }),
            @"0: iter >> [map >> filter] >> parse >> inspect >> for_each"
        );
    }

    #[test]
    fn an_option_or_an_errors_port_keeps_a_built_in_out_of_a_composed_run() {
        insta::assert_snapshot!(
            plan_of(quote! {
                checked = iter(v) >> map(|x| x) >> #[on_error = ignore] map(|x| x) >> map(|x| x) >> ok();
                checked >> discard();
                checked[errors] >> discard();
            }),
            @"
            0: iter >> map >> map#2 >> map#3 >> checked >> discard
            1: inlet discard#2
        "
        );
    }

    #[test]
    fn a_run_longer_than_the_runtime_composes_is_cut() {
        let maps = (0..20).map(|_| quote!(>> map(|x| x)));
        let plan = plan_of(quote! { iter(v) #(#maps)* >> discard(); });
        assert!(plan.starts_with("0: iter >> [map >> map#2"), "{plan}");
        assert!(plan.contains("map#16] >> [map#17"), "{plan}");
        assert!(plan.ends_with("map#20] >> discard"), "{plan}");
    }

    #[test]
    fn an_accumulation_with_a_deadline_reads_an_edge_and_one_without_is_fused() {
        insta::assert_snapshot!(
            plan_of(quote! {
                iter(v) >> accumulate(key = |x| *x, max_items = 10, max_latency = 5ms) >> discard();
            }),
            @"
            0: iter
            1: inlet accumulate >> discard
        "
        );
        insta::assert_snapshot!(
            plan_of(quote! {
                iter(v) >> map(|x| x) >> accumulate(key = |x| *x, max_items = 10) >> discard();
            }),
            @"0: iter >> map >> accumulate >> discard (long chunks)"
        );
    }

    #[test]
    fn a_parallel_stage_reads_an_edge_but_take_never_runs_on_workers() {
        insta::assert_snapshot!(
            plan_of(quote! {
                #![parallel = 4]
                iter(v) >> map(|x| x) >> take(3) >> discard();
            }),
            @"
            0: iter
            1: inlet map (workers) >> take >> discard
        "
        );
    }

    #[test]
    fn a_fan_out_that_merges_back_is_a_diamond_in_one_segment() {
        insta::assert_snapshot!(
            plan_of(quote! {
                numbers = iter(v);
                sum = for_each(|x| drop(x));
                numbers >> map(|x| x * 2) >> sum;
                numbers >> filter(|x| *x > 1) >> sum;
                numbers >> sum;
            }),
            @"0: numbers >> <map | filter | -> >> sum"
        );
    }

    #[test]
    fn a_branch_feeds_a_segment_per_port_in_dependency_order() {
        insta::assert_snapshot!(
            plan_of(quote! {
                split = iter(v) >> branch(|x, [big, small]| if *x > 1 { big } else { small });
                split[big] >> map(|x| x) >> discard();
                split[small] >> discard();
            }),
            @"
            0: iter >> split
            1: inlet map >> discard
            2: inlet discard#2
        "
        );
    }
}
