//! Phase 2: the syntax tree as a graph of nodes and edges.
//!
//! Nodes are the stages of every chain; an edge is a `>>` between two of
//! them. This version builds the graph of linear chains; names bound with
//! `=` and ports are recognised by the parser and reported by validation as
//! not supported yet.

use petgraph::graph::{DiGraph, NodeIndex};
use proc_macro2::TokenStream;

use crate::parse::{NodeAst, PipelineAst, Target};

/// What role a node plays, as far as the macro can tell from its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Produces items.
    Source,
    /// Takes items and emits items.
    Transform,
    /// Groups items by key.
    Accumulator,
    /// Routes items to ports.
    Branch,
    /// Consumes items.
    Sink,
    /// A user's stage: its role is known only from its type, which the
    /// generated code checks.
    Stage,
}

impl Kind {
    /// An article and a noun for messages: "a source".
    pub fn described(self) -> &'static str {
        match self {
            Kind::Source => "a source",
            Kind::Transform => "a transform",
            Kind::Accumulator => "an accumulator",
            Kind::Branch => "a branch",
            Kind::Sink => "a sink",
            Kind::Stage => "a stage",
        }
    }
}

/// A node of the graph.
pub struct Node {
    /// The node as parsed.
    pub ast: NodeAst,
    /// Its role.
    pub kind: Kind,
    /// Its unique name in reports (`filter`, `filter#2`, ...).
    pub name: String,
}

/// An edge: the `>>` that joins two nodes.
pub struct Edge {
    /// The `>>` tokens, for spans.
    pub op: TokenStream,
}

/// The pipeline as a graph, plus the chains it was written as.
pub struct Graph {
    /// Nodes and edges.
    pub graph: DiGraph<Node, Edge>,
    /// Each statement's nodes, in order.
    pub chains: Vec<Vec<NodeIndex>>,
    /// Each statement's `name =`, if it has one.
    pub bindings: Vec<Option<syn::Ident>>,
}

impl Graph {
    /// Builds the graph of the parsed pipeline.
    pub fn build(ast: PipelineAst) -> (Graph, Vec<syn::Attribute>) {
        let mut graph = DiGraph::new();
        let mut chains = Vec::new();
        let mut bindings = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for statement in ast.statements {
            bindings.push(statement.binding);
            let mut chain = Vec::new();
            let mut edges = statement.edges.into_iter();
            for node in statement.nodes {
                let kind = match &node.target {
                    Target::Builtin { builtin, .. } => builtin.kind,
                    _ => Kind::Stage,
                };
                let name = unique_name(&mut names, node.display_name());
                let index = graph.add_node(Node {
                    ast: node,
                    kind,
                    name,
                });
                if let Some(&previous) = chain.last() {
                    let op = edges.next().unwrap_or_default();
                    graph.add_edge(previous, index, Edge { op });
                }
                chain.push(index);
            }
            chains.push(chain);
        }
        (
            Graph {
                graph,
                chains,
                bindings,
            },
            ast.options,
        )
    }

    /// The node at `index`.
    pub fn node(&self, index: NodeIndex) -> &Node {
        &self.graph[index]
    }

    /// The `>>` between `from` and `to`, if they are joined.
    pub fn edge_op(&self, from: NodeIndex, to: NodeIndex) -> Option<&TokenStream> {
        self.graph
            .find_edge(from, to)
            .map(|edge| &self.graph[edge].op)
    }
}

fn unique_name(names: &mut Vec<String>, base: String) -> String {
    let count = names.iter().filter(|n| **n == base).count();
    names.push(base.clone());
    if count == 0 {
        base
    } else {
        format!("{base}#{}", count + 1)
    }
}
