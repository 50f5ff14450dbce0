//! Phase 1: tokens to a syntax tree of statements, chains and nodes.
//! Syntax only: what a node's call or options mean is read by
//! [`lower`](crate::lower).
//!
//! Every statement is parsed as one `syn::Expr`: `>>` is a binary shift,
//! `name[port]` an index, `name = chain` an assignment, and `#[..]`
//! attributes sit on the node that follows. Statements are split at
//! top-level `;` first, so a syntax error in one statement does not hide the
//! errors of the others.

use proc_macro2::{Spacing, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, BinOp, Expr, Ident};

use crate::diagnostics::Diagnostics;

/// A parsed `pipeline! { .. }`.
pub struct PipelineAst {
    /// `#![..]` pipeline options.
    pub options: Vec<Attribute>,
    /// The statements, in order.
    pub statements: Vec<Statement>,
}

/// `name = a >> b >> c;` or `a >> b >> c;`, its nodes as parsed
/// ([`NodeAst`]) or lowered ([`lower::Node`](crate::lower::Node)).
pub struct Statement<N = NodeAst> {
    /// The name bound to the chain's last node.
    pub binding: Option<Ident>,
    /// The nodes of the chain, in order.
    pub nodes: Vec<N>,
    /// The `>>` before each node after the first (`edges[i]` precedes
    /// `nodes[i + 1]`).
    pub edges: Vec<TokenStream>,
}

/// One node of a chain.
pub struct NodeAst {
    /// `#[..]` options written before it.
    pub options: Vec<Attribute>,
    /// What it refers to.
    pub target: Target,
    /// The node's tokens, for spans.
    pub tokens: TokenStream,
}

/// What a node refers to.
pub enum Target {
    /// A single identifier: a name bound in this pipeline, or else a
    /// `#[stage]` item.
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
    /// Any other expression: a call (of a built-in, read by
    /// [`lower`](crate::lower)), or a value implementing the stage traits.
    Expr(Expr),
}

/// Parses the macro input, recording every syntax error.
pub fn parse(input: TokenStream, diagnostics: &mut Diagnostics) -> PipelineAst {
    let mut ast = PipelineAst {
        options: Vec::new(),
        statements: Vec::new(),
    };
    let segments = split_statements(input);
    for (index, segment) in segments.into_iter().enumerate() {
        if segment.tokens.is_empty() {
            if let Some(semi) = segment.semi {
                diagnostics.error(semi, "empty statement: remove this `;`");
            }
            continue;
        }
        if let Some(span) = crate::depth::too_deep(&segment.tokens) {
            diagnostics.error(span, crate::depth::message());
            continue;
        }
        match parse_statement(segment.tokens.clone(), index == 0) {
            Ok((options, expr)) => {
                if !options.is_empty() && index != 0 {
                    for option in &options {
                        diagnostics.error_spanned(
                            option,
                            "pipeline options `#![..]` must come before the first statement",
                        );
                    }
                }
                ast.options.extend(options);
                let Some(expr) = expr else {
                    // `#![..];`: the options end at `]`, so this `;` ends
                    // an empty statement.
                    if let Some(semi) = segment.semi {
                        diagnostics.error(semi, "empty statement: remove this `;`");
                    }
                    continue;
                };
                if segment.semi.is_none() {
                    let last = segment.tokens.clone().into_iter().last();
                    let span = last.map_or_else(Span::call_site, |t| match t {
                        TokenTree::Group(group) => group.span_close(),
                        other => other.span(),
                    });
                    diagnostics.error(span, "expected `;` after this chain");
                }
                if let Some(statement) = lower_statement(expr, diagnostics) {
                    ast.statements.push(statement);
                }
            }
            Err(error) => diagnostics.push(error),
        }
    }
    ast
}

struct Segment {
    tokens: TokenStream,
    semi: Option<Span>,
}

fn split_statements(input: TokenStream) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut current = TokenStream::new();
    for token in input {
        match &token {
            TokenTree::Punct(p) if p.as_char() == ';' => {
                segments.push(Segment {
                    tokens: std::mem::take(&mut current),
                    semi: Some(p.span()),
                });
            }
            _ => current.extend([token]),
        }
    }
    if !current.is_empty() {
        segments.push(Segment {
            tokens: current,
            semi: None,
        });
    }
    segments
}

/// Parses one statement's tokens (without its `;`).
fn parse_statement(
    tokens: TokenStream,
    first: bool,
) -> syn::Result<(Vec<Attribute>, Option<Expr>)> {
    let last_span = tokens
        .clone()
        .into_iter()
        .last()
        .map_or_else(Span::call_site, |t| t.span());
    if let Some(error) = dangling_operator(&tokens) {
        return Err(error);
    }
    let parser = move |input: ParseStream| {
        let options = if first || input.peek(syn::Token![#]) && input.peek2(syn::Token![!]) {
            Attribute::parse_inner(input)?
        } else {
            Vec::new()
        };
        if input.is_empty() {
            return Ok((options, None));
        }
        let expr: Expr = input.parse()?;
        if !input.is_empty() {
            return Err(input.error("expected `>>` to continue the chain, or `;` to end it"));
        }
        Ok((options, Some(expr)))
    };
    parser.parse2(tokens).map_err(|error| {
        // syn reports running out of tokens at the whole invocation; point
        // at the statement's last token instead.
        if error.to_string().contains("end of input") {
            syn::Error::new(last_span, format!("{error} after this token"))
        } else {
            error
        }
    })
}

/// `a >>` or `name =` at the end of a statement, with a message that says
/// what was expected.
fn dangling_operator(tokens: &TokenStream) -> Option<syn::Error> {
    let tail: Vec<TokenTree> = tokens.clone().into_iter().collect();
    let n = tail.len();
    let punct = |i: usize| match tail.get(i) {
        Some(TokenTree::Punct(p)) => Some(p.as_char()),
        _ => None,
    };
    if n >= 2 && punct(n - 1) == Some('>') && punct(n - 2) == Some('>') {
        let op: TokenStream = tail[n - 2..].iter().cloned().collect();
        return Some(syn::Error::new_spanned(
            op,
            "expected a stage after `>>`, such as `for_each(|item| ..)` or a `#[stage]` function",
        ));
    }
    let alone = |i: usize| matches!(tail.get(i), Some(TokenTree::Punct(p)) if p.as_char() == '>' && p.spacing() == Spacing::Alone);
    for i in 0..n.saturating_sub(3) {
        // `>> >>`: the first `>>` lost its stage.
        if punct(i) == Some('>') && alone(i + 1) && punct(i + 2) == Some('>') && alone(i + 3) {
            let op: TokenStream = tail[i + 2..i + 4].iter().cloned().collect();
            return Some(syn::Error::new_spanned(
                op,
                "expected a stage between these two `>>`, such as `map(|item| ..)` or a `#[stage]` function",
            ));
        }
    }
    if n >= 1 && punct(n - 1) == Some('=') && (n < 2 || punct(n - 2).is_none()) {
        return Some(syn::Error::new(
            tail[n - 1].span(),
            "expected a chain after `=`, as in `name = source >> stage;`",
        ));
    }
    if n >= 1 && punct(0) == Some('=') {
        return Some(syn::Error::new(
            tail[0].span(),
            "expected a name before `=`, as in `orders = source >> parse;`",
        ));
    }
    None
}

fn lower_statement(expr: Expr, diagnostics: &mut Diagnostics) -> Option<Statement> {
    let (binding, chain) = match expr {
        Expr::Assign(assign) => {
            let binding = match *assign.left {
                Expr::Path(path) if path.attrs.is_empty() && path.path.get_ident().is_some() => {
                    path.path.get_ident().cloned()
                }
                other => {
                    diagnostics.error_spanned(
                        &other,
                        "expected a name before `=`, as in `orders = source >> parse;`",
                    );
                    return None;
                }
            };
            (binding, *assign.right)
        }
        other => (None, other),
    };
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    flatten(chain, Vec::new(), &mut nodes, &mut edges, diagnostics);
    Some(Statement {
        binding,
        nodes,
        edges,
    })
}

/// Turns the left-nested `a >> b >> c` into a list of nodes. Attributes
/// that syn attached to a whole sub-chain belong to its first node.
fn flatten(
    expr: Expr,
    mut inherited: Vec<Attribute>,
    nodes: &mut Vec<NodeAst>,
    edges: &mut Vec<TokenStream>,
    diagnostics: &mut Diagnostics,
) {
    match expr {
        Expr::Binary(binary) if matches!(binary.op, BinOp::Shr(_)) => {
            inherited.extend(binary.attrs);
            flatten(*binary.left, inherited, nodes, edges, diagnostics);
            edges.push(binary.op.to_token_stream());
            flatten(*binary.right, Vec::new(), nodes, edges, diagnostics);
        }
        Expr::Assign(assign) => {
            diagnostics.error(
                assign.eq_token.span,
                "a binding `name = ..` must start the statement",
            );
        }
        mut node => {
            let mut options = inherited;
            options.extend(take_attrs(&mut node));
            nodes.push(lower_node(node, options));
        }
    }
}

fn take_attrs(expr: &mut Expr) -> Vec<Attribute> {
    let attrs = match expr {
        Expr::Path(e) => &mut e.attrs,
        Expr::Call(e) => &mut e.attrs,
        Expr::Index(e) => &mut e.attrs,
        Expr::MethodCall(e) => &mut e.attrs,
        Expr::Closure(e) => &mut e.attrs,
        Expr::Paren(e) => &mut e.attrs,
        Expr::Block(e) => &mut e.attrs,
        Expr::Struct(e) => &mut e.attrs,
        Expr::Field(e) => &mut e.attrs,
        Expr::Macro(e) => &mut e.attrs,
        Expr::Reference(e) => &mut e.attrs,
        Expr::Lit(e) => &mut e.attrs,
        Expr::Unary(e) => &mut e.attrs,
        Expr::Try(e) => &mut e.attrs,
        Expr::Async(e) => &mut e.attrs,
        Expr::Array(e) => &mut e.attrs,
        Expr::Tuple(e) => &mut e.attrs,
        Expr::Cast(e) => &mut e.attrs,
        Expr::If(e) => &mut e.attrs,
        Expr::Match(e) => &mut e.attrs,
        Expr::Await(e) => &mut e.attrs,
        Expr::Unsafe(e) => &mut e.attrs,
        Expr::Group(e) => &mut e.attrs,
        Expr::Range(e) => &mut e.attrs,
        Expr::Repeat(e) => &mut e.attrs,
        Expr::Binary(e) => &mut e.attrs,
        _ => return Vec::new(),
    };
    std::mem::take(attrs)
}

fn lower_node(expr: Expr, options: Vec<Attribute>) -> NodeAst {
    let tokens = expr.to_token_stream();
    let target = match expr {
        Expr::Path(path) if path.qself.is_none() => match path.path.get_ident() {
            Some(ident) => Target::Name(ident.clone()),
            None => Target::Path(path.path),
        },
        Expr::Index(index) => match port_of(&index) {
            Some((owner, port)) => Target::Port { owner, port },
            None => Target::Expr(Expr::Index(index)),
        },
        other => Target::Expr(other),
    };
    NodeAst {
        options,
        target,
        tokens,
    }
}

/// `owner[port]` where both are plain names.
fn port_of(index: &syn::ExprIndex) -> Option<(Ident, Ident)> {
    let name = |expr: &Expr| match expr {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => {
            path.path.get_ident().cloned()
        }
        _ => None,
    };
    Some((name(&index.expr)?, name(&index.index)?))
}

/// A short name for an arbitrary stage expression: `Api::new(..)` is `Api`,
/// `client.stage()` is `stage`.
pub(crate) fn describe_expr(expr: &Expr) -> String {
    match expr {
        Expr::Call(call) => match &*call.func {
            Expr::Path(p) => {
                let segments: Vec<_> = p.path.segments.iter().collect();
                let pick = if segments.len() >= 2 {
                    segments[segments.len() - 2]
                } else {
                    segments[segments.len() - 1]
                };
                pick.ident.to_string()
            }
            _ => "stage".into(),
        },
        Expr::MethodCall(call) => call.method.to_string(),
        Expr::Struct(literal) => literal
            .path
            .segments
            .last()
            .map_or_else(|| "stage".into(), |s| s.ident.to_string()),
        Expr::Paren(p) => describe_expr(&p.expr),
        Expr::Group(g) => describe_expr(&g.expr),
        Expr::Path(p) => p
            .path
            .segments
            .last()
            .map_or_else(|| "stage".into(), |s| s.ident.to_string()),
        _ => "stage".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn parse_ok(tokens: TokenStream) -> PipelineAst {
        let mut diagnostics = Diagnostics::new();
        let ast = parse(tokens, &mut diagnostics);
        assert!(diagnostics.is_empty(), "{:?}", diagnostics.messages());
        ast
    }

    fn parse_err(tokens: TokenStream) -> Vec<String> {
        let mut diagnostics = Diagnostics::new();
        parse(tokens, &mut diagnostics);
        diagnostics.messages()
    }

    #[test]
    fn chain_flattens_in_order() {
        let ast = parse_ok(quote! { iter(v) >> parse >> map(|x| x + 1) >> for_each(f); });
        assert_eq!(ast.statements[0].edges.len(), 3);
        let lowered = crate::lower::lower(ast);
        let names: Vec<_> = lowered.statements[0]
            .nodes
            .iter()
            .map(crate::lower::Node::display_name)
            .collect();
        assert_eq!(names, ["iter", "parse", "map", "for_each"]);
    }

    #[test]
    fn bindings_ports_and_options() {
        let ast = parse_ok(quote! {
            #![buffer = 64]
            orders = iter(v) >> parse;
            orders[errors] >> #[parallel = 4] log >> discard();
        });
        assert_eq!(ast.options.len(), 1);
        assert_eq!(
            ast.statements[0].binding.as_ref().unwrap().to_string(),
            "orders"
        );
        assert!(matches!(
            ast.statements[1].nodes[0].target,
            Target::Port { .. }
        ));
        assert_eq!(ast.statements[1].nodes[1].options.len(), 1);
    }

    #[test]
    fn every_statement_reports_its_own_syntax_error() {
        let errors = parse_err(quote! { a >> ; b >> c d; = x; });
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("expected a stage after `>>`"));
        assert!(errors[1].contains("expected `>>`"));
        assert!(errors[2].contains("expected a name before `=`"));
    }

    #[test]
    fn a_semicolon_right_after_the_pipeline_options_ends_an_empty_statement() {
        let errors = parse_err(quote! { #![buffer = 8]; iter(v) >> discard(); });
        assert_eq!(errors, ["empty statement: remove this `;`"]);
        let ast = parse_ok(quote! { #![buffer = 8] iter(v) >> discard(); });
        assert_eq!(ast.options.len(), 1);
    }

    #[test]
    fn missing_final_semicolon_is_an_error() {
        let errors = parse_err(quote! { iter(v) >> discard() });
        assert_eq!(errors, ["expected `;` after this chain"]);
    }
}
