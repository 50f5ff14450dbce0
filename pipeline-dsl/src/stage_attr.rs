//! `#[stage]`: a function becomes a stage.
//!
//! The function is kept as written, so it stays callable. Beside it the
//! attribute adds a braced struct of the same name (types and values live in
//! separate namespaces), and implements the stage traits for that struct.
//! `pipeline!` turns a bare name `parse` into `parse {}`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, Item, ItemFn, ReturnType, Type, TypeParamBound};

use crate::diagnostics::{Diagnostics, suggestion};

const ARGUMENTS: &[&str] = &["source", "sink", "flat"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Transform,
    Source,
    Sink,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
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
        } else if options.buffer.is_some()
            || options.on_full.is_some()
            || options.backpressure.is_some()
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
                let candidates = ARGUMENTS.iter().chain(crate::options::OPTION_KEYS).copied();
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
                         or an option such as `parallel = 4` or `on_error = retry(3, backoff = 10ms)`",
                        crate::diagnostics::end_sentence(suggestion(&key, candidates))
                    ),
                );
            }
        }
    }
    let options = crate::options::parse_metas(&options, diagnostics);
    if options.parallel.is_none()
        && let Some((ordering, span)) = &options.ordering
    {
        let key = match ordering {
            crate::options::Ordering::Ordered => "ordered",
            crate::options::Ordering::Unordered => "unordered",
            crate::options::Ordering::ByKey(_) => "by_key",
        };
        diagnostics.error(
            *span,
            format!(
                "`{key}` orders the outputs of parallel workers; add `parallel = N` to the \
                 stage's defaults, or remove `{key}`"
            ),
        );
    }
    if role == Role::Source
        && let Some((key, span)) = options.keys().into_iter().next()
    {
        diagnostics.error(
            span,
            format!("`{key}` is about a stage's input, and a `#[stage(source)]` takes none"),
        );
    }
    (role, flat, options)
}

fn stage_impl(
    function: &ItemFn,
    role: Role,
    flat: bool,
    diagnostics: &mut Diagnostics,
) -> TokenStream {
    let sig = &function.sig;
    let name = &sig.ident;
    let vis = &function.vis;
    let private = quote!(::pipeline::__private);
    let errors_before = diagnostics.len();
    if !sig.generics.params.is_empty() {
        diagnostics.error_spanned(
            &sig.generics,
            "a `#[stage]` function cannot be generic; write one stage per item type, \
             or implement `pipeline::Stage` for a struct",
        );
    }
    if let Some(receiver) = sig.receiver() {
        diagnostics.error_spanned(
            receiver,
            "a `#[stage]` function cannot take `self`; make it a free function, \
             or implement `pipeline::Stage` for your type to keep state",
        );
    }
    let typed: Vec<&syn::PatType> = sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let wants_context = typed.len() == 2 && is_context_ref(&typed[1].ty);
    let item_params = if wants_context { 1 } else { typed.len() };
    match role {
        Role::Source if !typed.is_empty() => diagnostics.error_spanned(
            &sig.inputs,
            "a `#[stage(source)]` function takes no parameters and returns the items, \
             as an iterator or a stream",
        ),
        Role::Source => {}
        _ if sig.receiver().is_some() => {}
        _ if item_params != 1 => diagnostics.push(syn::Error::new_spanned(
            if sig.inputs.is_empty() {
                quote!(#sig)
            } else {
                let inputs = &sig.inputs;
                quote!(#inputs)
            },
            format!(
                "a `#[stage]` function takes exactly one item, found {item_params}; \
                 allowed forms are `fn(item: T)` and `fn(item: T, ctx: &StageContext)`{}",
                if item_params == 0 {
                    ", or mark a function that produces items with `#[stage(source)]`"
                } else {
                    ""
                }
            ),
        )),
        _ => {}
    }
    if let Some(first) = typed.first()
        && role != Role::Source
        && let Type::Reference(reference) = &*first.ty
    {
        let message = if reference.mutability.is_some() {
            in_place_message(first, reference, sig)
        } else {
            "a stage takes its item by value; items move through the pipeline, \
             so write the owned type (for example `String` instead of `&str`)"
                .to_owned()
        };
        diagnostics.error_spanned(reference, message);
    }
    if role == Role::Source && sig.asyncness.is_some() {
        diagnostics.error_spanned(
            sig.asyncness,
            "a `#[stage(source)]` function cannot be `async`; return a `Stream` instead",
        );
    }
    if diagnostics.len() != errors_before {
        // Inside an impl block (a `self` receiver) a struct cannot be
        // declared, so emit nothing rather than a second error.
        if sig.receiver().is_some() {
            return TokenStream::new();
        }
        return rejected_impl(function, role, flat);
    }
    let ret: Type = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let doc = format!("The stage made by `#[stage]` from the function [`{name}()`]({name}()).");
    let header = quote! {
        #[doc = #doc]
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #name {}
    };
    if role == Role::Source {
        return source_impl(name, &ret, header, diagnostics);
    }
    let input = &typed[0].ty;
    let shape = if flat || is_impl_iterator(&ret) {
        Shape::Flat
    } else {
        match last_segment(&ret).as_deref() {
            Some("Result") => Shape::Fallible,
            Some("Option") => Shape::Optional,
            _ => Shape::Plain,
        }
    };
    let call_args = if wants_context {
        quote!(item, ctx)
    } else {
        quote!(item)
    };
    let await_ = sig.asyncness.map(|_| quote!(.await));
    let call = quote!(#name(#call_args) #await_);
    let (out_ty, error_ty, body) = match (role, shape) {
        (Role::Sink, Shape::Fallible) => (
            quote!(::pipeline::stages::Never),
            quote!(<#ret as #private::Fallible>::Err),
            quote! { #private::Fallible::into_result(#call).map(|_| ()) },
        ),
        (Role::Sink, _) => (
            quote!(::pipeline::stages::Never),
            quote!(::pipeline::stages::Never),
            quote! { let _ = #call; ::core::result::Result::Ok(()) },
        ),
        (_, Shape::Plain) => (
            quote!(#ret),
            quote!(::pipeline::stages::Never),
            quote! { out.emit(#call); ::core::result::Result::Ok(()) },
        ),
        (_, Shape::Optional) => (
            quote!(<#ret as #private::Optional>::Some),
            quote!(::pipeline::stages::Never),
            quote! {
                if let ::core::option::Option::Some(value) = #private::Optional::into_option(#call) {
                    out.emit(value);
                }
                ::core::result::Result::Ok(())
            },
        ),
        (_, Shape::Fallible) => (
            quote!(<#ret as #private::Fallible>::Ok),
            quote!(<#ret as #private::Fallible>::Err),
            quote! {
                out.emit(#private::Fallible::into_result(#call)?);
                ::core::result::Result::Ok(())
            },
        ),
        (_, Shape::Flat) => (
            flat_item(&ret).unwrap_or_else(|| quote!(<#ret as ::core::iter::IntoIterator>::Item)),
            quote!(::pipeline::stages::Never),
            quote! { out.extend(#call); ::core::result::Result::Ok(()) },
        ),
    };
    let sink_marker =
        (role == Role::Sink).then(|| quote!(impl ::pipeline::stages::IsSink for #name {}));
    let ret_span = ret.span();
    let processing = if sig.asyncness.is_some() {
        quote_spanned! {ret_span=>
            async fn process(
                &mut self,
                item: #input,
                out: &mut ::pipeline::Emit<'_, Self::Out>,
                ctx: &::pipeline::StageContext,
            ) -> ::core::result::Result<(), Self::Error> {
                let _ = (&ctx, &out);
                #body
            }
        }
    } else {
        quote_spanned! {ret_span=>
            #[inline]
            fn process(
                &mut self,
                item: #input,
                out: &mut ::pipeline::Emit<'_, Self::Out>,
                ctx: &::pipeline::StageContext,
            ) -> impl ::core::future::Future<Output = ::core::result::Result<(), Self::Error>> {
                ::core::future::ready(Self::__pipeline_call(item, out, ctx))
            }

            fn process_chunk(
                &mut self,
                input: &mut ::std::vec::Vec<#input>,
                out: &mut ::std::vec::Vec<Self::Out>,
                failures: &mut ::pipeline::stages::Failures<Self::Error>,
                ctx: &::pipeline::StageContext,
            ) -> impl ::core::future::Future<Output = ()> {
                // `call` keeps a panic to the item that raised it.
                for item in input.drain(..) {
                    failures.call(out, |emit| Self::__pipeline_call(item, emit, ctx));
                }
                ::core::future::ready(())
            }
        }
    };
    let helper = sig.asyncness.is_none().then(|| {
        quote_spanned! {ret_span=>
            impl #name {
                #[inline]
                #[allow(unused_variables)]
                fn __pipeline_call(
                    item: #input,
                    out: &mut ::pipeline::Emit<'_, #out_ty>,
                    ctx: &::pipeline::StageContext,
                ) -> ::core::result::Result<(), #error_ty> {
                    #body
                }
            }
        }
    });
    quote! {
        #header
        #helper
        impl ::pipeline::Stage<#input> for #name {
            type Out = #out_ty;
            type Error = #error_ty;
            #processing
        }
        #sink_marker
    }
}

/// The message for an item taken as `&mut T`: take it by value and return
/// it.
fn in_place_message(
    param: &syn::PatType,
    reference: &syn::TypeReference,
    sig: &syn::Signature,
) -> String {
    let owned = type_text(&reference.elem);
    let binding = match &*param.pat {
        syn::Pat::Ident(ident) => format!("mut {}", ident.ident),
        _ => "mut item".to_owned(),
    };
    let returns_nothing = match &sig.output {
        ReturnType::Default => true,
        ReturnType::Type(_, ty) => matches!(&**ty, Type::Tuple(tuple) if tuple.elems.is_empty()),
    };
    let name = &sig.ident;
    if returns_nothing {
        format!(
            "a stage takes its item by value, not `&mut {owned}`; to change it in place, \
             take `{binding}: {owned}` and return it: `fn {name}({binding}: {owned}) -> {owned}`"
        )
    } else {
        format!(
            "a stage takes its item by value, not `&mut {owned}`; to change it in place, \
             take `{binding}: {owned}` and return it"
        )
    }
}

/// A type as written, without the spaces token streams print.
fn type_text(ty: &Type) -> String {
    quote!(#ty)
        .to_string()
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace("& ", "&")
}

/// After `#[stage]` rejected `function`: the struct, and a stage that
/// takes any input and outputs what the function seems meant to (its item
/// changed in place, or its return type), so that the pipelines using it
/// type-check and only the attribute's mistake is reported
/// (tokio-macros and thiserror emit such fallbacks too). Never run: the
/// crate does not compile.
fn rejected_impl(function: &ItemFn, role: Role, flat: bool) -> TokenStream {
    let sig = &function.sig;
    let name = &sig.ident;
    let vis = &function.vis;
    let private = quote!(::pipeline::__private);
    let header = quote! {
        #[allow(non_camel_case_types, dead_code)]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #name {}
    };
    if role == Role::Source {
        // Named at the head of a chain, a source is the function itself.
        return header;
    }
    let generics: Vec<String> = sig
        .generics
        .type_params()
        .map(|param| param.ident.to_string())
        .collect();
    let nameable = |ty: &Type| nameable_outside(&quote!(#ty), &generics);
    let input = quote!(__PipelineIn);
    let never = quote!(::pipeline::stages::Never);
    let by_reference = sig.inputs.iter().any(|arg| {
        matches!(arg, FnArg::Typed(t) if matches!(&*t.ty, Type::Reference(_)) && !is_context_ref(&t.ty))
    });
    let ret = match &sig.output {
        ReturnType::Type(_, ty) if !matches!(&**ty, Type::Tuple(t) if t.elems.is_empty()) => {
            Some(&**ty)
        }
        _ => None,
    };
    let (out, error) = match (role, ret) {
        (Role::Sink, Some(ret))
            if nameable(ret) && last_segment(ret).as_deref() == Some("Result") =>
        {
            (never.clone(), quote!(<#ret as #private::Fallible>::Err))
        }
        (Role::Sink, _) => (never.clone(), never.clone()),
        // An item by reference and nothing returned: it was to be changed
        // in place, and passed on.
        (_, None) if by_reference => (input.clone(), never.clone()),
        (_, None) => (quote!(()), never.clone()),
        (_, Some(ret)) if flat || is_impl_iterator(ret) => match flat_item(ret) {
            Some(item) if nameable_outside(&item, &generics) => (item, never.clone()),
            _ if nameable(ret) => (
                quote!(<#ret as ::core::iter::IntoIterator>::Item),
                never.clone(),
            ),
            _ => (input.clone(), never.clone()),
        },
        (_, Some(ret)) if !nameable(ret) => (input.clone(), never.clone()),
        (_, Some(ret)) => match last_segment(ret).as_deref() {
            Some("Result") => (
                quote!(<#ret as #private::Fallible>::Ok),
                quote!(<#ret as #private::Fallible>::Err),
            ),
            Some("Option") => (quote!(<#ret as #private::Optional>::Some), never.clone()),
            _ => (quote!(#ret), never.clone()),
        },
    };
    let sink_marker =
        (role == Role::Sink).then(|| quote!(impl ::pipeline::stages::IsSink for #name {}));
    quote! {
        #header
        impl<#input> ::pipeline::Stage<#input> for #name {
            type Out = #out;
            type Error = #error;
            fn process(
                &mut self,
                _: #input,
                _: &mut ::pipeline::Emit<'_, Self::Out>,
                _: &::pipeline::StageContext,
            ) -> impl ::core::future::Future<Output = ::core::result::Result<(), Self::Error>> {
                ::core::future::ready(::core::result::Result::Ok(()))
            }
        }
        #sink_marker
    }
}

/// Whether `tokens`, a type, can be named outside the function: no
/// borrowed or `impl` types, no `Self`, none of its type parameters.
fn nameable_outside(tokens: &TokenStream, generics: &[String]) -> bool {
    use proc_macro2::TokenTree;
    let tokens: Vec<TokenTree> = tokens.clone().into_iter().collect();
    tokens.iter().enumerate().all(|(i, token)| match token {
        TokenTree::Group(group) => nameable_outside(&group.stream(), generics),
        TokenTree::Punct(punct) if punct.as_char() == '&' => false,
        // A lifetime: only `'static` is known outside.
        TokenTree::Punct(punct) if punct.as_char() == '\'' => {
            matches!(tokens.get(i + 1), Some(TokenTree::Ident(next)) if next == "static")
        }
        TokenTree::Ident(ident) => {
            let ident = ident.to_string();
            !(ident == "impl" || ident == "Self" || ident == "_" || generics.contains(&ident))
        }
        _ => true,
    })
}

fn source_impl(
    name: &syn::Ident,
    ret: &Type,
    header: TokenStream,
    diagnostics: &mut Diagnostics,
) -> TokenStream {
    let private = quote!(::pipeline::__private);
    let mut bound = TokenStream::new();
    let (source_ty, make) = match impl_bound(ret) {
        Some((trait_name, item)) if trait_name == "Stream" => (
            quote!(::pipeline::io::StreamSource<::core::pin::Pin<::std::boxed::Box<dyn ::pipeline::io::Stream<Item = #item> + ::core::marker::Send>>>),
            quote!(::pipeline::io::stream(::std::boxed::Box::pin(#name()) as ::core::pin::Pin<::std::boxed::Box<dyn ::pipeline::io::Stream<Item = #item> + ::core::marker::Send>>)),
        ),
        Some((_, item)) => (
            quote!(::pipeline::io::Iter<::std::boxed::Box<dyn ::core::iter::Iterator<Item = #item> + ::core::marker::Send>>),
            quote!(::pipeline::io::iter(::std::boxed::Box::new(::core::iter::IntoIterator::into_iter(#name())) as ::std::boxed::Box<dyn ::core::iter::Iterator<Item = #item> + ::core::marker::Send>)),
        ),
        None if matches!(ret, Type::ImplTrait(_)) => {
            diagnostics.error_spanned(
                ret,
                "a `#[stage(source)]` function returns `impl Iterator<Item = T>`, \
                 `impl Stream<Item = T>`, or a collection",
            );
            return quote!(#header);
        }
        None => {
            let span = ret.span();
            // Written as a where clause, the check is made (and reported)
            // once, for the whole impl, instead of in each of its items.
            bound = quote_spanned!(span=> where #ret: #private::SourceItems);
            (
                quote_spanned!(span=> <#ret as #private::SourceItems>::Source),
                quote_spanned!(span=> #private::SourceItems::into_source_items(#name())),
            )
        }
    };
    // Every token at the return type, so that a type that is no collection
    // is reported once, there: rustc reports an unsatisfied predicate once
    // per span.
    let span = ret.span();
    let impl_block = quote_spanned! {span=>
        impl #private::IntoSource<#private::AsStage> for #name #bound {
            type Source = #source_ty;
            fn into_source(self) -> Self::Source {
                #make
            }
        }
    };
    quote! {
        #header
        #impl_block
    }
}

fn is_context_ref(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => last_segment(&r.elem).as_deref() == Some("StageContext"),
        _ => false,
    }
}

fn last_segment(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        Type::Group(g) => last_segment(&g.elem),
        Type::Paren(p) => last_segment(&p.elem),
        _ => None,
    }
}

fn is_impl_iterator(ty: &Type) -> bool {
    impl_bound(ty).is_some_and(|(name, _)| name.contains("Iterator"))
}

/// For `impl Trait<Item = X>`, the trait's name and `X`.
fn impl_bound(ty: &Type) -> Option<(String, TokenStream)> {
    let Type::ImplTrait(imp) = ty else {
        return None;
    };
    imp.bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(t) = bound else {
            return None;
        };
        let segment = t.path.segments.last()?;
        let syn::PathArguments::AngleBracketed(args) = &segment.arguments else {
            return None;
        };
        args.args.iter().find_map(|arg| match arg {
            syn::GenericArgument::AssocType(assoc) if assoc.ident == "Item" => {
                let item = &assoc.ty;
                Some((segment.ident.to_string(), quote!(#item)))
            }
            _ => None,
        })
    })
}

fn flat_item(ty: &Type) -> Option<TokenStream> {
    impl_bound(ty).map(|(_, item)| item)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expansion as text, without spaces, and the messages of its
    /// `compile_error!`s.
    fn expand(args: TokenStream, item: TokenStream) -> (String, Vec<String>) {
        let out = expand_stage(args, item).to_string();
        let messages = out
            .split("compile_error !")
            .skip(1)
            .filter_map(|rest| rest.split('"').nth(1).map(str::to_owned))
            .collect();
        (out.replace(' ', ""), messages)
    }

    #[test]
    fn an_item_by_mut_reference_says_to_take_it_by_value_and_return_it() {
        let (out, errors) = expand(
            quote!(),
            quote!(
                fn normalize(order: &mut Order) {}
            ),
        );
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0].contains(
                "take `mut order: Order` and return it: `fn normalize(mut order: Order) -> Order`"
            ),
            "{errors:#?}"
        );
        // The stage is still there, taking anything and passing it on, so
        // that pipelines using it report nothing more.
        assert!(
            out.contains("impl<__PipelineIn>::pipeline::Stage<__PipelineIn>fornormalize{typeOut=__PipelineIn;"),
            "{out}"
        );
    }

    #[test]
    fn a_rejected_stage_outputs_its_return_type_when_it_can_be_named() {
        for (item, out_type) in [
            (
                quote!(
                    fn len(x: &str) -> usize {
                        x.len()
                    }
                ),
                "typeOut=usize;",
            ),
            (
                quote!(
                    fn add(a: u64, b: u64) -> u64 {
                        a + b
                    }
                ),
                "typeOut=u64;",
            ),
            (
                quote!(
                    fn show<T: Debug>(x: T) -> String {
                        todo!()
                    }
                ),
                "typeOut=String;",
            ),
            // Its return type names the generic parameter: the item is
            // passed on.
            (
                quote!(
                    fn same<T>(x: T) -> T {
                        x
                    }
                ),
                "typeOut=__PipelineIn;",
            ),
            (
                quote!(
                    fn parse(x: &str) -> Result<u64, E> {
                        todo!()
                    }
                ),
                "typeOut=<Result<u64,E>as::pipeline::__private::Fallible>::Ok;",
            ),
        ] {
            let (out, errors) = expand(quote!(), item);
            assert_eq!(errors.len(), 1, "{errors:#?}");
            assert!(out.contains(out_type), "{out_type} in {out}");
        }
    }

    #[test]
    fn a_misspelt_role_is_read_as_the_role() {
        let (out, errors) = expand(
            quote!(sinkk),
            quote!(
                fn print(x: u64) {}
            ),
        );
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(out.contains("IsSinkforprint"), "{out}");
    }
}
