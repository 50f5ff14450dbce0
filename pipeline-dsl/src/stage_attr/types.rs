//! Reading the shapes of types: `&StageContext`, `impl Iterator<Item =
//! T>`, a path's last segment.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Type, TypeParamBound};

pub(super) fn is_context_ref(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => last_segment(&r.elem).as_deref() == Some("StageContext"),
        _ => false,
    }
}

pub(super) fn last_segment(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        Type::Group(g) => last_segment(&g.elem),
        Type::Paren(p) => last_segment(&p.elem),
        _ => None,
    }
}

pub(super) fn is_impl_iterator(ty: &Type) -> bool {
    impl_bound(ty).is_some_and(|(name, _)| name.contains("Iterator"))
}

/// For `impl Trait<Item = X>`, the trait's name and `X`.
pub(super) fn impl_bound(ty: &Type) -> Option<(String, TokenStream)> {
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

pub(super) fn flat_item(ty: &Type) -> Option<TokenStream> {
    impl_bound(ty).map(|(_, item)| item)
}
