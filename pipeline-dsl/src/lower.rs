//! Phase 2: the syntax tree to a typed IR.
//!
//! Every `#[..]` option and every argument of a built-in is read here,
//! exactly once: options into [`Options`], a built-in's arguments into its
//! operator's [`Args`](crate::ops::Args). Later phases read the typed
//! values and never parse tokens again.
//!
//! The errors found here are kept with their node ([`Problems`]) and
//! reported by [`check`](crate::check) when it reaches the node, so that
//! one expansion reports every problem in the order the user reads them:
//! a node's options, what they mean in the graph, then its arguments.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::{Expr, Ident};

use crate::diagnostics::Diagnostics;
use crate::ops::{self, Call, Kind, Status};
use crate::options::{self, Options};
use crate::parse::{NodeAst, PipelineAst, Target};

/// A `pipeline! { .. }`, lowered.
pub struct Pipeline {
    /// The `#![..]` options.
    pub options: Options,
    /// The errors in them.
    pub problems: Diagnostics,
    /// The statements, in order.
    pub statements: Vec<Statement>,
}

/// `name = a >> b >> c;` or `a >> b >> c;`, lowered.
pub type Statement = crate::parse::Statement<Node>;

/// One node as written: what it is, its options, and what was wrong with
/// them.
pub struct Node {
    /// What the node is.
    pub op: Op,
    /// Its `#[..]` options.
    pub options: Options,
    /// The `#[..]` attributes as written, where an error about options
    /// that do not belong there is reported (empty if none).
    pub option_tokens: TokenStream,
    /// The node's tokens, for spans.
    pub tokens: TokenStream,
    /// The errors found reading it.
    pub problems: Problems,
}

/// What a node is.
pub enum Op {
    /// A single identifier: a name bound in this pipeline, or else a
    /// `#[stage]` item (or, at the head of a chain, a source value).
    Name(Ident),
    /// A path with several segments: a `#[stage]` item or unit struct.
    Path(syn::Path),
    /// `owner[port]`: an output port of a bound node.
    Port {
        /// The node whose port it is.
        owner: Ident,
        /// The port.
        port: Ident,
    },
    /// A call of a built-in operator, its arguments read.
    Builtin(Box<Call>),
    /// Any other expression: a value implementing the stage traits.
    Value(Expr),
}

/// The errors found lowering a node, reported when it is checked.
pub struct Problems {
    /// In its options.
    pub options: Diagnostics,
    /// In a built-in's arguments.
    pub arguments: Diagnostics,
    /// How far the arguments could be read.
    pub status: Status,
}

impl Node {
    /// The name the node is known by in reports and messages.
    pub fn display_name(&self) -> String {
        match &self.op {
            Op::Name(ident) => ident.to_string(),
            Op::Path(path) => path
                .segments
                .last()
                .map(|s| s.ident.to_string())
                .unwrap_or_else(|| "stage".into()),
            Op::Port { owner, port } => format!("{owner}[{port}]"),
            Op::Builtin(call) => call.op.name.to_owned(),
            Op::Value(expr) => crate::parse::describe_expr(expr),
        }
    }

    /// The span of the node's first token.
    pub fn span(&self) -> Span {
        self.tokens
            .clone()
            .into_iter()
            .next()
            .map(|t| t.span())
            .unwrap_or_else(Span::call_site)
    }

    /// The built-in call, if the node is one.
    pub fn builtin(&self) -> Option<&Call> {
        match &self.op {
            Op::Builtin(call) => Some(call),
            _ => None,
        }
    }

    /// The role its tokens give it: a built-in's, else a user's stage.
    pub fn kind(&self) -> Kind {
        match &self.op {
            Op::Builtin(call) => call.op.kind,
            _ => Kind::Stage,
        }
    }

    /// Whether it is a built-in the macro refuses as a node (`push`).
    pub fn refused(&self) -> bool {
        self.problems.status == Status::Refused
    }
}

/// Lowers a parsed pipeline.
pub fn lower(ast: PipelineAst) -> Pipeline {
    let mut problems = Diagnostics::new();
    let options = options::parse_attributes(&ast.options, &mut problems);
    let statements = ast
        .statements
        .into_iter()
        .map(|statement| Statement {
            binding: statement.binding,
            nodes: statement.nodes.into_iter().map(node).collect(),
            edges: statement.edges,
        })
        .collect();
    Pipeline {
        options,
        problems,
        statements,
    }
}

fn node(ast: NodeAst) -> Node {
    let mut option_problems = Diagnostics::new();
    let options = options::parse_attributes(&ast.options, &mut option_problems);
    let mut option_tokens = TokenStream::new();
    for attr in &ast.options {
        attr.to_tokens(&mut option_tokens);
    }
    let mut arguments = Diagnostics::new();
    let mut status = Status::Read;
    let op = match ast.target {
        Target::Name(ident) => Op::Name(ident),
        Target::Path(path) => Op::Path(path),
        Target::Port { owner, port } => Op::Port { owner, port },
        Target::Expr(Expr::Call(call)) => match ops::read_call(&call, &mut arguments) {
            Some((call, read)) => {
                status = read;
                Op::Builtin(Box::new(call))
            }
            None => Op::Value(Expr::Call(call)),
        },
        Target::Expr(expr) => Op::Value(expr),
    };
    Node {
        op,
        options,
        option_tokens,
        tokens: ast.tokens,
        problems: Problems {
            options: option_problems,
            arguments,
            status,
        },
    }
}
