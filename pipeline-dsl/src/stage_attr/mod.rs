//! `#[stage]`: a function becomes a stage.
//!
//! The function is kept as written, so it stays callable. Beside it the
//! attribute adds a braced struct of the same name (types and values live in
//! separate namespaces), and implements the stage traits for that struct.
//! `pipeline!` turns a bare name `parse` into `parse {}`.
//!
//! `mod.rs` reads the attribute's arguments and the item and writes the
//! defaults; `stage_impl.rs` implements the stage traits for a function it
//! accepts, `source.rs` for a `#[stage(source)]`, and `rejected.rs` a stage
//! of the best-guess type for a function it rejects (so nothing else is
//! reported); `types.rs` reads the shapes of types.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, Item, ItemFn, Type};

use crate::diagnostics::{Diagnostics, suggestion};
use crate::options::{Field, name_of, written_as_argument};

mod rejected;
mod source;
mod stage_impl;
#[cfg(test)]
mod tests;
mod types;

use stage_impl::stage_impl;

const ARGUMENTS: &[&str] = &["source", "sink", "flat"];

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Transform,
    Source,
    Sink,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// Returns the output itself.
    Plain,
    /// Returns `Option<T>`: `None` filters the item.
    Optional,
    /// Returns `Result<T, E>`: `Err` fails the item.
    Fallible,
    /// Returns an iterator of outputs.
    Flat,
}

/// Expands `#[stage(args)] item`.
pub fn expand_stage(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut diagnostics = Diagnostics::new();
    if let Some(span) = crate::depth::too_deep(&args).or_else(|| crate::depth::too_deep(&item)) {
        // Too deep for `syn` to parse safely: the item stays as written
        // (rustc reads it fine), with the error.
        diagnostics.error(span, crate::depth::message());
        let errors = diagnostics.to_compile_errors();
        return quote!(#errors #item);
    }
    let (role, flat, options) = parse_args(args, &mut diagnostics);
    let function = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(function)) => function,
        Ok(other) => {
            let what = match &other {
                Item::Struct(_) => {
                    "a struct; to make a struct a stage, implement `pipeline::Stage` for it"
                }
                Item::Enum(_) => "an enum; implement `pipeline::Stage` for it instead",
                Item::Impl(_) => "an impl block; put it on a free function",
                Item::Trait(_) => "a trait",
                _ => "this item",
            };
            let span = item_keyword_span(&other);
            diagnostics.error(
                span,
                format!("`#[stage]` goes on a function (`fn` or `async fn`), not on {what}"),
            );
            let errors = diagnostics.to_compile_errors();
            return quote!(#errors #item);
        }
        Err(error) => {
            diagnostics.push(error);
            let errors = diagnostics.to_compile_errors();
            return quote!(#errors #item);
        }
    };
    let errors_before = diagnostics.len();
    let mut generated = stage_impl(&function, role, flat, &mut diagnostics);
    let rejected = diagnostics.len() != errors_before;
    if !options.is_empty() {
        // The stage's defaults, merged under a node's own options by the
        // pipelines that use it. A retry that runs out dead-letters only if
        // `then = dead_letter` says so: the stage cannot know whether a
        // pipeline connects its `errors` port.
        let name = &function.sig.ident;
        let defaults = options.to_runtime(false);
        generated.extend(quote! {
            impl ::pipeline::__private::StageDefaults for #name {
                const DEFAULTS: ::pipeline::__private::options::StageOptions = #defaults;
            }
        });
        // A pipeline fuses the stage to the one before it unless it knows
        // better; these tell it, through the stage's type, that the stage
        // wants its own input edge, or copies of its inputs to retry them.
        // A rejected function's stage takes any input: nothing is known
        // about its item to run it on workers or clone it by.
        let input = item_type(&function).filter(|_| !rejected);
        if let (Some((_, parallel)), Some(input)) = (&options.parallel, input) {
            // Written at `parallel`, where rustc reports a stage whose
            // input, output, error or futures cannot move to a worker's
            // thread, once, with a message that names it: after a failed
            // check the worker's type is unknown, so its future is not
            // checked too. The same checks bound `WorksInParallel`: when
            // one fails, pipelines that use the stage run it fused rather
            // than fail them again.
            let private = quote_spanned!(*parallel=> ::pipeline::__private);
            let spawn = quote_spanned! {*parallel=>
                let stage = ::core::marker::PhantomData::<Self>;
                let input = ::core::marker::PhantomData::<#input>;
                let (output, error) = #private::outputs_of(input, &Self {});
                let worker = #private::WorkerInput::checked(stage, input, worker);
                let worker = #private::WorkerOutput::checked(stage, output, worker);
                let worker = #private::WorkerError::checked(stage, error, worker);
                #private::SpawnsWorker::spawn(stage, #private::Worker::run(worker))
            };
            // Not checked here (a bound with `for<..>` is not checked
            // where it is written), but where it is used.
            let bounds = quote_spanned! {*parallel=>
                where for<'__pipeline> #name: #private::RunsOnWorkers<#input>
            };
            let key = crate::options::by_key(&options).map(|key| {
                quote! {
                    const KEY: ::core::option::Option<fn(&#input) -> u64> =
                        ::core::option::Option::Some(|item: &#input| {
                            ::pipeline::__private::key_hash((#key)(item))
                        });
                }
            });
            generated.extend(quote! {
                impl ::pipeline::__private::WorksInParallel for #name #bounds {}
                impl ::pipeline::__private::ParallelByDefault<#input> for #name {
                    fn spawn_worker(
                        worker: ::pipeline::__private::Worker<
                            #input,
                            ::pipeline::__private::Clones<Self>,
                            <Self as ::pipeline::Stage<#input>>::Out,
                            <Self as ::pipeline::Stage<#input>>::Error,
                        >,
                    ) -> ::pipeline::__private::JoinHandle<
                        ::core::result::Result<(), ::pipeline::Error>,
                    > {
                        #spawn
                    }
                    #key
                }
            });
        } else if options
            .keys()
            .iter()
            .any(|(declaration, _)| declaration.sets_up_input_edge)
        {
            generated.extend(quote! {
                impl ::pipeline::__private::HopsByDefault for #name {}
            });
        }
        if let (Some((crate::options::OnError::Retry { .. }, span)), Some(input)) =
            (&options.on_error, input)
        {
            let private = quote_spanned!(*span=> ::pipeline::__private);
            let clone = quote_spanned!(*span=> #private::retry_cloner::<#input>());
            generated.extend(quote! {
                impl ::pipeline::__private::ClonesInput for #name {
                    type Input = #input;
                    const CLONE: ::pipeline::__private::CloneInto<#input> = #clone;
                }
            });
        }
    }
    let errors = diagnostics.to_compile_errors();
    // On error the function is still emitted unchanged, so calls to it keep
    // type-checking and only the attribute's mistake is reported.
    quote! {
        #errors
        #function
        #generated
    }
}

/// The type of a stage function's item parameter, if it has one.
fn item_type(function: &ItemFn) -> Option<&Type> {
    function.sig.inputs.iter().find_map(|arg| match arg {
        FnArg::Typed(t) => Some(&*t.ty),
        FnArg::Receiver(_) => None,
    })
}

fn item_keyword_span(item: &Item) -> Span {
    match item {
        Item::Struct(s) => s.struct_token.span,
        Item::Enum(e) => e.enum_token.span,
        Item::Impl(i) => i.impl_token.span,
        Item::Trait(t) => t.trait_token.span,
        other => other.span(),
    }
}

fn parse_args(
    args: TokenStream,
    diagnostics: &mut Diagnostics,
) -> (Role, bool, crate::options::Options) {
    let mut role = Role::Transform;
    let mut flat = false;
    let mut options = Vec::new();
    let parser = syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated;
    let metas = match syn::parse::Parser::parse2(parser, args) {
        Ok(metas) => metas,
        Err(error) => {
            diagnostics.push(error);
            return (role, flat, crate::options::Options::default());
        }
    };
    for meta in metas {
        let key = meta
            .path()
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match (key.as_str(), &meta) {
            ("source", syn::Meta::Path(_)) => role = Role::Source,
            ("sink", syn::Meta::Path(_)) => role = Role::Sink,
            ("flat", syn::Meta::Path(_)) => flat = true,
            _ if crate::options::is_option(&key) => options.push(meta.clone()),
            _ => {
                let candidates = ARGUMENTS.iter().copied().chain(crate::options::names());
                // A misspelt role is read as the role, so that the stage
                // still made has the shape that was meant.
                if let syn::Meta::Path(_) = &meta {
                    match crate::diagnostics::did_you_mean(&key, candidates.clone()) {
                        Some("source") => role = Role::Source,
                        Some("sink") => role = Role::Sink,
                        Some("flat") => flat = true,
                        _ => {}
                    }
                }
                diagnostics.error_spanned(
                    &meta,
                    format!(
                        "unknown `#[stage]` argument `{key}`{} Expected one of `source`, `sink`, `flat`, \
                         or an option such as `{}` or `{}`",
                        crate::diagnostics::end_sentence(suggestion(&key, candidates)),
                        written_as_argument(Field::Parallel),
                        written_as_argument(Field::OnError),
                    ),
                );
            }
        }
    }
    let options = crate::options::parse_metas(&options, diagnostics);
    if options.parallel.is_none()
        && let Some((ordering, span)) = options
            .keys()
            .into_iter()
            .find(|(declaration, _)| declaration.field == Field::Ordering)
    {
        let key = ordering.name;
        diagnostics.error(
            span,
            format!(
                "`{key}` orders the outputs of parallel workers; add `{} = N` to the \
                 stage's defaults, or remove `{key}`",
                name_of(Field::Parallel)
            ),
        );
    }
    if role == Role::Source
        && let Some((declaration, span)) = options.keys().into_iter().next()
    {
        let key = declaration.name;
        diagnostics.error(
            span,
            format!("`{key}` is about a stage's input, and a `#[stage(source)]` takes none"),
        );
    }
    (role, flat, options)
}
