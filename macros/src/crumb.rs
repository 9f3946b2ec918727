//! `#[breadcrumb]` and `crumb!`: push a static site into the runtime's ring
//! (always, even when the event is filtered out), then emit a `breadcrumb`
//! event through `tracing` when enabled.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::{Lit, LitStr};

use crate::attr::{self, CrumbArgs, Level};
use crate::expand::{error_and_item, line_col, split_attrs};
use crate::item;

// Input:  #[breadcrumb] fn spawn_tasks() { body }
// Output: fn spawn_tasks() {
//     {
//         static __LASTWORDS_CRUMB: CrumbSite = CrumbSite { name: "crate::spawn_tasks", file, line };
//         push_crumb(&__LASTWORDS_CRUMB);
//         tracing::event!(name: "lastwords::breadcrumb", Level::INFO, "kind" = "breadcrumb", ..);
//     }
//     body
// }
pub fn breadcrumb(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = attr::crumb_args(args);
    let func = item::parse_fn(item.clone(), "breadcrumb");
    let (args, mut func) = match (args, func) {
        (Ok(args), Ok(func)) => (args, func),
        (Err(mut a), Err(f)) => {
            a.combine(f);
            return error_and_item(&a, item);
        }
        (Err(e), _) | (_, Err(e)) => return error_and_item(&e, item),
    };
    let CrumbArgs { level, message } = args;
    let ident = &func.sig.ident;
    let (line, _) = line_col(ident.span());
    // The ring needs a static name; the record gets the full path with the
    // type of a method (`app::Conn::run`), as `#[exit_path]` records do.
    let static_path = quote_spanned!(Span::mixed_site()=>
        ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)));
    let fn_path = enclosing_fn();
    let name = match &message {
        Some(m) => quote!(#m),
        None => static_path,
    };
    let fmt = match &message {
        Some(m) => quote!(#m),
        None => quote_spanned!(Span::mixed_site()=> "{}", #fn_path),
    };
    let crumb = emit(level.unwrap_or(Level::Info), &name, &line, &fn_path, &fmt);
    let inner_attrs = split_attrs(&mut func);
    let stmts = &func.block.stmts;
    let body = quote!(#(#inner_attrs)* #crumb #(#stmts)*);
    let mut braces = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, body);
    braces.set_span(func.block.brace_token.span.join());
    let attrs = &func.attrs;
    let vis = &func.vis;
    let sig = &func.sig;
    quote!(#(#attrs)* #vis #sig #braces)
}

/// The block that pushes the ring entry and emits the event; `event_args`
/// are the user's fields and message in `tracing::event!` syntax.
fn emit(
    level: Level,
    name: &TokenStream,
    line: &TokenStream,
    fn_path: &TokenStream,
    event_args: &TokenStream,
) -> TokenStream {
    let site = syn::Ident::new("__LASTWORDS_CRUMB", Span::mixed_site());
    let level = level.ident();
    let tracing = quote_spanned!(Span::mixed_site()=> ::lastwords::__private::tracing);
    quote_spanned! {Span::mixed_site()=>
        {
            static #site: ::lastwords::__private::CrumbSite = ::lastwords::__private::CrumbSite {
                name: #name,
                file: ::core::file!(),
                line: #line,
            };
            ::lastwords::__private::push_crumb(&#site);
            #tracing::event!(
                name: "lastwords::breadcrumb",
                #tracing::Level::#level,
                "kind" = "breadcrumb",
                "fn" = #fn_path,
                "file" = #site.file,
                "line" = #site.line,
                #event_args
            );
        }
    }
}

// Input:  crumb!("entering select", tasks = 3)
// Output: { static ..; push_crumb(..);
//           event!(.., "fn" = enclosing_fn(<marker fn's type name>), tasks = 3, "entering select"); }
//
// Input:  crumb!(tasks = 3, "entering select with {} tasks", n)
// Output: { static ..; push_crumb(..); event!(.., tasks = 3, "entering select with {} tasks", n); }
pub fn crumb(input: TokenStream) -> TokenStream {
    let segments = split_commas(input.clone());
    let lone_literal = |seg: &Vec<TokenTree>| match seg.as_slice() {
        [TokenTree::Literal(l)] => match Lit::new(l.clone()) {
            Lit::Str(s) => Some(s),
            _ => None,
        },
        _ => None,
    };
    let looks_like_field = |seg: &Vec<TokenTree>| match seg.as_slice() {
        [TokenTree::Punct(p), ..] if p.as_char() == '?' || p.as_char() == '%' => true,
        [TokenTree::Ident(_)] => true,
        [_, TokenTree::Punct(p), ..] => p.as_char() == '=' || p.as_char() == '.',
        _ => false,
    };
    let message: Option<LitStr> = segments.iter().find_map(lone_literal);
    // A message first followed by fields (`"msg", key = value`) is
    // reordered to tracing's `key = value, "msg"`; a message with `{}` keeps
    // its arguments after it.
    let event_args = match segments.split_first() {
        Some((first, rest))
            if lone_literal(first).is_some_and(|m| !m.value().contains('{'))
                && !rest.is_empty()
                && rest.iter().all(looks_like_field) =>
        {
            let rest = rest.iter().map(|seg| quote!(#(#seg)*));
            quote!(#(#rest,)* #(#first)*)
        }
        _ => input,
    };
    let name = match &message {
        Some(m) => quote!(#m),
        None => quote_spanned!(Span::mixed_site()=> ::core::module_path!()),
    };
    let line = quote_spanned!(Span::mixed_site()=> ::core::line!());
    let fn_path = enclosing_fn();
    emit(Level::Info, &name, &line, &fn_path, &event_args)
}

/// The enclosing fn's path, from the type name of a marker fn declared
/// where the expansion lands; evaluated only when the event is enabled.
fn enclosing_fn() -> TokenStream {
    quote_spanned!(Span::mixed_site()=>
    ::lastwords::__private::enclosing_fn({
        fn __lastwords_here() {}
        ::core::any::type_name_of_val(&__lastwords_here)
    }))
}

fn split_commas(input: TokenStream) -> Vec<Vec<TokenTree>> {
    let mut out = vec![Vec::new()];
    for tt in input {
        match &tt {
            TokenTree::Punct(p) if p.as_char() == ',' => out.push(Vec::new()),
            _ => out.last_mut().map_or((), |seg| seg.push(tt)),
        }
    }
    out.retain(|seg| !seg.is_empty());
    out
}
