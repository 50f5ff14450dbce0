//! The stage traits for a function `#[stage]` accepts: its parameters
//! (the item, and perhaps `&StageContext`), its return type's shape, and
//! the `Stage` or `SyncStage` impl.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType, Type};

use super::rejected::{in_place_message, rejected_impl};
use super::source::source_impl;
use super::types::{flat_item, is_context_ref, is_impl_iterator, last_segment};
use super::{Role, Shape};
use crate::diagnostics::Diagnostics;

pub(super) fn stage_impl(
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
