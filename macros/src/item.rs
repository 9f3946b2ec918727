//! Parsing and checking the annotated item: only a fn with a body, not a
//! `const fn`. On any problem the caller emits the error next to the
//! original item, unchanged, so the user sees one error and the IDE keeps
//! working on the rest of the code.

use proc_macro2::TokenStream;
use syn::{Item, ItemFn, TraitItemFn};

/// Parses `item` as a fn with a body that `#[name]` can annotate.
pub fn parse_fn(item: TokenStream, name: &str) -> syn::Result<ItemFn> {
    match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(f)) => {
            if let Some(c) = &f.sig.constness {
                return Err(syn::Error::new_spanned(
                    c,
                    format!("#[{name}] cannot be applied to a const fn"),
                ));
            }
            Ok(f)
        }
        Ok(Item::Verbatim(_)) | Err(_) => match syn::parse2::<TraitItemFn>(item.clone()) {
            Ok(TraitItemFn {
                default: None,
                semi_token: Some(semi),
                ..
            }) => Err(syn::Error::new_spanned(
                semi,
                format!("#[{name}] needs a function body"),
            )),
            _ => match syn::parse2::<Item>(item) {
                Err(e) => Err(e),
                Ok(other) => Err(not_a_fn(&other, name)),
            },
        },
        Ok(other) => Err(not_a_fn(&other, name)),
    }
}

fn not_a_fn(item: &Item, name: &str) -> syn::Error {
    let (what, span) = match item {
        Item::Struct(i) => ("a struct", i.struct_token.span),
        Item::Enum(i) => ("an enum", i.enum_token.span),
        Item::Union(i) => ("a union", i.union_token.span),
        Item::Impl(i) => ("an impl block", i.impl_token.span),
        Item::Trait(i) => ("a trait", i.trait_token.span),
        Item::Mod(i) => ("a module", i.mod_token.span),
        Item::Static(i) => ("a static", i.static_token.span),
        Item::Const(i) => ("a const", i.const_token.span),
        Item::Type(i) => ("a type alias", i.type_token.span),
        Item::Use(i) => ("a use declaration", i.use_token.span),
        _ => {
            return syn::Error::new_spanned(item, format!("#[{name}] can only be applied to a fn"))
        }
    };
    syn::Error::new(
        span,
        format!("#[{name}] cannot be applied to {what}; expected a fn"),
    )
}
