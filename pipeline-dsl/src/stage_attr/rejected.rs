//! A function `#[stage]` rejects still gets its struct, and a stage of the
//! best-guess type, so pipelines using it report nothing more.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{FnArg, ItemFn, ReturnType, Type};

use super::Role;
use super::types::{flat_item, is_context_ref, is_impl_iterator, last_segment};

/// The message for an item taken as `&mut T`: take it by value and return
/// it.
pub(super) fn in_place_message(
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
pub(super) fn type_text(ty: &Type) -> String {
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
pub(super) fn rejected_impl(function: &ItemFn, role: Role, flat: bool) -> TokenStream {
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
pub(super) fn nameable_outside(tokens: &TokenStream, generics: &[String]) -> bool {
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
