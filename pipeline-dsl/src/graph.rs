//! Phase 3: the lowered IR as a graph of nodes and edges.
//!
//! Every stage written in the pipeline is a node; a name bound with `=`
//! refers to the last node of its statement, so `orders >> audit` adds an
//! edge between two existing nodes rather than new ones. An edge leaves a
//! node's main output or one of its named ports (`split[big]`,
//! `orders[errors]`).
//!
//! Building the graph resolves names, which is where the errors about names
//! come from: a name bound twice, a port of a name that is bound nowhere,
//! a port used as the input of a stage. Everything else is checked on the
//! finished graph by [`check`](crate::check).

use std::collections::{HashMap, HashSet};

use petgraph::Direction;
use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::Ident;

use crate::diagnostics::{Diagnostics, did_you_mean};
use crate::lower::{self, Op, Pipeline};
use crate::options::Options;

pub use crate::ops::Kind;

/// A node of the graph.
pub struct Node {
    /// The node, lowered.
    pub ir: lower::Node,
    /// Its role.
    pub kind: Kind,
    /// Its unique name in reports (`filter`, `filter#2`, ...); a bound name
    /// wins over the stage's own.
    pub name: String,
    /// The name bound to it with `name = ..`, if any.
    pub binding: Option<Ident>,
    /// The ports a `branch` declares, in order.
    pub ports: Vec<Ident>,
    /// Whether the node was the only one of its statement.
    pub alone: bool,
    /// Whether an error already reported explains the node's missing
    /// input or output (it follows a name that could not be resolved, it
    /// feeds a port, or its binding was a duplicate), so the checks do
    /// not report it again.
    pub excused: bool,
}

/// An edge: one `>>` between two nodes.
pub struct Edge {
    /// The `>>` tokens.
    pub op: TokenStream,
    /// The output port it leaves from; `None` for the main output.
    pub port: Option<Ident>,
    /// The downstream node's tokens as written at this edge (a name may be
    /// written many times), where errors about the edge are reported.
    pub target: TokenStream,
}

/// The pipeline as a graph.
pub struct Graph {
    /// Nodes and edges.
    pub graph: DiGraph<Node, Edge>,
    /// Every `node[port]` written, connected or not, so a port the user
    /// did write is not also reported as never connected.
    pub mentioned_ports: HashSet<(NodeIndex, String)>,
    /// The pipeline's `#![..]` options.
    pub options: Options,
    /// The errors in them, reported by [`check`](crate::check).
    pub option_problems: Diagnostics,
}

/// One element of a statement: a new node, or a reference to a bound one.
enum Element {
    Node(NodeIndex),
    Ref {
        name: Ident,
        port: Option<Ident>,
        tokens: TokenStream,
    },
}

/// Where a reference leads: a node, and perhaps one of its ports.
type Resolved = (NodeIndex, Option<Ident>);

impl Graph {
    /// Builds the graph of the parsed pipeline, reporting name errors.
    pub fn build(ast: Pipeline, diagnostics: &mut Diagnostics) -> Graph {
        let bound = bound_names(&ast, diagnostics);
        let mut graph = DiGraph::new();
        let mut statements: Vec<(Option<Ident>, Vec<Element>, Vec<TokenStream>)> = Vec::new();
        for statement in ast.statements {
            let alone = statement.nodes.len() == 1;
            let mut elements = Vec::new();
            for node in statement.nodes {
                let reference = match &node.op {
                    Op::Name(name) if bound.contains_key(&name.to_string()) => {
                        Some((name.clone(), None))
                    }
                    Op::Port { owner, port } => Some((owner.clone(), Some(port.clone()))),
                    _ => None,
                };
                let element = match reference {
                    Some((name, port)) => {
                        options_at_reference(&node, &name, diagnostics);
                        Element::Ref {
                            name,
                            port,
                            tokens: node.tokens.clone(),
                        }
                    }
                    None => {
                        let kind = node.kind();
                        let ports = match node.builtin().map(|call| &call.args) {
                            Some(crate::ops::Args::Branch(ports)) => ports.clone(),
                            _ => Vec::new(),
                        };
                        Element::Node(graph.add_node(Node {
                            name: node.display_name(),
                            ir: node,
                            kind,
                            binding: None,
                            ports,
                            alone,
                            excused: false,
                        }))
                    }
                };
                elements.push(element);
            }
            statements.push((statement.binding, elements, statement.edges));
        }

        // Each binding names its statement's last element; only the first
        // binding of a name counts (the second was reported).
        let mut targets: HashMap<String, &Element> = HashMap::new();
        for (binding, elements, _) in &statements {
            if let (Some(binding), Some(last)) = (binding, elements.last()) {
                targets.entry(binding.to_string()).or_insert(last);
            }
        }
        let looping = alias_loops(&statements, &targets, &bound, diagnostics);
        let stages: Vec<String> = graph
            .node_weights()
            .map(|node: &Node| node.ir.display_name())
            .collect();
        let resolve = |element: &Element, diagnostics: &mut Diagnostics| -> Option<Resolved> {
            resolve(element, &targets, &bound, &looping, &stages, diagnostics)
        };

        let mut edges = Vec::new();
        let mut mentioned_ports = HashSet::new();
        for (binding, elements, ops) in &statements {
            if let (Some(binding), Some(Element::Node(index))) = (binding, elements.last()) {
                let first = matches!(
                    targets.get(&binding.to_string()),
                    Some(Element::Node(first)) if first == index
                );
                let node: &mut Node = &mut graph[*index];
                if first {
                    node.binding = Some(binding.clone());
                } else {
                    // A duplicate binding: its error says it all.
                    node.excused = true;
                }
            }
            let resolved: Vec<Option<Resolved>> = elements
                .iter()
                .map(|element| resolve(element, diagnostics))
                .collect();
            for (node, port) in resolved.iter().flatten() {
                if let Some(port) = port {
                    mentioned_ports.insert((*node, port.to_string()));
                }
            }
            for (position, pair) in resolved.windows(2).enumerate() {
                let (Some((from, port)), Some((to, to_port))) = (&pair[0], &pair[1]) else {
                    // The unresolved name was reported; its neighbours'
                    // missing input or output follows from it.
                    if let (None, Some(Element::Node(to))) = (&pair[0], elements.get(position + 1))
                    {
                        graph[*to].excused = true;
                    }
                    if let (Some((from, _)), None) = (&pair[0], &pair[1]) {
                        graph[*from].excused = true;
                    }
                    continue;
                };
                let target = element_tokens(&elements[position + 1], &graph);
                if let Some(to_port) = to_port {
                    let owner = graph[*to].binding_or_name();
                    diagnostics.error_spanned(
                        &target,
                        format!(
                            "`{owner}[{to_port}]` is an output port, so it cannot take input; \
                             a port can only start a chain, as in `{owner}[{to_port}] >> for_each(..)`"
                        ),
                    );
                    graph[*from].excused = true;
                    continue;
                }
                let op = ops.get(position).cloned().unwrap_or_default();
                edges.push((
                    *from,
                    *to,
                    Edge {
                        op,
                        port: port.clone(),
                        target,
                    },
                ));
            }
            if let ([Element::Ref { tokens, name, port }], None) = (elements.as_slice(), binding) {
                let named = match port {
                    Some(port) => format!("{name}[{port}]"),
                    None => name.to_string(),
                };
                diagnostics.error_spanned(
                    tokens,
                    format!(
                        "this statement only names `{named}`, which does nothing; \
                         continue the chain, as in `{named} >> for_each(|item| ..);`"
                    ),
                );
            }
        }
        for (from, to, edge) in edges {
            graph.add_edge(from, to, edge);
        }
        unique_names(&mut graph);
        Graph {
            graph,
            mentioned_ports,
            options: ast.options,
            option_problems: ast.problems,
        }
    }

    /// The node at `index`.
    pub fn node(&self, index: NodeIndex) -> &Node {
        &self.graph[index]
    }

    /// The edge at `index`.
    pub fn edge(&self, index: EdgeIndex) -> &Edge {
        &self.graph[index]
    }

    /// The edges leaving `node`'s main output (`port == None`), in the
    /// order they were written.
    pub fn main_outputs(&self, node: NodeIndex) -> Vec<EdgeIndex> {
        self.outputs(node, |port| port.is_none())
    }

    /// The edges leaving `node` from the port called `name`.
    pub fn port_outputs(&self, node: NodeIndex, name: &str) -> Vec<EdgeIndex> {
        self.outputs(node, |port| port.is_some_and(|p| p == name))
    }

    fn outputs(&self, node: NodeIndex, keep: impl Fn(Option<&Ident>) -> bool) -> Vec<EdgeIndex> {
        let mut edges: Vec<EdgeIndex> = self
            .graph
            .edges_directed(node, Direction::Outgoing)
            .filter(|edge| keep(edge.weight().port.as_ref()))
            .map(|edge| petgraph::visit::EdgeRef::id(&edge))
            .collect();
        edges.sort();
        edges
    }

    /// The edges entering `node`, in the order they were written.
    pub fn inputs(&self, node: NodeIndex) -> Vec<EdgeIndex> {
        let mut edges: Vec<EdgeIndex> = self
            .graph
            .edges_directed(node, Direction::Incoming)
            .map(|edge| petgraph::visit::EdgeRef::id(&edge))
            .collect();
        edges.sort();
        edges
    }

    /// Whether the pipeline's `#![parallel = ..]` applies to `node`: a
    /// transform that takes input, is a stage of its chain (not one that
    /// wraps the chain, as `through` does) and may run on workers (not
    /// `take`, which counts).
    pub fn pipeline_parallel_applies(&self, node: NodeIndex) -> bool {
        let n = self.node(node);
        n.kind == Kind::Transform
            && !self.inputs(node).is_empty()
            && !n
                .ir
                .builtin()
                .is_some_and(|call| call.op.wraps_chain || call.op.runs_as_one.is_some())
    }

    /// The two ends of an edge.
    pub fn ends(&self, edge: EdgeIndex) -> (NodeIndex, NodeIndex) {
        self.graph
            .edge_endpoints(edge)
            .unwrap_or((NodeIndex::end(), NodeIndex::end()))
    }
}

impl Node {
    /// The name the user wrote for this node: its binding if it has one.
    pub fn binding_or_name(&self) -> String {
        self.binding
            .as_ref()
            .map_or_else(|| self.ir.display_name(), ToString::to_string)
    }
}

/// Every name bound with `=`, reporting names bound twice.
fn bound_names(ast: &Pipeline, diagnostics: &mut Diagnostics) -> HashMap<String, Ident> {
    let mut bound: HashMap<String, Ident> = HashMap::new();
    for binding in ast.statements.iter().filter_map(|s| s.binding.as_ref()) {
        match bound.get(&binding.to_string()) {
            Some(first) => {
                let line = first.span().start().line;
                diagnostics.error_spanned(
                    binding,
                    format!(
                        "the name `{binding}` is bound twice (first on line {line}); \
                         give this chain another name, or feed the first one with `>> {binding}`"
                    ),
                );
            }
            None => {
                bound.insert(binding.to_string(), binding.clone());
            }
        }
    }
    bound
}

/// Finds the names bound only to each other (`a = b; b = a;`), which name
/// no node. Each loop is reported once, at the binding of it written
/// first; returns every name that leads into a loop, so references to
/// them are left unresolved without an error of their own.
fn alias_loops(
    statements: &[(Option<Ident>, Vec<Element>, Vec<TokenStream>)],
    targets: &HashMap<String, &Element>,
    bound: &HashMap<String, Ident>,
    diagnostics: &mut Diagnostics,
) -> HashSet<String> {
    // Where each name is bound (the binding that counts is the first),
    // and how that binding reads in a message: `a = b`, `a = .. >> b[x]`.
    let mut order: HashMap<String, usize> = HashMap::new();
    let mut shown: HashMap<String, String> = HashMap::new();
    for (position, (binding, elements, _)) in statements.iter().enumerate() {
        let (Some(binding), Some(Element::Ref { name, port, .. })) = (binding, elements.last())
        else {
            continue;
        };
        let key = binding.to_string();
        if order.contains_key(&key) || !matches!(targets.get(&key), Some(Element::Ref { .. })) {
            continue;
        }
        let lead = if elements.len() > 1 { ".. >> " } else { "" };
        let named = match port {
            Some(port) => format!("{name}[{port}]"),
            None => name.to_string(),
        };
        order.insert(key.clone(), position);
        shown.insert(key.clone(), format!("{binding} = {lead}{named}"));
    }
    let mut names: Vec<&String> = order.keys().collect();
    names.sort_by_key(|name| order[*name]);

    let mut looping: HashSet<String> = HashSet::new();
    let mut settled: HashSet<String> = HashSet::new();
    for start in names {
        // Walk the aliases from `start` until a node, an unbound name, a
        // name already settled, or a name of this walk (a loop).
        let mut path: Vec<String> = Vec::new();
        let mut current = start.clone();
        let into_loop = loop {
            if looping.contains(&current) {
                break true;
            }
            if settled.contains(&current) {
                break false;
            }
            if let Some(at) = path.iter().position(|seen| *seen == current) {
                report_loop(&path[at..], &order, &shown, bound, diagnostics);
                break true;
            }
            path.push(current.clone());
            match targets.get(&current) {
                Some(Element::Ref { name, .. }) => current = name.to_string(),
                _ => break false,
            }
        };
        if into_loop {
            looping.extend(path);
        } else {
            settled.extend(path);
        }
    }
    looping
}

/// One error for a loop of aliases, at the binding of it written first,
/// naming the loop from there.
fn report_loop(
    members: &[String],
    order: &HashMap<String, usize>,
    shown: &HashMap<String, String>,
    bound: &HashMap<String, Ident>,
    diagnostics: &mut Diagnostics,
) {
    let Some(first) = (0..members.len()).min_by_key(|&i| order.get(&members[i])) else {
        return;
    };
    let walk: Vec<&String> = members[first..].iter().chain(&members[..first]).collect();
    let Some(at) = bound.get(walk[0].as_str()) else {
        return;
    };
    let bindings = walk
        .iter()
        .filter_map(|name| shown.get(name.as_str()))
        .map(|binding| format!("`{binding}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let message = if walk.len() == 1 {
        format!(
            "`{}` is defined only in terms of itself ({bindings}): \
             bind it to a chain that starts at a source",
            walk[0]
        )
    } else {
        format!(
            "{} are defined only in terms of each other ({bindings}): \
             bind one of them to a chain that starts at a source",
            and_list(walk.iter().map(|name| format!("`{name}`")))
        )
    };
    diagnostics.error_spanned(at, message);
}

/// Follows a reference to the node (and port) it names, through any
/// chain of aliases (`a = b; b = c[port];`). A name in `looping` leads
/// only to other names; its loop was reported.
fn resolve(
    element: &Element,
    targets: &HashMap<String, &Element>,
    bound: &HashMap<String, Ident>,
    looping: &HashSet<String>,
    stages: &[String],
    diagnostics: &mut Diagnostics,
) -> Option<Resolved> {
    let (mut name, mut port) = match element {
        Element::Node(index) => return Some((*index, None)),
        Element::Ref { name, port, .. } => (name.clone(), port.clone()),
    };
    // Walk each name once, in case of a loop `alias_loops` did not see.
    let mut seen = HashSet::new();
    loop {
        if looping.contains(&name.to_string()) || !seen.insert(name.to_string()) {
            return None;
        }
        match targets.get(&name.to_string()) {
            Some(Element::Node(index)) => return Some((*index, port)),
            Some(Element::Ref {
                name: next,
                port: alias_port,
                ..
            }) => {
                match (alias_port, &port) {
                    (None, _) => {}
                    (Some(alias_port), None) => port = Some(alias_port.clone()),
                    (Some(_), Some(port)) => {
                        diagnostics.error_spanned(
                            port,
                            format!("`{name}` already names a port, so it has no ports of its own"),
                        );
                        return None;
                    }
                }
                name = next.clone();
            }
            None if stages.contains(&name.to_string()) => {
                diagnostics.error_spanned(
                    &name,
                    format!(
                        "`{name}` is used as a stage, but only a bound name has ports; \
                         bind it, as in `parsed = source >> {name};`, and write `parsed[..]`"
                    ),
                );
                return None;
            }
            None => {
                let candidates: Vec<&str> = bound.keys().map(String::as_str).collect();
                let hint = did_you_mean(&name.to_string(), candidates.iter().copied())
                    .map(|best| format!("; did you mean `{best}`?"))
                    .unwrap_or_else(|| {
                        format!("; bind it first, as in `{name} = source >> stage;`")
                    });
                diagnostics.error_spanned(
                    &name,
                    format!("there is no node called `{name}` in this pipeline{hint}"),
                );
                return None;
            }
        }
    }
}

/// `a`, `a and b`, `a, b and c`.
pub(crate) fn and_list(items: impl IntoIterator<Item = String>) -> String {
    let mut items: Vec<String> = items.into_iter().collect();
    match items.len() {
        0 => String::new(),
        1 => items.remove(0),
        _ => {
            let last = items.pop().unwrap_or_default();
            format!("{} and {last}", items.join(", "))
        }
    }
}

fn element_tokens(element: &Element, graph: &DiGraph<Node, Edge>) -> TokenStream {
    match element {
        Element::Node(index) => graph[*index].ir.tokens.clone(),
        Element::Ref { tokens, .. } => tokens.clone(),
    }
}

/// Options written before a reference to a bound node would be lost: they
/// belong where the node is made.
fn options_at_reference(node: &lower::Node, name: &Ident, diagnostics: &mut Diagnostics) {
    if node.option_tokens.is_empty() {
        return;
    }
    diagnostics.error_spanned(
        &node.option_tokens,
        format!(
            "options set up a node where it is made, and `{name}` is made where it is bound; \
             move these options before the stage in `{name} = ..`"
        ),
    );
}

/// Names nodes for reports: a bound name, else the stage's name, with `#2`,
/// `#3` for repeats.
fn unique_names(graph: &mut DiGraph<Node, Edge>) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for index in graph.node_indices() {
        let node = &mut graph[index];
        let base = node.binding_or_name();
        let count = seen.entry(base.clone()).or_insert(0);
        *count += 1;
        node.name = if *count == 1 {
            base
        } else {
            format!("{base}#{count}")
        };
    }
}

impl ToTokens for Node {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.ir.tokens.to_tokens(tokens);
    }
}
