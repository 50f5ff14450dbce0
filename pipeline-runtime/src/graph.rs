//! The shape of a pipeline as the macro saw it, available at run time.

use std::fmt;

/// What role a node plays in the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NodeKind {
    /// Produces items; has no input.
    Source,
    /// Takes items and emits items.
    Transform,
    /// Groups items into batches by key.
    Accumulator,
    /// Routes each item to one of several ports.
    Branch,
    /// Joins several inputs into one.
    Merge,
    /// Consumes items; has no output.
    Sink,
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeKind::Source => "source",
            NodeKind::Transform => "transform",
            NodeKind::Accumulator => "accumulator",
            NodeKind::Branch => "branch",
            NodeKind::Merge => "merge",
            NodeKind::Sink => "sink",
        })
    }
}

/// One node of a [`PipelineGraph`]: a stage as written in the `pipeline!`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphNode {
    /// The node's name: the bound name or the stage expression as written.
    pub name: &'static str,
    /// What role the node plays.
    pub kind: NodeKind,
    /// The node's named output ports, in declaration order: a branch's
    /// ports, and `errors` for a fallible stage. The main output is not
    /// listed.
    pub ports: Vec<&'static str>,
    /// The 1-based source line where the node is written.
    pub line: u32,
    /// The column where the node is written.
    pub column: u32,
}

/// One edge of a [`PipelineGraph`], from one node's output to another's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphEdge {
    /// Index of the upstream node in [`PipelineGraph::nodes`].
    pub from: usize,
    /// Index of the downstream node in [`PipelineGraph::nodes`].
    pub to: usize,
    /// The named port the edge leaves from (`Some("big")`, `Some("errors")`),
    /// or `None` for the node's main output.
    pub port: Option<&'static str>,
}

/// The shape of a pipeline as the macro saw it: its nodes and the edges
/// between them.
///
/// Returned by `Pipeline::graph()`; render it with
/// [`to_mermaid`](PipelineGraph::to_mermaid) or [`to_dot`](PipelineGraph::to_dot).
/// Both renderings are deterministic: nodes are numbered `n0`, `n1`, ... in
/// the order of [`nodes`](PipelineGraph::nodes), and edges are written in
/// the order of [`edges`](PipelineGraph::edges).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineGraph {
    nodes: Vec<GraphNode>,
    edges: Vec<GraphEdge>,
}

impl PipelineGraph {
    /// A graph of `nodes` joined by `edges`, whose `from` and `to` are
    /// indices into `nodes`.
    ///
    /// # Panics
    ///
    /// In debug builds, if an edge refers to a node index that is out of range.
    pub fn new(nodes: Vec<GraphNode>, edges: Vec<GraphEdge>) -> Self {
        debug_assert!(
            edges
                .iter()
                .all(|e| e.from < nodes.len() && e.to < nodes.len()),
            "a graph edge refers to a node that does not exist"
        );
        PipelineGraph { nodes, edges }
    }

    /// The nodes, in the order they appear in the `pipeline!`.
    pub fn nodes(&self) -> &[GraphNode] {
        &self.nodes
    }

    /// The edges, as indices into [`nodes`](PipelineGraph::nodes).
    pub fn edges(&self) -> &[GraphEdge] {
        &self.edges
    }

    /// The first node called `name`, if there is one.
    pub fn node(&self, name: &str) -> Option<&GraphNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The graph as a [Mermaid](https://mermaid.js.org) flowchart.
    ///
    /// Nodes are `n0`, `n1`, ... with their name as a quoted label (`"` is
    /// written `#quot;`, a line break `<br>`) and a shape by kind: source
    /// `(["..."])`, transform `["..."]`, accumulator `[("...")]`, branch
    /// `{"..."}`, merge `(("..."))`, sink `[/"..."/]`. An edge leaving a named
    /// port carries the port as its label. Nodes come first, then edges, one
    /// per line, indented by four spaces, with a trailing newline.
    ///
    /// ```
    /// use pipeline_runtime::graph::{GraphEdge, GraphNode, NodeKind, PipelineGraph};
    ///
    /// let node = |name, kind| GraphNode { name, kind, ports: vec![], line: 1, column: 1 };
    /// let graph = PipelineGraph::new(
    ///     vec![node("iter", NodeKind::Source), node("parse", NodeKind::Transform), node("collect", NodeKind::Sink)],
    ///     vec![
    ///         GraphEdge { from: 0, to: 1, port: None },
    ///         GraphEdge { from: 1, to: 2, port: None },
    ///     ],
    /// );
    /// assert_eq!(
    ///     graph.to_mermaid(),
    ///     r#"flowchart LR
    ///     n0(["iter"])
    ///     n1["parse"]
    ///     n2[/"collect"/]
    ///     n0 --> n1
    ///     n1 --> n2
    /// "#
    /// );
    /// ```
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for (i, node) in self.nodes.iter().enumerate() {
            let label = mermaid_label(node.name);
            let (open, close) = match node.kind {
                NodeKind::Source => ("([", "])"),
                NodeKind::Transform => ("[", "]"),
                NodeKind::Accumulator => ("[(", ")]"),
                NodeKind::Branch => ("{", "}"),
                NodeKind::Merge => ("((", "))"),
                NodeKind::Sink => ("[/", "/]"),
            };
            out.push_str(&format!("    n{i}{open}{label}{close}\n"));
        }
        for edge in &self.edges {
            let (from, to) = (edge.from, edge.to);
            match edge.port {
                None => out.push_str(&format!("    n{from} --> n{to}\n")),
                Some(port) => {
                    let label = mermaid_label(port);
                    out.push_str(&format!("    n{from} -->|{label}| n{to}\n"));
                }
            }
        }
        out
    }

    /// The graph in [Graphviz](https://graphviz.org) DOT.
    ///
    /// A `digraph pipeline` laid out left to right; nodes are `n0`, `n1`, ...
    /// labelled with their name (`"` and `\` escaped) and shaped by kind:
    /// source `house`, transform `box`, accumulator `cylinder`, branch
    /// `diamond`, merge `circle`, sink `invhouse`. An edge leaving a named
    /// port carries the port as its label.
    ///
    /// ```
    /// use pipeline_runtime::graph::{GraphEdge, GraphNode, NodeKind, PipelineGraph};
    ///
    /// let node = |name, kind| GraphNode { name, kind, ports: vec![], line: 1, column: 1 };
    /// let graph = PipelineGraph::new(
    ///     vec![node("iter", NodeKind::Source), node("discard", NodeKind::Sink)],
    ///     vec![GraphEdge { from: 0, to: 1, port: None }],
    /// );
    /// assert_eq!(
    ///     graph.to_dot(),
    ///     r#"digraph pipeline {
    ///     rankdir=LR;
    ///     n0 [label="iter", shape=house];
    ///     n1 [label="discard", shape=invhouse];
    ///     n0 -> n1;
    /// }
    /// "#
    /// );
    /// ```
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph pipeline {\n    rankdir=LR;\n");
        for (i, node) in self.nodes.iter().enumerate() {
            let label = dot_label(node.name);
            let shape = match node.kind {
                NodeKind::Source => "house",
                NodeKind::Transform => "box",
                NodeKind::Accumulator => "cylinder",
                NodeKind::Branch => "diamond",
                NodeKind::Merge => "circle",
                NodeKind::Sink => "invhouse",
            };
            out.push_str(&format!("    n{i} [label={label}, shape={shape}];\n"));
        }
        for edge in &self.edges {
            let (from, to) = (edge.from, edge.to);
            match edge.port {
                None => out.push_str(&format!("    n{from} -> n{to};\n")),
                Some(port) => {
                    let label = dot_label(port);
                    out.push_str(&format!("    n{from} -> n{to} [label={label}];\n"));
                }
            }
        }
        out.push_str("}\n");
        out
    }
}

/// `text` as a double-quoted Mermaid label.
fn mermaid_label(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '\n' => out.push_str("<br>"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `text` as a double-quoted DOT string.
fn dot_label(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &'static str, kind: NodeKind, ports: &[&'static str]) -> GraphNode {
        GraphNode {
            name,
            kind,
            ports: ports.to_vec(),
            line: 1,
            column: 1,
        }
    }

    fn edge(from: usize, to: usize, port: Option<&'static str>) -> GraphEdge {
        GraphEdge { from, to, port }
    }

    /// `iter >> parse >> split[big|small]; big and small >> merge >> collect;
    /// parse[errors] >> dead >> discard`.
    fn branching() -> PipelineGraph {
        PipelineGraph::new(
            vec![
                node("iter", NodeKind::Source, &[]),
                node("parse", NodeKind::Transform, &["errors"]),
                node("split", NodeKind::Branch, &["big", "small"]),
                node("batch", NodeKind::Accumulator, &[]),
                node("merge", NodeKind::Merge, &[]),
                node("collect", NodeKind::Sink, &[]),
                node("dead", NodeKind::Sink, &[]),
            ],
            vec![
                edge(0, 1, None),
                edge(1, 2, None),
                edge(2, 3, Some("big")),
                edge(2, 4, Some("small")),
                edge(3, 4, None),
                edge(4, 5, None),
                edge(1, 6, Some("errors")),
            ],
        )
    }

    #[test]
    fn mermaid_of_a_branching_graph() {
        let expected = r#"flowchart LR
    n0(["iter"])
    n1["parse"]
    n2{"split"}
    n3[("batch")]
    n4(("merge"))
    n5[/"collect"/]
    n6[/"dead"/]
    n0 --> n1
    n1 --> n2
    n2 -->|"big"| n3
    n2 -->|"small"| n4
    n3 --> n4
    n4 --> n5
    n1 -->|"errors"| n6
"#;
        assert_eq!(branching().to_mermaid(), expected);
    }

    #[test]
    fn dot_of_a_branching_graph() {
        let expected = r#"digraph pipeline {
    rankdir=LR;
    n0 [label="iter", shape=house];
    n1 [label="parse", shape=box];
    n2 [label="split", shape=diamond];
    n3 [label="batch", shape=cylinder];
    n4 [label="merge", shape=circle];
    n5 [label="collect", shape=invhouse];
    n6 [label="dead", shape=invhouse];
    n0 -> n1;
    n1 -> n2;
    n2 -> n3 [label="big"];
    n2 -> n4 [label="small"];
    n3 -> n4;
    n4 -> n5;
    n1 -> n6 [label="errors"];
}
"#;
        assert_eq!(branching().to_dot(), expected);
    }

    #[test]
    fn labels_are_escaped() {
        let graph = PipelineGraph::new(
            vec![
                node(r#"lines("a\"b")"#, NodeKind::Source, &[]),
                node(r#"write(r"C:\out")"#, NodeKind::Sink, &[]),
            ],
            vec![edge(0, 1, None)],
        );
        assert_eq!(
            graph.to_mermaid(),
            "flowchart LR\n    n0([\"lines(#quot;a\\#quot;b#quot;)\"])\n    \
             n1[/\"write(r#quot;C:\\out#quot;)\"/]\n    n0 --> n1\n"
        );
        assert_eq!(
            graph.to_dot(),
            "digraph pipeline {\n    rankdir=LR;\n    \
             n0 [label=\"lines(\\\"a\\\\\\\"b\\\")\", shape=house];\n    \
             n1 [label=\"write(r\\\"C:\\\\out\\\")\", shape=invhouse];\n    \
             n0 -> n1;\n}\n"
        );
    }

    #[test]
    fn nodes_are_found_by_name() {
        let graph = branching();
        assert_eq!(graph.nodes().len(), 7);
        assert_eq!(graph.edges().len(), 7);
        assert_eq!(graph.node("split").unwrap().ports, ["big", "small"]);
        assert_eq!(graph.node("merge").unwrap().kind, NodeKind::Merge);
        assert!(graph.node("nope").is_none());
        assert_eq!(PipelineGraph::default().to_mermaid(), "flowchart LR\n");
        assert_eq!(
            PipelineGraph::default().to_dot(),
            "digraph pipeline {\n    rankdir=LR;\n}\n"
        );
    }
}
