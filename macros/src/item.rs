//! Parsing and checking the annotated item: only a fn with a body, not a
//! `const fn`. On any problem the caller emits the error next to the
//! original item, unchanged, so the user sees one error and the IDE keeps
//! working on the rest of the code.

use proc_macro2::{Delimiter, Group, Spacing, TokenStream, TokenTree};
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::token::{Brace, Paren};
use syn::{
    Attribute, Block, FnArg, Generics, Item, ItemFn, ReturnType, Signature, Token, TraitItemFn,
    Type, Visibility,
};

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
    /// else `None`, and [`parse_fn`] says what is wrong. The signature's
    /// parameters are left out where the head's tokens tell the rest (see
    /// [`Head::scan`]): only a body run as a closure or an inner async
    /// block needs them, and asks [`Head::parameters`].
    pub fn parse(item: TokenStream) -> Option<Head> {
        let mut trees: Vec<TokenTree> = item.into_iter().collect();
        let Some(TokenTree::Group(body)) = trees.pop() else {
            return None;
        };
        if body.delimiter() != Delimiter::Brace {
            return None;
        }
        let (attrs, sig) = match Head::scan(&trees) {
            Some(head) => head,
            None => {
                let head = |input: ParseStream| {
                    let attrs = input.call(Attribute::parse_outer)?;
                    let _: Visibility = input.parse()?;
                    let sig: Signature = input.parse()?;
                    Ok((attrs, sig))
                };
                head.parse2(trees.into_iter().collect()).ok()?
            }
        };
        if sig.constness.is_some() {
            return None;
        }
        let block = Block {
            brace_token: Brace(body.delim_span()),
            stmts: Vec::new(),
        };
        let func = ItemFn {
            attrs,
            vis: Visibility::Inherited,
            sig,
            block: Box::new(block),
        };
        Some(Head { func, body })
    }

    /// The head read from its tokens, syn parsing only the attributes and
    /// the return type: `#[attrs] [pub(..)] [async] [unsafe] fn name
    /// [<generics>] (params) [-> Type] [where ..]`. Anything else (`const`,
    /// `extern`, an unexpected token) is `None`, for syn's full parse.
    fn scan(trees: &[TokenTree]) -> Option<(Vec<Attribute>, Signature)> {
        let mut i = 0;
        while let (Some(TokenTree::Punct(p)), Some(TokenTree::Group(g))) =
            (trees.get(i), trees.get(i + 1))
        {
            if p.as_char() != '#' || g.delimiter() != Delimiter::Bracket {
                return None;
            }
            i += 2;
        }
        let attrs = Attribute::parse_outer
            .parse2(trees[..i].iter().cloned().collect())
            .ok()?;
        let mut asyncness = None;
        let mut unsafety = None;
        let fn_token = loop {
            let TokenTree::Ident(word) = trees.get(i)? else {
                return None;
            };
            match word.to_string().as_str() {
                "pub" => {
                    if let Some(TokenTree::Group(g)) = trees.get(i + 1) {
                        if g.delimiter() == Delimiter::Parenthesis {
                            i += 1;
                        }
                    }
                }
                "async" => asyncness = Some(Token![async](word.span())),
                "unsafe" => unsafety = Some(Token![unsafe](word.span())),
                "fn" => break Token![fn](word.span()),
                _ => return None,
            }
            i += 1;
        };
        let TokenTree::Ident(ident) = trees.get(i + 1)? else {
            return None;
        };
        i += 2;
        if matches!(trees.get(i), Some(TokenTree::Punct(p)) if p.as_char() == '<') {
            i = skip_angles(trees, i)?;
        }
        let Some(TokenTree::Group(params)) = trees.get(i) else {
            return None;
        };
        if params.delimiter() != Delimiter::Parenthesis {
            return None;
        }
        i += 1;
        let output = match (trees.get(i), trees.get(i + 1)) {
            (Some(TokenTree::Punct(dash)), Some(TokenTree::Punct(gt)))
                if dash.as_char() == '-'
                    && dash.spacing() == Spacing::Joint
                    && gt.as_char() == '>' =>
            {
                let end = type_end(trees, i + 2);
                let ty: Type = syn::parse2(trees[i + 2..end].iter().cloned().collect()).ok()?;
                ReturnType::Type(Token![->](dash.span()), Box::new(ty))
            }
            (None, _) => ReturnType::Default,
            (Some(TokenTree::Ident(w)), _) if w == "where" => ReturnType::Default,
            _ => return None,
        };
        let sig = Signature {
            constness: None,
            asyncness,
            unsafety,
            abi: None,
            fn_token,
            ident: ident.clone(),
            generics: Generics::default(),
            paren_token: Paren(params.delim_span()),
            inputs: Punctuated::new(),
            variadic: None,
            output,
        };
        Some((attrs, sig))
    }

    /// The parameters of the fn `item`, parsed: what [`Head::parse`] may
    /// have left out.
    pub fn parameters(item: TokenStream) -> Punctuated<FnArg, Token![,]> {
        let mut trees: Vec<TokenTree> = item.into_iter().collect();
        trees.pop();
        let head = |input: ParseStream| {
            let _ = input.call(Attribute::parse_outer)?;
            let _: Visibility = input.parse()?;
            input.parse::<Signature>()
        };
        head.parse2(trees.into_iter().collect())
            .map(|sig| sig.inputs)
            .unwrap_or_default()
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

/// The index just past the generics that open at `trees[start]` (a `<`);
/// a `->` inside (`F: Fn() -> T`) closes nothing.
fn skip_angles(trees: &[TokenTree], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while let Some(tt) = trees.get(i) {
        if let TokenTree::Punct(p) = tt {
            match p.as_char() {
                '-' if p.spacing() == Spacing::Joint => i += 1,
                '<' => depth += 1,
                '>' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Where a return type that starts at `trees[start]` ends: at a `where`
/// outside its generics, or at the end.
fn type_end(trees: &[TokenTree], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while let Some(tt) = trees.get(i) {
        match tt {
            TokenTree::Punct(p) if p.as_char() == '-' && p.spacing() == Spacing::Joint => i += 1,
            TokenTree::Punct(p) if p.as_char() == '<' => depth += 1,
            TokenTree::Punct(p) if p.as_char() == '>' => depth = depth.saturating_sub(1),
            TokenTree::Ident(w) if depth == 0 && w == "where" => return i,
            _ => {}
        }
        i += 1;
    }
    trees.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::{quote, ToTokens};

    /// What the token-level reading of a head found, or `None` where it
    /// leaves the head to syn.
    fn scan(item: TokenStream) -> Option<(usize, bool, String, String)> {
        let trees: Vec<TokenTree> = item.into_iter().collect();
        Head::scan(&trees[..trees.len() - 1]).map(|(attrs, sig)| {
            let output = match &sig.output {
                ReturnType::Default => String::new(),
                ReturnType::Type(_, ty) => ty.to_token_stream().to_string(),
            };
            (
                attrs.len(),
                sig.asyncness.is_some(),
                sig.ident.to_string(),
                output,
            )
        })
    }

    #[test]
    fn the_head_is_read_from_its_tokens() {
        assert_eq!(
            scan(quote!(
                #[inline]
                #[doc = "x"]
                pub(crate) async fn load<T: Fn() -> u8>(t: T) -> Result<Vec<u8>, E>
                where
                    T: Clone,
                {
                }
            )),
            Some((2, true, "load".into(), "Result < Vec < u8 > , E >".into()))
        );
        assert_eq!(
            scan(quote!(
                unsafe fn raw(p: *const u8) {}
            )),
            Some((0, false, "raw".into(), String::new()))
        );
        assert_eq!(
            scan(quote!(
                fn it<'a>(v: &'a [u8]) -> impl Iterator<Item = &'a u8> + 'a
                where
                    u8: 'a,
                {
                }
            )),
            Some((
                0,
                false,
                "it".into(),
                "impl Iterator < Item = & 'a u8 > + 'a".into()
            ))
        );
        assert_eq!(
            scan(quote!(
                fn f(x: u8)
                where
                    u8: Copy,
                {
                }
            )),
            Some((0, false, "f".into(), String::new()))
        );
    }

    #[test]
    fn other_heads_are_left_to_syn() {
        for item in [
            quote!(
                const fn c() {}
            ),
            quote!(
                extern "C" fn e() {}
            ),
            quote!(
                pub(in crate::m) default fn d() {}
            ),
        ] {
            assert_eq!(scan(item.clone()), None, "{item}");
        }
        let head = Head::parse(quote!(
            pub extern "C" fn e(a: u8) -> u8 {
                a
            }
        ))
        .unwrap();
        assert_eq!(head.func.sig.inputs.len(), 1);
        assert_eq!(
            Head::parameters(quote!(
                fn f(a: u8, (b, c): (u8, u8)) {}
            ))
            .len(),
            2
        );
    }
}
