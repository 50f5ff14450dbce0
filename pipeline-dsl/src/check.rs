//! Phase 4: the checks a graph must pass before code is generated.
//!
//! Each check adds errors to the shared [`Diagnostics`] and moves on, so
//! one expansion reports every problem it can find. Checks that need types
//! (an edge between mismatched stages, a fan-out of a type that cannot be
//! cloned, a merge of different types) are left to the compiler, through
//! the bounds the generated code puts at the user's tokens.

use std::collections::HashSet;

use petgraph::Direction;
use petgraph::algo::tarjan_scc;
use petgraph::graph::NodeIndex;
use petgraph::visit::{Dfs, EdgeRef};
use proc_macro2::Span;

use crate::diagnostics::{Diagnostics, did_you_mean};
use crate::graph::{Graph, Kind, Node, and_list};
use crate::lower::Op;
use crate::ops::Status;
use crate::options::{self, DECLARATIONS, Field, Options};

/// What can still be wired after the checks: a node with an error of its
/// own is left out of the generated code (with everything downstream of
/// it), so its error is not followed by type errors the user did not make.
pub struct Verdict {
    /// For each node (by index), whether it passed every check.
    pub node_ok: Vec<bool>,
}

impl Verdict {
    /// Whether `node` passed every check.
    pub fn ok(&self, node: NodeIndex) -> bool {
        self.node_ok.get(node.index()).copied().unwrap_or(false)
    }
}

/// Runs every check, reporting the errors found while lowering each node
/// when the check reaches it.
pub fn check(graph: &Graph, call_site: Span, diagnostics: &mut Diagnostics) -> Verdict {
    let mut checker = Checker {
        graph,
        diagnostics,
        bad: HashSet::new(),
    };
    checker.diagnostics.extend(&graph.option_problems);
    checker.pipeline_options_fit(&graph.options);
    if graph.graph.node_count() == 0 && checker.diagnostics.is_empty() {
        checker.diagnostics.error(
            call_site,
            "this pipeline is empty; write a chain from a source to a sink, \
             such as `iter(items) >> for_each(|item| println!(\"{item:?}\"));`",
        );
    }
    for index in graph.graph.node_indices() {
        checker.node(index);
    }
    checker.one_output();
    for edge in graph.graph.edge_references() {
        checker.edge(edge.id());
    }
    let on_cycles = checker.cycles();
    checker.reachability(&on_cycles);
    let node_ok = graph
        .graph
        .node_indices()
        .map(|index| !checker.bad.contains(&index))
        .collect();
    Verdict { node_ok }
}

struct Checker<'a> {
    graph: &'a Graph,
    diagnostics: &'a mut Diagnostics,
    bad: HashSet<NodeIndex>,
}

impl Checker<'_> {
    /// A pipeline is read as one stream: at most one `output()`.
    fn one_output(&mut self) {
        let outputs: Vec<NodeIndex> = self
            .graph
            .graph
            .node_indices()
            .filter(|&n| {
                self.graph
                    .node(n)
                    .ir
                    .builtin()
                    .is_some_and(|call| call.op.stream_output)
            })
            .collect();
        for &extra in outputs.iter().skip(1) {
            self.diagnostics.error(
                self.graph.node(extra).ir.span(),
                "a pipeline has one `output()`, read with `into_stream()`; merge the chains into one node that ends in `output()`, as in `out = output(); a >> out; b >> out;`",
            );
            self.bad.insert(extra);
        }
    }

    fn error(&mut self, node: NodeIndex, tokens: impl quote::ToTokens, message: String) {
        self.bad.insert(node);
        self.diagnostics.error_spanned(tokens, message);
    }

    /// Checks of one node on its own: its call, its options, its ports,
    /// and whether its role fits its place in the graph.
    fn node(&mut self, index: NodeIndex) {
        let graph = self.graph;
        let node = graph.node(index);
        let problems = &node.ir.problems;
        self.diagnostics.extend(&problems.options);
        if problems.options.is_empty() {
            let errors_before = self.diagnostics.len();
            self.options_fit(index, &node.ir.options);
            if self.diagnostics.len() > errors_before {
                self.bad.insert(index);
            }
        } else {
            self.bad.insert(index);
        }
        self.diagnostics.extend(&problems.arguments);
        if !problems.arguments.is_empty() {
            self.bad.insert(index);
        }
        if problems.status != Status::Read {
            self.bad.insert(index);
            return;
        }
        let inputs = graph.inputs(index).len();
        let outputs = graph.main_outputs(index).len();
        if node.excused {
            self.bad.insert(index);
        }
        let name = node.ir.display_name();
        if inputs == 0 && outputs == 0 && node.alone && node.binding.is_none() {
            // The node as it is written in a chain: `map(..)`, `discard()`,
            // `parse` (a bare name is read as a `#[stage]` item).
            let written = written(&node.ir.op);
            let message = match node.kind {
                Kind::Source => format!(
                    "`{name}` alone is not a pipeline: add a sink after it, \
                     as in `{written} >> for_each(|item| ..)`"
                ),
                Kind::Sink => format!(
                    "`{name}` alone is not a pipeline: put a source before it, \
                     as in `iter(items) >> {written}`"
                ),
                _ => format!(
                    "`{name}` alone is not a pipeline: a chain needs a source and a sink, \
                     as in `iter(items) >> {written} >> for_each(|item| ..)`"
                ),
            };
            self.error(index, node, message);
            return;
        }
        if inputs == 0 && !node.excused && !matches!(node.kind, Kind::Source | Kind::Stage) {
            let message = match &node.binding {
                Some(binding) if node.alone => format!(
                    "`{binding}` is never fed: no chain leads into it, and {} needs input; \
                     feed it, as in `source >> {binding};`",
                    node.kind.described()
                ),
                _ => format!(
                    "this chain starts with `{name}`, which is {} and needs input; \
                     start it with a source such as `iter(items)`",
                    node.kind.described()
                ),
            };
            self.error(index, node, message);
        }
        if outputs == 0 && !node.excused && matches!(node.kind, Kind::Transform | Kind::Accumulator)
        {
            let shown = node.binding_or_name();
            self.error(
                index,
                node,
                format!(
                    "the output of `{shown}` goes nowhere; \
                     add `>> discard()` to drop it, or send it to a sink such as `for_each(..)`"
                ),
            );
        }
        if outputs == 0
            && inputs == 0
            && !node.excused
            && node.kind == Kind::Source
            && !(node.alone && node.binding.is_none())
        {
            let shown = node.binding_or_name();
            let written = match (&node.binding, &node.ir.op) {
                (None, Op::Builtin(_)) => format!("{shown}(..)"),
                _ => shown.clone(),
            };
            self.error(
                index,
                node,
                format!(
                    "the items of `{shown}` go nowhere; \
                     send them to a sink, as in `{written} >> for_each(|item| ..);`"
                ),
            );
        }
        if node.kind == Kind::Branch {
            self.branch_ports_used(index);
        }
    }

    /// Whether each option makes sense for the node it is written on.
    fn options_fit(&mut self, index: NodeIndex, node_options: &Options) {
        let graph = self.graph;
        let node = graph.node(index);
        let shown = node.binding_or_name();
        let takes_input = !graph.inputs(index).is_empty();
        let pipeline_parallel = graph.options.parallel.is_some();
        let builtin = node.ir.builtin().map(|call| call.op);
        let errors_connected = !graph.port_outputs(index, "errors").is_empty();
        for (declaration, span) in node_options.keys() {
            let key = declaration.name;
            let wraps_chain = builtin.is_some_and(|op| op.wraps_chain);
            let runs_as_one = builtin.is_some_and(|op| op.runs_as_one.is_some());
            let on_workers = matches!(declaration.field, Field::Parallel | Field::Ordering);
            let problem = if declaration.about_calls && wraps_chain {
                let edge_options = DECLARATIONS
                    .iter()
                    .filter(|d| d.sets_up_input_edge)
                    .map(|d| format!("`{}`", d.name));
                Some(format!(
                    "`{key}` is about a stage's calls, and `{}` hands items to a sink and reads its stream; it takes {} only",
                    builtin.map_or("", |op| op.name),
                    and_list(edge_options)
                ))
            } else if declaration.field == Field::Parallel
                && matches!(node.kind, Kind::Source | Kind::Accumulator | Kind::Branch)
            {
                Some(format!(
                    "`{key}` runs several workers of a stage; `{shown}` is {} and runs as one",
                    node.kind.described()
                ))
            } else if on_workers && runs_as_one {
                Some(format!(
                    "`{shown}` {}, so it runs as one, not on parallel workers; remove `{key}`",
                    builtin.and_then(|op| op.runs_as_one).unwrap_or_default()
                ))
            } else if declaration.field == Field::Ordering
                && node_options.parallel.is_none()
                && !(pipeline_parallel && graph.pipeline_parallel_applies(index))
            {
                Some(format!(
                    "`{key}` orders the outputs of parallel workers; add `#[{} = N]` to `{shown}`, or remove `{key}`",
                    options::name_of(Field::Parallel)
                ))
            } else if declaration.sets_up_input_edge && !takes_input {
                Some(format!(
                    "`{key}` sets up a node's input edge, and `{shown}` takes no input"
                ))
            } else if declaration.about_failed_items && (node.kind == Kind::Source || !takes_input)
            {
                Some(format!(
                    "`{key}` is about items a stage fails, and `{shown}` takes no items"
                ))
            } else if declaration.about_failed_items && builtin.is_some_and(|op| !op.calls_per_item)
            {
                // A closure passed to `map` can panic, which fails its
                // item; an accumulator or a branch does not run per item
                // like that.
                Some(format!(
                    "`{key}` is about items a stage fails, and `{}` does not fail items",
                    builtin.map_or("", |op| op.name)
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                self.bad.insert(index);
                self.diagnostics.error(span, problem);
            }
        }
        let dead_letters = node_options.dead_letters();
        if let Some(span) = dead_letters.filter(|_| !errors_connected) {
            self.bad.insert(index);
            let fix = match &node.binding {
                Some(name) => {
                    format!("connect it, as in `{name}[errors] >> for_each(|failed| ..);`")
                }
                None => format!(
                    "bind the node, as in `name = .. >> {shown};`, and connect `name[errors]`"
                ),
            };
            self.diagnostics.error(
                span,
                format!(
                    "`dead_letter` sends failed items to the `errors` port of `{shown}`, which is not connected; {fix}"
                ),
            );
        }
    }

    /// `#![parallel = ..]` runs every transform on workers, and an ordering
    /// orders them; a key is one node's items', so `by_key` is set on the
    /// node.
    fn pipeline_options_fit(&mut self, pipeline_options: &Options) {
        for (declaration, span) in pipeline_options.keys() {
            let key = declaration.name;
            let problem = if declaration.node_only {
                Some(format!(
                    "`{key}` names a key of one node's items, so it is set on that node, \
                     as in `#[{key}(|item: &T| key)] name`, not for the whole pipeline"
                ))
            } else if declaration.field == Field::Ordering && pipeline_options.parallel.is_none() {
                Some(format!(
                    "`{key}` orders the outputs of parallel workers; add `#![{} = N]` before it, or remove `{key}`",
                    options::name_of(Field::Parallel)
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                self.diagnostics.error(span, problem);
            }
        }
    }

    /// Every declared port of a branch must lead somewhere.
    fn branch_ports_used(&mut self, index: NodeIndex) {
        let graph = self.graph;
        let node = graph.node(index);
        let shown = node.binding_or_name();
        let declared: Vec<String> = node.ports.iter().map(ToString::to_string).collect();
        if node.binding.is_none() {
            // No port of an unbound branch can be written, let alone
            // connected: one error for them all, at the branch (a port
            // declared twice was reported, and is named once here).
            let unique: Vec<&String> = declared
                .iter()
                .enumerate()
                .filter(|(i, port)| !declared[..*i].contains(port))
                .map(|(_, port)| port)
                .collect();
            if unique.is_empty() {
                return;
            }
            let ports = and_list(unique.iter().map(|p| format!("`{p}`")));
            let connect = and_list(unique.iter().map(|p| format!("`split[{p}]`")));
            let (noun, their) = if unique.len() == 1 {
                ("port", "its")
            } else {
                ("ports", "their")
            };
            let message = format!(
                "this branch is not bound to a name, so its {noun} {ports} cannot be connected \
                 and {their} items would be lost; bind it, as in `split = .. >> branch(..);`, \
                 and connect {connect}"
            );
            match node.ir.builtin() {
                Some(call) => self.error(index, &call.call.func, message),
                None => self.error(index, node, message),
            }
            return;
        }
        // A misspelt port was reported; the port it was meant to be is
        // probably the one that looks unconnected.
        let misspelt = graph
            .mentioned_ports
            .iter()
            .any(|(owner, port)| *owner == index && !declared.contains(port));
        if misspelt {
            return;
        }
        for port in &node.ports {
            let mentioned = graph.mentioned_ports.contains(&(index, port.to_string()));
            if !mentioned {
                self.error(
                    index,
                    port,
                    format!(
                        "the port `{port}` of `{shown}` is never connected, so its items would be lost; \
                         connect it, as in `{shown}[{port}] >> discard();`"
                    ),
                );
            }
        }
    }

    /// Checks of one edge: what it leaves from and what it enters.
    fn edge(&mut self, edge: petgraph::graph::EdgeIndex) {
        let graph = self.graph;
        let (from, to) = graph.ends(edge);
        let weight = graph.edge(edge);
        let (source, target) = (graph.node(from), graph.node(to));
        if target.kind == Kind::Source && !unsupported(target) && !unsupported(source) {
            self.error(
                to,
                &weight.target,
                format!(
                    "`{}` is a source, so it cannot take input; \
                     a source can only start a chain",
                    target.ir.display_name()
                ),
            );
        }
        if unsupported(source) {
            return;
        }
        match &weight.port {
            None => self.main_output(from, source, weight),
            Some(port) => self.port_output(from, source, port),
        }
    }

    fn main_output(&mut self, from: NodeIndex, source: &Node, edge: &crate::graph::Edge) {
        let shown = source.binding_or_name();
        match source.kind {
            Kind::Sink => self.error(
                from,
                &edge.op,
                format!(
                    "`{shown}` is a sink, so nothing can follow it; \
                     end the chain at `{shown}` or use `inspect(..)` to look at items and pass them on"
                ),
            ),
            // A branch without ports was reported as malformed.
            Kind::Branch if !source.ports.is_empty() => {
                let ports: Vec<String> = source.ports.iter().map(|p| format!("`{shown}[{p}]`")).collect();
                self.error(
                    from,
                    &edge.op,
                    format!(
                        "`{shown}` is a branch, so its items leave through its ports; \
                         connect {} instead",
                        ports.join(" and ")
                    ),
                );
            }
            _ => {}
        }
    }

    fn port_output(&mut self, from: NodeIndex, source: &Node, port: &syn::Ident) {
        let shown = source.binding_or_name();
        let name = port.to_string();
        if source.kind == Kind::Branch {
            let declared: Vec<String> = source.ports.iter().map(ToString::to_string).collect();
            if !declared.contains(&name) {
                let hint = did_you_mean(&name, declared.iter().map(String::as_str))
                    .map(|best| format!("did you mean `{best}`?"))
                    .unwrap_or_else(|| {
                        format!(
                            "its ports are {}",
                            declared
                                .iter()
                                .map(|p| format!("`{p}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    });
                self.error(
                    from,
                    port,
                    format!("`{shown}` has no port `{name}`; {hint}"),
                );
            }
            return;
        }
        if name != "errors" {
            let hint = if did_you_mean(&name, ["errors"]).is_some() {
                "did you mean `errors`?".to_owned()
            } else {
                "the only port of a stage is `errors`, its failed items".to_owned()
            };
            self.error(
                from,
                port,
                format!("`{shown}` has no port `{name}`; {hint}"),
            );
            return;
        }
        let builtin = source.ir.builtin().map(|call| call.op);
        if source.kind == Kind::Source || self.graph.inputs(from).is_empty() {
            self.error(
                from,
                port,
                format!(
                    "`{shown}` starts a chain, so it has no `errors` port: \
                     only a stage that takes items can fail on one"
                ),
            );
        } else if let Some(builtin) = builtin.filter(|op| !op.fallible).map(|op| op.name) {
            self.error(
                from,
                port,
                format!(
                    "`{builtin}` cannot fail, so it has no `errors` port; \
                     use a `#[stage]` returning `Result` to route failures"
                ),
            );
        }
    }

    /// Reports every cycle once, at one of its edges, naming its nodes.
    /// Returns the nodes on cycles.
    fn cycles(&mut self) -> HashSet<NodeIndex> {
        let graph = self.graph;
        let mut on_cycles = HashSet::new();
        for component in tarjan_scc(&graph.graph) {
            let looped =
                component.len() > 1 || graph.graph.find_edge(component[0], component[0]).is_some();
            if !looped {
                continue;
            }
            let members: HashSet<NodeIndex> = component.iter().copied().collect();
            on_cycles.extend(members.iter().copied());
            // Walk the cycle from its first-written node to name it in order.
            let Some(&start) = component.iter().min() else {
                continue;
            };
            let mut names = vec![graph.node(start).binding_or_name()];
            let mut current = start;
            let mut closing = None;
            for _ in 0..component.len() {
                let next = graph
                    .graph
                    .edges_directed(current, Direction::Outgoing)
                    .filter(|e| members.contains(&e.target()))
                    .min_by_key(|e| e.target());
                let Some(next) = next else { break };
                names.push(graph.node(next.target()).binding_or_name());
                closing = Some(next.id());
                current = next.target();
                if current == start {
                    break;
                }
            }
            let Some(edge) = closing else { continue };
            let op = graph.edge(edge).op.clone();
            for &member in &component {
                self.bad.insert(member);
            }
            self.diagnostics.error_spanned(
                op,
                format!(
                    "this `>>` closes a cycle: {}; a pipeline must not feed a node's output back into it",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(" → ")
                ),
            );
        }
        on_cycles
    }

    /// Nodes that only a cycle feeds: the cycle's error explains them, so
    /// they are left out of the generated code without an error of their
    /// own (a node nothing feeds at all is reported as never fed).
    fn reachability(&mut self, on_cycles: &HashSet<NodeIndex>) {
        let graph = &self.graph.graph;
        let mut reached = HashSet::new();
        for head in graph.node_indices() {
            if graph
                .edges_directed(head, Direction::Incoming)
                .next()
                .is_some()
            {
                continue;
            }
            let mut dfs = Dfs::new(graph, head);
            while let Some(node) = dfs.next(graph) {
                reached.insert(node);
            }
        }
        for index in graph.node_indices() {
            if reached.contains(&index) || on_cycles.contains(&index) {
                continue;
            }
            self.bad.insert(index);
        }
    }
}

/// A node as the user writes it in a chain, for the examples in messages:
/// `map(..)` or `discard()` for a call, `parse` for a bare `#[stage]` name,
/// `stages::parse` for a path, `Window::new(..)` for a constructor.
fn written(op: &Op) -> String {
    match op {
        Op::Name(ident) => ident.to_string(),
        Op::Path(path) => path_written(path),
        Op::Port { owner, port } => format!("{owner}[{port}]"),
        Op::Builtin(call) => {
            format!("{}{}", call.op.name, arguments(call.call.args.is_empty()))
        }
        Op::Value(expr) => expr_written(expr),
    }
}

fn expr_written(expr: &syn::Expr) -> String {
    match expr {
        syn::Expr::Call(call) => match &*call.func {
            syn::Expr::Path(func) => {
                format!(
                    "{}{}",
                    path_written(&func.path),
                    arguments(call.args.is_empty())
                )
            }
            _ => "..".to_owned(),
        },
        syn::Expr::MethodCall(call) => format!(
            "{}.{}{}",
            expr_written(&call.receiver),
            call.method,
            arguments(call.args.is_empty())
        ),
        syn::Expr::Path(path) => path_written(&path.path),
        syn::Expr::Struct(literal) => format!("{} {{ .. }}", path_written(&literal.path)),
        syn::Expr::Paren(inner) => expr_written(&inner.expr),
        syn::Expr::Group(inner) => expr_written(&inner.expr),
        _ => "..".to_owned(),
    }
}

/// A path's segments joined by `::`, without their generic arguments.
fn path_written(path: &syn::Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let leading = if path.leading_colon.is_some() {
        "::"
    } else {
        ""
    };
    format!("{leading}{}", segments.join("::"))
}

fn arguments(empty: bool) -> &'static str {
    if empty { "()" } else { "(..)" }
}

/// A built-in refused as a node (`push`): reported as such, and nothing
/// more.
fn unsupported(node: &Node) -> bool {
    node.ir.refused()
}
