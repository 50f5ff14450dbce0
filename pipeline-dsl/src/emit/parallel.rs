//! A stage on parallel workers, at the head of its segment: the checks
//! that its stage, items and errors may move to other threads, at the
//! user's tokens, and the workers' head.

use petgraph::graph::NodeIndex;
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};

use super::{Emitter, local, private_path, private_path_at};

impl Emitter<'_> {
    /// A `parallel` node at the head of its segment: its workers read from
    /// the node's edge.
    pub(super) fn parallel_code(&self, node: NodeIndex, is_last: bool) -> TokenStream {
        let graph = self.graph;
        let span = graph.node(node).ir.span();
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        let private = private_path();
        let chain = local("__pipeline_chain", span);
        let stage = local("__pipeline_stage", span);
        let input = local("__pipeline_input", span);
        let options_var = local("__pipeline_options", span);
        let rx = local(&self.receiver_var(node).to_string(), span);
        let stats = local(&self.stats_var(node).to_string(), span);
        let expr = self.stage_expr(node);
        let options = self.options_of(node);
        let key = crate::options::by_key(&graph.node(node).ir.options);
        let mut code = quote! {
            let #chain = #private::edge_type(&#rx);
            let #input = #private::edge_type(&#rx);
            let #options_var: #private::options::StageOptions = #options;
        };
        code.extend(quote_spanned! {here=> let #stage = #expr; });
        if is_last && graph.main_outputs(node).is_empty() {
            code.extend(quote_spanned! {here=> #private_here::ends_in_sink(&#stage); });
        }
        // The stage, its input, output and error must move to other
        // threads: checked once, here, with a message naming what cannot.
        // After a failed check the stage and its edge have an unknown type,
        // so nothing built with them repeats the error.
        let rx_checked = local("__pipeline_rx", span);
        // The messages name the stage: a `#[stage]` or other stage value
        // by its type, a built-in by its name as written (a local marker
        // type, rather than the runtime type behind it).
        let name = match graph.node(node).ir.builtin() {
            Some(call) => {
                let marker = syn::Ident::new(call.op.name, span);
                quote_spanned! {here=> {
                    #[allow(non_camel_case_types, dead_code)]
                    struct #marker;
                    ::core::marker::PhantomData::<#marker>
                }}
            }
            _ => quote_spanned! {here=> stage },
        };
        code.extend(quote_spanned! {here=>
            let (#rx_checked, #stage) = {
                let input = #private_here::marker(&#private_here::edge_type(&#rx));
                let stage = #private_here::type_of(&#stage);
                let name = #name;
                let checked = #private_here::WorkerInput::checked(name, input, (#rx, #stage));
                let checked = #private_here::WorkerStage::checked(name, stage, checked);
                let (output, error) = #private_here::outputs_of(input, &checked.1);
                let checked = #private_here::WorkerOutput::checked(name, output, checked);
                #private_here::WorkerError::checked(name, error, checked)
            };
        });
        // Spawning is written here, where the stage's type is known, so
        // rustc can check that its futures may move to another thread.
        let spawn = quote_spanned! {here=>
            |worker| {
                let stage = #private_here::stage_of(&worker);
                #private_here::SpawnsWorker::spawn(stage, #private_here::Worker::run(worker))
            }
        };
        let call = match key {
            Some(key) => {
                let key_var = local("__pipeline_key", span);
                let key_here = Span::mixed_site().located_at(syn::spanned::Spanned::span(&key));
                let private_key = private_path_at(key_here);
                code.extend(quote_spanned! {key_here=>
                    let #key_var = #private_key::key_for(#private_key::marker(&#private_key::edge_type(&#rx_checked)), #key);
                    let #key_var = #private_key::WorkerKey::checked(#private_key::key_fn(&#key_var), #key_var);
                });
                quote_spanned! {here=>
                    #private_here::parallel_by_key(#rx_checked, #stage, #spawn, #options_var, #key_var, ::std::sync::Arc::clone(&#stats))
                }
            }
            None => quote_spanned! {here=>
                #private_here::parallel(#rx_checked, #stage, #spawn, #options_var, ::std::sync::Arc::clone(&#stats))
            },
        };
        code.extend(quote_spanned! {here=> let #chain = #call; });
        // The node's failure policy: typed from its input, which the
        // route keeps and the cloner copies.
        let retries = self.retries(node);
        let errors = !self.graph.port_outputs(node, "errors").is_empty();
        let route = match self.errors_broadcast(node) {
            Some(broadcast) => {
                let errors_var = local("__pipeline_errors", span);
                code.extend(quote! { let #errors_var = #broadcast; });
                quote_spanned!(here=> #private_here::errors_route(&#input, #errors_var))
            }
            None => quote!(#private::LogFailures),
        };
        let cloner = if retries && !errors {
            quote_spanned!(here=> #private_here::retry_input_cloner(&#input))
        } else {
            self.input_cloner(node)
        };
        code.extend(quote_spanned! {here=>
            let #chain = #private_here::parallel_policy(#chain, #options_var, #route, #cloner);
        });
        code
    }
}
