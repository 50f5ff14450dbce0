//! A stage fused to the chain before it: built-ins, `#[stage]` items and
//! values, composed runs, and what a bare-named stage's `#[stage(..)]`
//! defaults decide (an edge, workers, retries), known only from its type.

use petgraph::graph::NodeIndex;
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::Expr;

use super::accumulate::Intake;
use super::{Emitter, local, private_path, private_path_at};
use crate::graph::{Kind, Node};
use crate::lower::Op;

impl Emitter<'_> {
    /// `chain >> node`, with the node's `errors` port if it is connected.
    pub(super) fn stage_code(&self, node: NodeIndex, is_last: bool) -> TokenStream {
        let graph = self.graph;
        if graph.node(node).kind == Kind::Accumulator {
            return self.accumulate_code(node, Intake::Chain);
        }
        if let Some(call) = graph.node(node).ir.builtin()
            && call.op.wraps_chain
        {
            // Not a stage: it keeps emitting after its input ends, so it
            // wraps the chain before it.
            let span = graph.node(node).ir.span();
            let here = Span::mixed_site().located_at(span);
            let chain = local("__pipeline_chain", span);
            let wrapped = (call.op.emit)(call, &self.emit_context(node));
            return quote_spanned! {here=> let #chain = #wrapped; };
        }
        let span = graph.node(node).ir.span();
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        let stage = local("__pipeline_stage", span);
        let chain = local("__pipeline_chain", span);
        let stats = local(&self.stats_var(node).to_string(), span);
        let expr = self.stage_expr(node);
        let mut code = quote_spanned! {here=> let #stage = #expr; };
        if is_last && graph.main_outputs(node).is_empty() {
            code.extend(quote_spanned! {here=> #private_here::ends_in_sink(&#stage); });
        }
        code.extend(self.hop_code(node));
        let errors = graph.port_outputs(node, "errors");
        let retries = self.retries(node);
        let has_options = !graph.node(node).ir.options.is_empty()
            || !graph.options.is_empty()
            || matches!(graph.node(node).ir.op, Op::Name(_) | Op::Path(_));
        let options_var = local("__pipeline_options", span);
        if has_options || !errors.is_empty() {
            let options = self.options_of(node);
            code.extend(quote! {
                let #options_var: ::pipeline::__private::options::StageOptions = #options;
            });
        }
        if let Some(ty) = self.stage_type(node) {
            code.extend(self.attach_code(node, &ty, retries));
        } else {
            if !has_options && errors.is_empty() {
                // The common case, built from constants.
                code.extend(quote_spanned! {here=>
                    let #chain = #private_here::fuse(#chain, #stage, ::std::sync::Arc::clone(&#stats));
                });
                return code;
            }
            // The options, where failed items go, and how to copy inputs
            // for retries.
            let route = self.failure_route(node, &mut code);
            let cloner = if retries && errors.is_empty() {
                quote_spanned!(here=> #private_here::retry_input_cloner(&#chain))
            } else {
                quote!(::std::option::Option::None)
            };
            // Bound before the call, which moves the chain they look at.
            let route_var = local("__pipeline_route", span);
            let cloner_var = local("__pipeline_cloner", span);
            code.extend(quote_spanned! {here=>
                let #route_var = #route;
                let #cloner_var = #cloner;
                let #chain = #private_here::fuse_with(#chain, #stage, ::std::sync::Arc::clone(&#stats), #options_var, #route_var, #cloner_var);
            });
        }
        code
    }

    /// Where a node's failed items go: its connected `errors` port
    /// (`errors_route`, which checks its input can be kept), else
    /// `LogFailures`. The port's outlet is bound in `code` first.
    pub(super) fn failure_route(&self, node: NodeIndex, code: &mut TokenStream) -> TokenStream {
        let span = self.graph.node(node).ir.span();
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        let chain = local("__pipeline_chain", span);
        match self.errors_broadcast(node) {
            Some(broadcast) => {
                let errors_var = local("__pipeline_errors", span);
                code.extend(quote! { let #errors_var = #broadcast; });
                quote_spanned!(here=> #private_here::errors_route(&#chain, #errors_var))
            }
            None => {
                let private = private_path();
                quote!(#private::LogFailures)
            }
        }
    }

    /// `chain >> node` for a node of a composed run: the first of the run,
    /// or one more (`continues`).
    pub(super) fn compose_code(&self, node: NodeIndex, continues: bool) -> TokenStream {
        let span = self.graph.node(node).ir.span();
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        let stage = local("__pipeline_stage", span);
        let chain = local("__pipeline_chain", span);
        let stats = local(&self.stats_var(node).to_string(), span);
        let expr = self.stage_expr(node);
        let function = if continues {
            quote_spanned!(here=> compose_next)
        } else {
            quote_spanned!(here=> compose)
        };
        quote_spanned! {here=>
            let #stage = #expr;
            let #chain = #private_here::#function(#chain, #stage, ::std::sync::Arc::clone(&#stats));
        }
    }

    /// A bare-named stage after the chain: fused to it, or on workers
    /// behind an edge if its `#[stage(parallel = ..)]` defaults say so,
    /// which only its type knows.
    pub(super) fn attach_code(
        &self,
        node: NodeIndex,
        ty: &TokenStream,
        retries: bool,
    ) -> TokenStream {
        let graph = self.graph;
        let span = graph.node(node).ir.span();
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        let private = private_path();
        let stage = local("__pipeline_stage", span);
        let chain = local("__pipeline_chain", span);
        let stats = local(&self.stats_var(node).to_string(), span);
        let options_var = local("__pipeline_options", span);
        let mut code = TokenStream::new();
        let route = match self.errors_broadcast(node) {
            Some(broadcast) => {
                let errors_var = local("__pipeline_errors", span);
                code.extend(quote! { let #errors_var = #broadcast; });
                quote_spanned!(here=> #private_here::errors_route(&#chain, #errors_var))
            }
            None => quote!(#private::LogFailures),
        };
        let cloner = if retries {
            quote_spanned!(here=> #private_here::retry_input_cloner(&#chain))
        } else {
            self.input_cloner(node)
        };
        let edge = match self.plan.fused_input(self.graph, node) {
            Some(edge) => {
                let edge = self.edge_var(edge);
                quote!(&#edge)
            }
            // Already behind an edge of its own: a hop to workers is one
            // more, counted apart.
            None => {
                let name = &graph.node(node).name;
                quote!(&::std::sync::Arc::new(::pipeline::metrics::EdgeStats::new(#name, #name, ::std::option::Option::None)))
            }
        };
        code.extend(quote_spanned! {here=>
            let (#chain, #stage) = #private_here::checked_stage(#chain, #stage);
        });
        let route_var = local("__pipeline_route", span);
        let cloner_var = local("__pipeline_cloner", span);
        code.extend(quote! {
            let #route_var = #route;
            let #cloner_var = #cloner;
        });
        code.extend(quote_spanned! {here=>
            let #chain = {
                #[allow(unused_imports)]
                use #private_here::{AttachFused as _, AttachOnWorkers as _};
                (&#private_here::DefaultsOf::<#ty>::new()).attach(
                    #chain,
                    #stage,
                    ::std::sync::Arc::clone(&#stats),
                    #options_var,
                    #route_var,
                    #cloner_var,
                    |chain, output, control| #private::drive_into(chain, output, control),
                    #edge,
                )
            };
        });
        code
    }

    /// For a bare-named stage fused to the stage before it: an edge there
    /// after all if its `#[stage(..)]` defaults ask for one (`buffer`,
    /// `on_full`, `backpressure`), which only its type knows.
    pub(super) fn hop_code(&self, node: NodeIndex) -> TokenStream {
        let Some(ty) = self.stage_type(node) else {
            return TokenStream::new();
        };
        let Some(edge) = self.plan.fused_input(self.graph, node) else {
            return TokenStream::new();
        };
        let private = private_path();
        let chain = local("__pipeline_chain", Span::call_site());
        let edge = self.edge_var(edge);
        let options = self.options_of(node);
        quote! {
            let #chain = {
                #[allow(unused_imports)]
                use #private::{HopBefore as _, NoHop as _};
                let options: #private::options::StageOptions = #options;
                (&#private::DefaultsOf::<#ty>::new()).hop(
                    #chain,
                    |chain, output, control| #private::drive_into(chain, output, control),
                    &options,
                    &#edge,
                )
            };
        }
    }

    /// A node's options as the runtime sees them: its own, else its
    /// `#[stage(..)]`'s defaults (known from the type of a bare-named
    /// stage), else the pipeline's.
    pub(super) fn options_of(&self, node: NodeIndex) -> TokenStream {
        let private = private_path();
        let errors_connected = !self.graph.port_outputs(node, "errors").is_empty();
        let own = self
            .graph
            .node(node)
            .ir
            .options
            .to_runtime(errors_connected);
        let pipeline = self.graph.options.to_runtime(errors_connected);
        match self.stage_type(node) {
            Some(ty) => quote! {
                {
                    #[allow(unused_imports)]
                    use #private::{HasDefaults as _, NoDefaults as _};
                    #own.or((&#private::DefaultsOf::<#ty>::new()).stage_defaults()).or(#pipeline)
                }
            },
            None => quote!(#own.or(#pipeline)),
        }
    }

    /// How a node's stage copies its input if its `#[stage(..)]` defaults
    /// retry: known from the type of a bare-named stage, else `None`.
    pub(super) fn input_cloner(&self, node: NodeIndex) -> TokenStream {
        let private = private_path();
        match self.stage_type(node) {
            Some(ty) => quote! {
                {
                    #[allow(unused_imports)]
                    use #private::{HasCloner as _, NoCloner as _};
                    (&#private::DefaultsOf::<#ty>::new()).input_cloner()
                }
            },
            None => quote!(::std::option::Option::None),
        }
    }

    /// The type of a bare-named stage (a `#[stage]` item), whose defaults
    /// can be looked up.
    pub(super) fn stage_type(&self, node: NodeIndex) -> Option<TokenStream> {
        match &self.graph.node(node).ir.op {
            Op::Name(ident) => Some(quote!(#ident)),
            Op::Path(path) => Some(quote!(#path)),
            _ => None,
        }
    }

    /// Whether the node's options, its own or the pipeline's, retry failed
    /// items.
    pub(super) fn retries(&self, node: NodeIndex) -> bool {
        let own = &self.graph.node(node).ir.options;
        own.retries() || (self.graph.options.retries() && own.on_error.is_none())
    }

    /// The expression that makes a node's stage.
    pub(super) fn stage_expr(&self, node: NodeIndex) -> TokenStream {
        stage_expr(self.graph.node(node), &self.emit_context(node))
    }
}

/// The expression that makes the source at the head of a chain.
///
/// A bare name (or path) there is used as a value: a source made before
/// the macro (`let (orders, handle) = push(..)`, `let log = lines(file)`),
/// or a `#[stage(source)]` function, which `head` calls. Which one it is
/// only its type tells: `IntoSource` has an impl for each, told apart by
/// a marker type rustc infers.
pub(super) fn head_expr(node: &Node, emit: &crate::ops::Emit) -> TokenStream {
    match &node.ir.op {
        Op::Name(ident) => quote!(#ident),
        Op::Path(path) => quote!(#path),
        _ => stage_expr(node, emit),
    }
}

/// The expression that makes a node's stage.
pub(super) fn stage_expr(node: &Node, emit: &crate::ops::Emit) -> TokenStream {
    match &node.ir.op {
        // A bare name is a `#[stage]` item: the braced struct it generated.
        Op::Name(ident) => quote_spanned!(ident.span()=> #ident {}),
        Op::Path(path) => {
            let span = path
                .segments
                .last()
                .map_or_else(Span::call_site, |s| s.ident.span());
            quote_spanned!(span=> #path {})
        }
        Op::Builtin(call) => (call.op.emit)(call, emit),
        // Parentheses only set a value apart from a `#[stage]` name
        // (`>> (sink_value)`); emitted bare, so rustc does not lint them.
        Op::Value(Expr::Paren(paren)) => {
            let inner = &paren.expr;
            quote!(#inner)
        }
        Op::Value(expr) => quote!(#expr),
        // References are edges, not nodes.
        Op::Port { owner, .. } => quote!(#owner),
    }
}
