//! An accumulation, at the head of its segment (reading its edge) or
//! fused after the chain before it.

use petgraph::graph::NodeIndex;
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};

use super::{Emitter, local, private_path, private_path_at};
use crate::ops::fields;

impl Emitter<'_> {
    /// An accumulate node, at the head of its segment or fused after the
    /// chain before it: the accumulator, its policy (checked and converted
    /// at compile time), and its `errors` port if connected.
    pub(super) fn accumulate_code(&self, node: NodeIndex, intake: Intake) -> TokenStream {
        let graph = self.graph;
        let ir = &graph.node(node).ir;
        let Some(spec) = ir.builtin().and_then(|call| call.spec()) else {
            return quote!();
        };
        let span = ir.span();
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        let private = private_path();
        let chain = local("__pipeline_chain", span);
        let accumulator = local("__pipeline_accumulator", span);
        // What the accumulation reads: its edge, or the chain before it;
        // and something that tells its item type either way.
        let input = match intake {
            Intake::Edge => local(&self.receiver_var(node).to_string(), span),
            Intake::Chain => chain.clone(),
        };
        let typed = match intake {
            Intake::Edge => quote_spanned!(here=> &#private_here::edge_type(&#input)),
            Intake::Chain => quote!(&#input),
        };
        // Without and with the `Spill` bounds, reading an edge or the chain
        // before it (a fused accumulation).
        let named = |spilling: bool| {
            let name = match (spilling, intake) {
                (false, Intake::Edge) => "accumulate",
                (false, Intake::Chain) => "accumulate_after",
                (true, Intake::Edge) => "accumulate_spilling",
                (true, Intake::Chain) => "accumulate_spilling_after",
            };
            syn::Ident::new(name, here)
        };
        let stats = local(&self.stats_var(node).to_string(), span);
        let collector = match &spec.collector {
            fields::Collector::Key(key) => {
                quote_spanned!(here=> #private_here::batch_by(#typed, #key))
            }
            fields::Collector::Unkeyed => {
                quote_spanned!(here=> #private_here::batch_all(#typed))
            }
            fields::Collector::Value(value) => quote!(#value),
        };
        let size = match (&spec.size, spec.max_bytes) {
            (Some(size), _) => quote!(#size),
            (None, Some(_)) => {
                quote_spanned!(here=> |item| #private_here::item_bytes(item))
            }
            (None, None) => quote! {
                |item| {
                    #[allow(unused_imports)]
                    use #private::{MeasureBytes as _, MeasureSize as _};
                    (&#private::Measure(item)).bytes()
                }
            },
        };
        let some_usize = |v: Option<u64>| match v {
            Some(v) => {
                let v = v as usize;
                quote!(::std::option::Option::Some(#v))
            }
            None => quote!(::std::option::Option::None),
        };
        let some_u64 = |v: Option<u64>| match v {
            Some(v) => quote!(::std::option::Option::Some(#v)),
            None => quote!(::std::option::Option::None),
        };
        let some_duration = |v: Option<u64>| match v {
            Some(v) => quote!(::std::option::Option::Some(::core::time::Duration::from_nanos(#v))),
            None => quote!(::std::option::Option::None),
        };
        let max_items = some_usize(spec.max_items);
        let max_bytes = some_u64(spec.max_bytes);
        let max_latency = some_duration(spec.max_latency);
        let ttl = some_duration(spec.ttl);
        let partial_flush = spec.partial_flush;
        let (spill, function) = match &spec.spill {
            Some(dir) => {
                let max_memory = spec.max_memory.unwrap_or(64 << 20);
                let dir = match dir {
                    // At the directory's tokens, where rustc reports one
                    // that is not `Into<PathBuf>`.
                    Some(dir) => {
                        let at = Span::mixed_site().located_at(syn::spanned::Spanned::span(dir));
                        let private_at = private_path_at(at);
                        quote_spanned!(at=> ::std::option::Option::Some(#private_at::SpillDir::spill_dir(#dir)))
                    }
                    None => quote!(::std::option::Option::None),
                };
                (
                    quote!(::std::option::Option::Some(#private::SpillPolicy { max_memory: #max_memory, dir: #dir })),
                    named(true),
                )
            }
            None => (quote!(::std::option::Option::None), named(false)),
        };
        let mut code = quote! {
            let #accumulator = #collector;
        };
        if spec.size.is_none()
            && spec.max_bytes.is_none()
            && !matches!(spec.collector, fields::Collector::Value(_))
        {
            // Items measured by their in-memory size all weigh the same:
            // their batches need not keep a byte total.
            code.extend(quote! {
                let #accumulator = {
                    #[allow(unused_imports)]
                    use #private::{TallyBytes as _, TallyFixed as _};
                    (&#private::tally(#typed)).tally(#accumulator)
                };
            });
        }
        code.extend(quote_spanned! {here=>
            let #chain = #private_here::#function(
                #input,
                #accumulator,
                #size,
                #private::AccumulatePolicy {
                    max_items: #max_items,
                    max_bytes: #max_bytes,
                    max_latency: #max_latency,
                    ttl: #ttl,
                    partial_flush: #partial_flush,
                    spill: #spill,
                },
                ::std::sync::Arc::clone(&#stats),
                #private_here::DEFAULT_CHUNK,
            );
        });
        if let Some(broadcast) = self.errors_broadcast(node) {
            code.extend(quote_spanned! {here=>
                let #chain = #private_here::accumulate_errors(#chain, #broadcast);
            });
        }
        code
    }
}

/// Where an accumulate node's items come from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Intake {
    /// An edge of its own, at the head of a segment.
    Edge,
    /// The chain before it, in the same segment.
    Chain,
}
