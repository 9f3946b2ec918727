//! Parsing and checking the annotated item: only a fn with a body, not a
//! `const fn`. On any problem the caller emits the error next to the
//! original item, unchanged, so the user sees one error and the IDE keeps
//! working on the rest of the code.

use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
use syn::parse::{ParseStream, Parser};
use syn::token::Brace;
use syn::{Attribute, Block, Item, ItemFn, Signature, TraitItemFn, Visibility};

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

/// A fn with a body, its head parsed and its body not yet: what a body
/// whose only exit is its tail needs (see `simple`); [`Head::parse_body`]
/// parses the rest. Splitting the body off first keeps syn's parse of the
/// head from walking the body's tokens.
pub struct Head {
    /// The fn, its block still empty.
    pub func: ItemFn,
    /// The body's braces.
    pub body: Group,
}

impl Head {
    /// The head of `item`, if it is a fn with a body and not a `const fn`;
    /// else `None`, and [`parse_fn`] says what is wrong.
    pub fn parse(item: TokenStream) -> Option<Head> {
        let mut trees: Vec<TokenTree> = item.into_iter().collect();
        let Some(TokenTree::Group(body)) = trees.pop() else {
            return None;
        };
        if body.delimiter() != Delimiter::Brace {
            return None;
        }
        let head = |input: ParseStream| {
            let attrs = input.call(Attribute::parse_outer)?;
            let vis: Visibility = input.parse()?;
            let sig: Signature = input.parse()?;
            Ok((attrs, vis, sig))
        };
        let (attrs, vis, sig) = head.parse2(trees.into_iter().collect()).ok()?;
        if sig.constness.is_some() {
            return None;
        }
        let block = Block {
            brace_token: Brace(body.delim_span()),
            stmts: Vec::new(),
        };
        let func = ItemFn {
            attrs,
            vis,
            sig,
            block: Box::new(block),
        };
        Some(Head { func, body })
    }

    /// The fn with its body parsed, inner attributes (`#![..]`) after the
    /// outer ones, as `ItemFn`'s own parse puts them; only where it may
    /// exit when it can be (see `segments`).
    pub fn parse_body(self) -> syn::Result<ItemFn> {
        let Head { mut func, body } = self;
        if let Some(stmts) = crate::segments::statements(&body) {
            func.block.stmts = stmts;
            return Ok(func);
        }
        let block = |input: ParseStream| {
            let content;
            let brace_token = syn::braced!(content in input);
            let inner = content.call(Attribute::parse_inner)?;
            let stmts = content.call(Block::parse_within)?;
            Ok((inner, Block { brace_token, stmts }))
        };
        let (inner, block) = block.parse2(TokenTree::Group(body).into())?;
        func.attrs.extend(inner);
        func.block = Box::new(block);
        Ok(func)
    }
}
