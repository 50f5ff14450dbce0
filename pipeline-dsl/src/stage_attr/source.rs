//! `#[stage(source)]`: a function taking nothing whose items start a
//! chain.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Type;
use syn::spanned::Spanned;

use super::types::impl_bound;
use crate::diagnostics::Diagnostics;

pub(super) fn source_impl(
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
