//! The expansion of `#[exit_path]`.
//!
//! ```ignore
//! // Input:
//! #[exit_path]
//! fn load(path: &Path) -> io::Result<String> {
//!     let text = fs::read_to_string(path)?;
//!     Ok(text)
//! }
//!
//! // Output (glue tokens are `Span::mixed_site()`):
//! fn load(path: &Path) -> io::Result<String> {
//!     static __LASTWORDS_EXIT: ExitSite = exit_site!(name: "load", ..);
//!     let __lastwords_guard = ExitGuard::enter(&__LASTWORDS_EXIT);
//!     let text = (match Try::branch(fs::read_to_string(path)) {
//!         ControlFlow::Continue(v) => v,
//!         ControlFlow::Break(r) => return {
//!             let __lastwords_value: io::Result<String> = FromResidual::from_residual(r);
//!             __lastwords_guard.exit(Site::Question, line!(), column!(), outcome!(&__lastwords_value), None);
//!             __lastwords_value
//!         },
//!     });
//!     {
//!         let __lastwords_value: io::Result<String> = Ok(text);
//!         __lastwords_guard.exit(Site::Tail, line!(), column!(), outcome!(&__lastwords_value), None);
//!         __lastwords_value
//!     }
//! }
//! ```
//!
//! An `async fn` keeps its signature; its body runs as an inner
//! `async move` block awaited by the guard's owner, so that a future dropped
//! before completion (`cancelled`) and an exit hidden in a macro (`macro`,
//! whose value is then seen by `finish`) can be told apart.
//!
//! A sync fn whose body invokes a macro that could hide a `return`
//! (`bail!`, `ensure!`, a local `macro_rules!`) runs its body in a `move`
//! closure called at once, for the same reason: the hidden `return` leaves
//! the closure with its value, and `finish` records it with the macro's
//! position and the real outcome and error. Other sync fns keep the plain
//! form above, with nothing added between the caller and the body.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{AttrStyle, Block, Expr, ItemFn, LitStr, ReturnType, Stmt, Type};

use crate::attr::{self, ExitArgs, Level};
use crate::item;
use crate::sites::{guard_ident, value_ident, Cx, ExitSites, ImplToInfer, Which};

/// Entry point: parse, check, expand; on error, the error plus the item
/// unchanged.
pub fn exit_path(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = attr::exit_args(args);
    let func = item::parse_fn(item.clone(), "exit_path");
    match (args, func) {
        (Ok(args), Ok(func)) => expand(&args, func),
        (Err(mut a), Err(f)) => {
            a.combine(f);
            error_and_item(&a, item)
        }
        (Err(e), _) | (_, Err(e)) => error_and_item(&e, item),
    }
}

pub fn error_and_item(err: &syn::Error, item: TokenStream) -> TokenStream {
    let err = err.to_compile_error();
    quote!(#err #item)
}

/// `(line, col)` tokens at `span`.
pub fn line_col(span: Span) -> (TokenStream, TokenStream) {
    (
        quote_spanned!(span=> ::core::line!()),
        quote_spanned!(span=> ::core::column!()),
    )
}

/// Splits `#![inner]` attributes (which stay first in the body) from the
/// outer ones.
pub fn split_attrs(func: &mut ItemFn) -> Vec<syn::Attribute> {
    let (inner, outer) = func
        .attrs
        .drain(..)
        .partition(|a| matches!(a.style, AttrStyle::Inner(_)));
    func.attrs = outer;
    inner
}

fn expand(args: &ExitArgs, mut func: ItemFn) -> TokenStream {
    let is_async = func.sig.asyncness.is_some();
    let never =
        matches!(&func.sig.output, ReturnType::Type(_, ty) if matches!(**ty, Type::Never(_)));
    let ret_ty = match &func.sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => {
            let mut ty = (**ty).clone();
            ImplToInfer.visit_type_mut(&mut ty);
            ty.into_token_stream()
        }
    };
    let cx = Cx {
        ret_ty: ret_ty.clone(),
        ret: args.ret,
    };
    let inner_attrs = split_attrs(&mut func);
    let closure_ok = !is_async && closure_keeps_meaning(&func);
    let block: &mut Block = &mut func.block;
    let mut hiding_macro = false;
    let runtime_body = if is_async || never {
        false
    } else {
        adopt_runtime_body(&cx, block)
    };
    if !never && !runtime_body {
        let mut sites = ExitSites {
            cx: &cx,
            hiding_macro: false,
        };
        sites.visit_block_mut(block);
        hiding_macro = sites.hiding_macro;
        rewrite_tail(&cx, block);
    }
    let sync_closure = closure_ok && hiding_macro;

    let (mut ok, mut err, mut cancelled) = (
        args.level.unwrap_or(Level::Info),
        args.err_level.unwrap_or(Level::Error),
        Level::Warn,
    );
    if args.unexpected {
        (ok, err, cancelled) = (Level::Error, Level::Error, Level::Error);
    }
    let gate = ok.min(err).min(cancelled).ident();
    let (ok, err, cancelled) = (ok.ident(), err.ident(), cancelled.ident());
    let ident = &func.sig.ident;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));
    let custom = args.name.is_some();
    let label = match &args.label {
        Some(l) => quote!(::core::option::Option::Some(#l)),
        None => quote!(::core::option::Option::None),
    };
    let unexpected = args.unexpected;
    let (line, col) = line_col(ident.span());
    let site = syn::Ident::new("__LASTWORDS_EXIT", Span::mixed_site());
    let guard = guard_ident();
    let value = value_ident();
    let static_site = quote_spanned! {Span::mixed_site()=>
        static #site: ::lastwords::__private::ExitSite = ::lastwords::__private::exit_site!(
            name: #name,
            custom_name: #custom,
            line: #line,
            col: #col,
            label: #label,
            unexpected: #unexpected,
            is_async: #is_async,
            gate_level: #gate,
            ok: #ok,
            err: #err,
            cancelled: #cancelled,
        );
    };
    let stmts = &block.stmts;
    let body = if is_async && !never {
        let debug = cx.debug_value();
        quote_spanned! {Span::mixed_site()=>
            #(#inner_attrs)*
            #static_site
            let #guard = &::lastwords::__private::ExitGuard::enter(&#site);
            let #value: #ret_ty = async move { #(#stmts)* }.await;
            #guard.finish(::lastwords::__private::outcome!(&#value), #debug);
            #value
        }
    } else if runtime_body {
        // The guard is borrowed by the async block that now records the
        // exits; the fn's own code only runs the runtime.
        quote_spanned! {Span::mixed_site()=>
            #(#inner_attrs)*
            #static_site
            let #guard = &::lastwords::__private::ExitGuard::enter(&#site);
            #(#stmts)*
        }
    } else if sync_closure {
        // A `return` hidden in a macro (`bail!`) returns from the closure,
        // so its value is seen, as an async fn's is.
        let debug = cx.debug_value();
        quote_spanned! {Span::mixed_site()=>
            #(#inner_attrs)*
            #static_site
            let #guard = &::lastwords::__private::ExitGuard::enter(&#site);
            #[allow(clippy::redundant_closure_call)]
            let #value: #ret_ty = (move || { #(#stmts)* })();
            #guard.finish(::lastwords::__private::outcome!(&#value), #debug);
            #value
        }
    } else {
        quote_spanned! {Span::mixed_site()=>
            #(#inner_attrs)*
            #static_site
            let #guard = ::lastwords::__private::ExitGuard::enter(&#site);
            #(#stmts)*
        }
    };
    let attrs = &func.attrs;
    let vis = &func.vis;
    let sig = &func.sig;
    let mut braces = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, body);
    braces.set_span(func.block.brace_token.span.join());
    quote!(#(#attrs)* #vis #sig #braces)
}

/// `#[tokio::main]` (or `#[tokio::test]`) above `#[exit_path]` hands over a
/// sync fn whose body is the user's, moved into an async block that a
/// runtime then blocks on:
///
/// ```ignore
/// fn main() -> R {
///     let body = async { USER BODY };
///     ...
///     { return Builder::new_multi_thread()...block_on(body); }
/// }
/// ```
///
/// The user's `return`, `?` and tail are inside that block: it is
/// rewritten as an async fn's body would be, so the sites are the user's,
/// not the runtime's `return`. Returns whether the fn has that shape.
fn adopt_runtime_body(cx: &Cx, block: &mut Block) -> bool {
    let blocks_on_body = block
        .stmts
        .last()
        .is_some_and(|last| calls_block_on_body(last.to_token_stream()));
    let Some(Stmt::Local(local)) = block.stmts.first_mut() else {
        return false;
    };
    let named_body = matches!(&local.pat, syn::Pat::Ident(p) if p.ident == "body");
    let Some(init) = local.init.as_mut() else {
        return false;
    };
    let Expr::Async(body) = &mut *init.expr else {
        return false;
    };
    if !named_body || !blocks_on_body {
        return false;
    }
    let mut sites = ExitSites {
        cx,
        hiding_macro: false,
    };
    sites.visit_block_mut(&mut body.block);
    rewrite_tail(cx, &mut body.block);
    let ret_ty = &cx.ret_ty;
    let guard = guard_ident();
    let value = value_ident();
    let debug = cx.debug_value();
    let stmts = &body.block.stmts;
    // As in an async fn: an exit hidden in a macro leaves the inner block
    // with its value, which `finish` records.
    let wrapped = quote_spanned! {Span::mixed_site()=>
        let #value: #ret_ty = async move { #(#stmts)* }.await;
        #guard.finish(::lastwords::__private::outcome!(&#value), #debug);
        #value
    };
    body.block.stmts = vec![Stmt::Expr(Expr::Verbatim(wrapped), None)];
    true
}

/// Whether `tokens` contain `block_on(body)`.
fn calls_block_on_body(tokens: TokenStream) -> bool {
    let mut prev_block_on = false;
    for tt in tokens {
        match &tt {
            proc_macro2::TokenTree::Group(g) => {
                if prev_block_on
                    && g.delimiter() == proc_macro2::Delimiter::Parenthesis
                    && g.stream().to_string() == "body"
                {
                    return true;
                }
                if calls_block_on_body(g.stream()) {
                    return true;
                }
                prev_block_on = false;
            }
            proc_macro2::TokenTree::Ident(i) => prev_block_on = i == "block_on",
            _ => prev_block_on = false,
        }
    }
    false
}

/// Whether the body of this sync fn can run inside a `move` closure with the
/// same meaning. Not when:
/// - it is `#[track_caller]`: `Location::caller()` would name the closure;
/// - the result may borrow from a `&mut` input: a reborrow through a
///   captured `&mut` cannot leave the closure that captured it. A result
///   type that mentions a reference, a lifetime or `Self` (which may hold
///   the impl's lifetimes) counts as possibly borrowing.
///
/// Otherwise the fn keeps the plain rewriting, where an exit inside a macro
/// is recorded with outcome `unknown`.
fn closure_keeps_meaning(func: &ItemFn) -> bool {
    if func.attrs.iter().any(|a| a.path().is_ident("track_caller")) {
        return false;
    }
    let ReturnType::Type(_, ret) = &func.sig.output else {
        return true;
    };
    let mut borrows = Borrows::default();
    borrows.visit_type(ret);
    if !borrows.any() {
        return true;
    }
    let mut inputs = Borrows::default();
    for input in &func.sig.inputs {
        match input {
            syn::FnArg::Receiver(r) => {
                if r.mutability.is_some() && r.reference.is_some() {
                    return false;
                }
                inputs.visit_type(&r.ty);
            }
            syn::FnArg::Typed(t) => inputs.visit_type(&t.ty),
        }
    }
    !inputs.mutable
}

/// What references and lifetimes a type mentions.
#[derive(Default)]
struct Borrows {
    shared: bool,
    mutable: bool,
}

impl Borrows {
    fn any(&self) -> bool {
        self.shared || self.mutable
    }
}

impl<'ast> Visit<'ast> for Borrows {
    fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
        if r.mutability.is_some() {
            self.mutable = true;
        } else {
            self.shared = true;
        }
        syn::visit::visit_type_reference(self, r);
    }

    fn visit_lifetime(&mut self, _: &'ast syn::Lifetime) {
        self.shared = true;
    }

    fn visit_type_path(&mut self, p: &'ast syn::TypePath) {
        // `Self` may carry the impl's lifetimes without spelling them.
        if p.qself.is_none() && p.path.segments.first().is_some_and(|s| s.ident == "Self") {
            self.shared = true;
        }
        syn::visit::visit_type_path(self, p);
    }
}

/// The body's own exit: its tail expression, or falling off its end.
///
/// Input:  { stmts; TAIL }
/// Output: { stmts; { let __lastwords_value: R = TAIL; guard.exit(Site::Tail, ..); __lastwords_value } }
///
/// Input:  { stmts; }
/// Output: { stmts; { let __lastwords_value = (); guard.exit(Site::Tail, <closing brace>, ..); } }
fn rewrite_tail(cx: &Cx, block: &mut Block) {
    match block.stmts.last_mut() {
        // An attributed block tail (`#[tokio::main]` emits
        // `#[allow(..)] { ..; return rt.block_on(body); }`) stays in place:
        // its attributes must keep covering it, so its own tail is the one
        // rewritten.
        Some(Stmt::Expr(Expr::Block(inner), None)) if !inner.attrs.is_empty() => {
            rewrite_tail(cx, &mut inner.block);
        }
        Some(Stmt::Expr(expr, None)) => {
            let span = expr.span();
            let tokens = expr.to_token_stream();
            *expr = Expr::Verbatim(cx.capture(tokens, Which::Tail, span));
        }
        Some(
            stmt @ Stmt::Macro(syn::StmtMacro {
                semi_token: None, ..
            }),
        ) => {
            let span = stmt.span();
            let tokens = stmt.to_token_stream();
            *stmt = Stmt::Expr(Expr::Verbatim(cx.capture(tokens, Which::Tail, span)), None);
        }
        _ => {
            // No tail: the body is `()` or diverges; the value is not
            // annotated with R so that a diverging body still type-checks.
            let span = block.brace_token.span.close();
            let value = value_ident();
            let exit = cx.exit_stmt(Which::Tail, span);
            block.stmts.push(Stmt::Expr(
                Expr::Verbatim(quote_spanned! {Span::mixed_site()=>
                    #[allow(unreachable_code)]
                    let #value = ();
                }),
                None,
            ));
            block.stmts.push(Stmt::Expr(Expr::Verbatim(exit), None));
        }
    }
}
