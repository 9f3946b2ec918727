//! The site finder: rewrites the exits of the annotated function that the
//! expansion can see (`return`, `?`), and marks statements that contain a
//! macro invocation which could hide an exit. Closures, async blocks, const
//! blocks and nested items are skipped on purpose: their `return` and `?`
//! are not exits of the annotated function.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, Macro, Stmt, Token, Type};

/// What every rewritten exit needs to know about the function.
pub struct Cx {
    /// The declared return type, `impl Trait` replaced by `_`.
    pub ret_ty: TokenStream,
    /// The `ret` option: also record the value's Debug.
    pub ret: bool,
}

/// Which exit: the name of an `ExitSite` variant.
#[derive(Clone, Copy)]
pub enum Which {
    Return,
    Question,
    Tail,
}

impl Cx {
    /// `::core::line!(), ::core::column!()` at `span`: the user's span, so
    /// that they report the user's position, not the attribute's.
    pub fn position(span: Span) -> TokenStream {
        quote_spanned!(span=> ::core::line!(), ::core::column!())
    }

    /// `{ let __lastwords_value: R = EXPR; guard.exit(..); __lastwords_value }`
    pub fn capture(&self, expr: TokenStream, which: Which, span: Span) -> TokenStream {
        let ty = &self.ret_ty;
        let exit = self.exit_stmt(which, span);
        let value = value_ident();
        quote_spanned! {Span::mixed_site()=>
            {
                let #value: #ty = #expr;
                #exit
                #value
            }
        }
    }

    /// `guard.exit(Site::X, line, col, outcome!(&value), Some(&value));`
    pub fn exit_stmt(&self, which: Which, span: Span) -> TokenStream {
        let site = match which {
            Which::Return => quote_spanned!(Span::mixed_site()=> Return),
            Which::Question => quote_spanned!(Span::mixed_site()=> Question),
            Which::Tail => quote_spanned!(Span::mixed_site()=> Tail),
        };
        let guard = guard_ident();
        let value = value_ident();
        let pos = Cx::position(span);
        let debug = self.debug_value();
        // The allow covers only this statement: after a diverging tail
        // (`loop {}`) it is unreachable, which is not the user's doing.
        quote_spanned! {Span::mixed_site()=>
            #[allow(unreachable_code)]
            #guard.exit(
                ::lastwords::__private::Site::#site,
                #pos,
                ::lastwords::__private::outcome!(&#value),
                #debug,
            );
        }
    }

    /// `Some(&value as &dyn Debug)` with `ret`, else `None`.
    pub fn debug_value(&self) -> TokenStream {
        let value = value_ident();
        if self.ret {
            quote_spanned!(Span::mixed_site()=>
                ::core::option::Option::Some(&#value as &dyn ::core::fmt::Debug))
        } else {
            quote_spanned!(Span::mixed_site()=> ::core::option::Option::None)
        }
    }
}

pub fn guard_ident() -> syn::Ident {
    syn::Ident::new("__lastwords_guard", Span::mixed_site())
}

pub fn value_ident() -> syn::Ident {
    syn::Ident::new("__lastwords_value", Span::mixed_site())
}

/// Rewrites `return` and `?` at the function's own level and inserts the
/// macro markers.
pub struct ExitSites<'a> {
    pub cx: &'a Cx,
    /// Set when a statement invokes a macro that could hide a `return`.
    pub hiding_macro: bool,
}

impl VisitMut for ExitSites<'_> {
    fn visit_expr_closure_mut(&mut self, _: &mut syn::ExprClosure) {}
    fn visit_expr_async_mut(&mut self, _: &mut syn::ExprAsync) {}
    fn visit_expr_const_mut(&mut self, _: &mut syn::ExprConst) {}
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}

    fn visit_block_mut(&mut self, block: &mut Block) {
        let mut stmts = Vec::with_capacity(block.stmts.len());
        for mut stmt in block.stmts.drain(..) {
            let marker = HidingMacro::find(&stmt);
            self.visit_stmt_mut(&mut stmt);
            if let Some(span) = marker {
                stmts.push(marker_stmt(span));
                self.hiding_macro = true;
            }
            stmts.push(stmt);
        }
        block.stmts = stmts;
    }

    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        self.rewrite_macro_args(mac);
    }

    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        // Children first, so that the tokens this produces are never visited.
        visit_mut::visit_expr_mut(self, expr);
        match expr {
            // Input:  return EXPR
            // Output: return { let __lastwords_value: R = EXPR;
            //                  __lastwords_guard.exit(Site::Return, line, col, ..);
            //                  __lastwords_value }
            Expr::Return(ret) => {
                let span = ret.return_token.span;
                let value = match &ret.expr {
                    Some(e) => e.to_token_stream(),
                    None => quote!(()),
                };
                let captured = self.cx.capture(value, Which::Return, span);
                let attrs = &ret.attrs;
                let return_token = ret.return_token;
                *expr = Expr::Verbatim(quote!(#(#attrs)* #return_token #captured));
            }
            // Input:  EXPR?
            // Output: (match Try::branch(EXPR) {
            //     ControlFlow::Continue(v) => v,
            //     ControlFlow::Break(r) => return { let __lastwords_value: R =
            //         FromResidual::from_residual(r); guard.exit(Site::Question, ..); .. },
            // })
            Expr::Try(t) => {
                let span = t.question_token.span;
                let attrs = &t.attrs;
                let inner = &t.expr;
                let residual = syn::Ident::new("__lastwords_residual", Span::mixed_site());
                let output = syn::Ident::new("__lastwords_output", Span::mixed_site());
                let captured = self.cx.capture(
                    quote_spanned!(Span::mixed_site()=>
                        ::lastwords::__private::FromResidual::from_residual(#residual)),
                    Which::Question,
                    span,
                );
                let glue = quote_spanned! {Span::mixed_site()=>
                    match ::lastwords::__private::Try::branch(#inner) {
                        ::core::ops::ControlFlow::Continue(#output) => #output,
                        ::core::ops::ControlFlow::Break(#residual) => return #captured,
                    }
                };
                let paren = proc_macro2::Group::new(proc_macro2::Delimiter::Parenthesis, glue);
                let mut paren = TokenTree::Group(paren);
                paren.set_span(Span::mixed_site());
                *expr = Expr::Verbatim(quote!(#(#attrs)* #paren));
            }
            _ => {}
        }
    }
}

impl ExitSites<'_> {
    /// Input:  println!("{}", fetch()?)
    /// Output: println!("{}", (match Try::branch(fetch()) { .. }))
    ///
    /// Only for well-known macros whose arguments are expressions, and only
    /// when the tokens contain a `?` or `return`; anything that does not
    /// parse stays opaque (the statement's marker covers it).
    fn rewrite_macro_args(&mut self, mac: &mut Macro) {
        if !is_known_safe(mac) || !has_exit_tokens(mac.tokens.clone()) {
            return;
        }
        let Ok(mut args) = mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated)
        else {
            return;
        };
        for arg in &mut args {
            self.visit_expr_mut(arg);
        }
        mac.tokens = args.into_token_stream();
    }
}

/// `__lastwords_guard.at_macro(line, col);` at the macro invocation.
fn marker_stmt(span: Span) -> Stmt {
    let guard = guard_ident();
    let pos = Cx::position(span);
    Stmt::Expr(
        Expr::Verbatim(quote_spanned!(Span::mixed_site()=>
            #[allow(unreachable_code)] #guard.at_macro(#pos))),
        Some(Token![;](Span::mixed_site())),
    )
}

fn has_exit_tokens(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Punct(p) => p.as_char() == '?',
        TokenTree::Ident(i) => i == "return",
        TokenTree::Group(g) => has_exit_tokens(g.stream()),
        TokenTree::Literal(_) => false,
    })
}

/// Macros known not to hide a `return`: formatting, assertions (their
/// panics are recorded as `unwind`), logging, and the like.
fn is_known_safe(mac: &Macro) -> bool {
    const SAFE: &[&str] = &[
        "assert",
        "assert_eq",
        "assert_ne",
        "cfg",
        "column",
        "compile_error",
        "concat",
        "crumb",
        "dbg",
        "debug",
        "debug_assert",
        "debug_assert_eq",
        "debug_assert_ne",
        "env",
        "eprint",
        "eprintln",
        "error",
        "event",
        "file",
        "format",
        "format_args",
        "include",
        "include_bytes",
        "include_str",
        "info",
        "line",
        "matches",
        "module_path",
        "option_env",
        "panic",
        "pin",
        "print",
        "println",
        "stringify",
        "thread_local",
        "todo",
        "trace",
        "unimplemented",
        "unreachable",
        "vec",
        "warn",
        "write",
        "writeln",
    ];
    mac.path
        .segments
        .last()
        .is_some_and(|s| SAFE.contains(&s.ident.to_string().as_str()))
}

/// Does this statement invoke, at the function's own level, a macro that
/// could hide a `return`? Yields the first such invocation's span.
struct HidingMacro(Option<Span>);

impl HidingMacro {
    fn find(stmt: &Stmt) -> Option<Span> {
        let mut finder = HidingMacro(None);
        finder.visit_stmt(stmt);
        finder.0
    }
}

impl<'ast> Visit<'ast> for HidingMacro {
    fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
    fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}
    fn visit_expr_const(&mut self, _: &'ast syn::ExprConst) {}
    fn visit_item(&mut self, _: &'ast syn::Item) {}
    fn visit_type(&mut self, _: &'ast Type) {}

    fn visit_macro(&mut self, mac: &'ast Macro) {
        if self.0.is_none() && !is_known_safe(mac) {
            self.0 = Some(mac.path.span());
        }
        visit::visit_macro(self, mac);
    }
}

/// Replaces every `impl Trait` in the return type by `_`, so that the type
/// can annotate a `let` inside the body.
pub struct ImplToInfer;

impl VisitMut for ImplToInfer {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(it) = ty {
            *ty = Type::Infer(syn::TypeInfer {
                underscore_token: Token![_](it.impl_token.span),
            });
            return;
        }
        visit_mut::visit_type_mut(self, ty);
    }
}
