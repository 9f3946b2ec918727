//! The expansion of `#[exit_path]`.
//!
//! ```text
//! // Input:
//! #[exit_path]
//! fn load(path: &Path) -> io::Result<String> {
//!     let text = fs::read_to_string(path)?;
//!     Ok(text)
//! }
//!
//! // Output (glue tokens are `Span::mixed_site()`):
//! fn load(path: &Path) -> io::Result<String> {
//!     static __LASTWORDS_EXIT: ExitSite = ExitSite::NEW;
//!     let __lastwords_guard = ExitGuard::enter(&__LASTWORDS_EXIT, 4, concat!(file!(), "\0", module_path!(), "\0load\06\04\0.."), { struct Here; type_name::<Here> });
//!     let __lastwords_classify = Kind::<io::Result<String>>::levels().__lastwords_classifier();
//!     let text = pass(Question::levels(&__lastwords_guard, 7, 32, fs::read_to_string(path)).__lastwords_pass())?;
//!     exit(&__lastwords_guard, Site::Tail, 8, 5, __lastwords_classify, Ok(text))
//! }
//! ```
//!
//! Each exit passes its value through a helper as an argument: the value
//! keeps its expected type and its temporaries' scope, and the user's `?`
//! stays in place. The guard records what no rewriting can see: a panic
//! unwinding through (`unwind`), an async fn's future dropped before it
//! completed (`cancelled`), and a `return` hidden in a macro (`macro`, at the
//! last marker the body passed).
//!
//! To see the value of a `return` hidden in a macro (`bail!`), a sync fn
//! that invokes one runs its body in a `move` closure called at once, and
//! an async fn runs it as an inner `async move` block polled by the layer's
//! `Finishing` (whose exits reach the guard through `CurrentGuard`: the
//! future grows by one word of state, see the layer's `polled` module);
//! the value they return is recorded if no seen exit recorded it. Both
//! capture every parameter whole, so that parameters drop as they would.
//! Other fns keep the plain form above, with nothing between the caller
//! and the body.

use proc_macro2::{LineColumn, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{AttrStyle, Block, Expr, ItemFn, LitStr, ReturnType, Stmt, Type};

use crate::attr::{self, ExitArgs, Level};
use crate::description::Description;
use crate::item::{self, Head};
use crate::simple::Simple;
use crate::sites::{guard_ident, invokes_hiding_macro, Cx, ExitSites, ImplToInfer, Shape, Which};

/// Entry point: parse, check, expand; on error, the error plus the item
/// unchanged.
pub fn exit_path(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = attr::exit_args(args);
    // A body whose only exit is its tail is not parsed (see `simple`).
    let (func, simple) = match Head::parse(item.clone()) {
        Some(head) => match simple_body(&head.func, &head.body) {
            Some(simple) => (Ok(head.func), Some(simple)),
            None => (head.parse_body(), None),
        },
        None => (item::parse_fn(item.clone(), "exit_path"), None),
    };
    match (args, func) {
        (Ok(args), Ok(func)) => match duplicate(&func) {
            Some(err) => error_and_item(&err, item),
            None if crate::clippy::running() => item,
            None => expand(&args, func, simple, item),
        },
        (Err(mut a), Err(f)) => {
            a.combine(f);
            error_and_item(&a, item)
        }
        (Err(e), _) | (_, Err(e)) => error_and_item(&e, item),
    }
}

/// The body split at its tail, when its tail is its only exit and the
/// return type is one the tail's value can be passed through `exit` as (not
/// `!`, not `impl Trait`).
fn simple_body(func: &ItemFn, body: &proc_macro2::Group) -> Option<Simple> {
    match &func.sig.output {
        ReturnType::Type(_, ty) if matches!(**ty, Type::Never(_) | Type::ImplTrait(_)) => None,
        _ => Simple::split(body),
    }
}

/// A second `#[exit_path]` below this one would record every exit twice.
fn duplicate(func: &ItemFn) -> Option<syn::Error> {
    func.attrs
        .iter()
        .find(|a| {
            a.path()
                .segments
                .last()
                .is_some_and(|s| s.ident == "exit_path")
        })
        .map(|a| syn::Error::new_spanned(a, "duplicate #[exit_path] attribute"))
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

fn expand(
    args: &ExitArgs,
    mut func: ItemFn,
    simple: Option<Simple>,
    item: TokenStream,
) -> TokenStream {
    let is_async = func.sig.asyncness.is_some();
    let never =
        matches!(&func.sig.output, ReturnType::Type(_, ty) if matches!(**ty, Type::Never(_)));
    let opaque =
        matches!(&func.sig.output, ReturnType::Type(_, ty) if matches!(**ty, Type::ImplTrait(_)));
    let ret_ty = match &func.sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => {
            let mut ty = (**ty).clone();
            ImplToInfer.visit_type_mut(&mut ty);
            ty.into_token_stream()
        }
    };
    let krate = match &args.krate {
        Some(path) => path.to_token_stream(),
        None => quote_spanned!(Span::mixed_site()=> ::lastwords),
    };
    let private = quote_spanned!(Span::mixed_site()=> #krate::__private);
    let cx = Cx {
        ret_ty: ret_ty.clone(),
        opaque,
        ret: args.ret,
        krate,
        private,
        marks: Default::default(),
        polled: Default::default(),
        late: Default::default(),
        late_fixed: Default::default(),
        item: item.clone(),
        body_has_cfg: Default::default(),
        shared: !never && !contains_infer(&ret_ty),
        shape: match &func.sig.output {
            ReturnType::Default => Shape::Returned,
            ReturnType::Type(_, ty) => Shape::of(ty),
        },
    };
    let private = cx.private();
    let inner_attrs = split_attrs(&mut func);
    let closure_ok = !is_async && !opaque && closure_keeps_meaning(&func);
    let block: &mut Block = &mut func.block;
    let mut hiding_macro = false;
    let is_simple = simple.is_some();
    if let Some(simple) = simple {
        simple_tail(&cx, simple, block);
    }
    let runtime_body = !is_simple && !is_async && !never && adopt_runtime_body(&cx, block);
    let adopted = !is_simple && !never && !runtime_body && adopt_instrumented_body(&cx, block);
    if !is_simple && !never && !runtime_body && !adopted {
        cx.polled.set(is_async && invokes_hiding_macro(block));
        let mut sites = ExitSites {
            cx: &cx,
            in_async: is_async,
            hiding_macro: false,
        };
        sites.visit_block_mut(block);
        hiding_macro = sites.hiding_macro;
        rewrite_tail(&cx, block, None);
    }
    let polled = cx.polled.get() && !adopted;
    let sync_closure = closure_ok && hiding_macro;

    let (mut ok, mut err, mut cancelled) = (
        args.level.unwrap_or(Level::Info),
        args.err_level.unwrap_or(Level::Error),
        Level::Warn,
    );
    if args.unexpected {
        (ok, err, cancelled) = (Level::Error, Level::Error, Level::Error);
    }
    // `site::flags` in the layer: levels 0 (trace) to 4 (error), 4 bits each.
    let code = |l: Level| 4 - l as u32;
    let flags = u32::from(args.name.is_some())
        | u32::from(args.unexpected) << 1
        | u32::from(is_async) << 2
        | u32::from(args.label.is_some()) << 3
        | code(ok) << 4
        | code(err) << 8
        | code(cancelled) << 12
        | code(ok.min(err).min(cancelled)) << 16;
    let gate = proc_macro2::Literal::u8_unsuffixed(4 - ok.min(err).min(cancelled) as u8);
    let ident = &func.sig.ident;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));
    let site = site_ident();
    let guard = guard_ident();
    // Only the forms that run the body as a closure or an inner async
    // block classify its value; before the prelude, which imports the
    // probe's traits if it is used.
    let wraps_body = polled || sync_closure;
    let (classify, closure) = if wraps_body {
        cx.classify_ret()
    } else {
        (TokenStream::new(), false)
    };
    let prelude = cx.prelude();
    // What the layer's `SiteInfo::parse` reads; split at NUL, so no field
    // but the label, last, may hold one.
    let mut description = Description::new();
    description.text(&name.value().replace('\0', "\u{fffd}"));
    description.text("\0");
    description.position(&Cx::position(ident.span()), "\0");
    description.text(&format!("\0{flags}\0"));
    cx.describe_marks(&mut description);
    description.text("\0");
    if let Some(label) = &args.label {
        description.text(&label.value());
    }
    let description = description.into_tokens();
    // `type_name` of a unit struct nested in the function is its path (the
    // `fn` field), read only when a record first needs it. A struct, not a
    // nested fn: an item without a body costs the compiler least.
    let here = quote_spanned!(Span::mixed_site()=> { struct Here; ::core::any::type_name::<Here> });
    // `main` may install the subscriber itself, after the guard starts.
    let enter = if ident == "main" {
        quote_spanned!(Span::mixed_site()=> enter_main(&#site, #description, #here))
    } else {
        quote_spanned!(Span::mixed_site()=> enter(&#site, #gate, #description, #here))
    };
    let static_site = if adopted && is_async {
        // The call starts where the adopted body is polled (see
        // `adopt_instrumented_body`): a closure that captures nothing, so
        // that the futures around hold nothing for it.
        let enter_fn = enter_ident();
        quote_spanned! {Span::mixed_site()=>
            static #site: #private::ExitSite = #private::ExitSite::NEW;
            let #enter_fn = || #private::ExitGuard::#enter;
            #prelude
        }
    } else {
        quote_spanned! {Span::mixed_site()=>
            static #site: #private::ExitSite = #private::ExitSite::NEW;
            let #guard = #private::ExitGuard::#enter;
            #prelude
        }
    };
    let finish = cx.polled_helper(Cx::helper(
        if args.ret { "finish_ret" } else { "finish" },
        closure,
    ));
    let stmts = &block.stmts;
    // An adopted body is run by a closure or an async block that needs the
    // guard by reference.
    let by_ref = if (adopted && !is_async) || runtime_body {
        quote_spanned!(Span::mixed_site()=> let #guard = &#guard;)
    } else {
        TokenStream::new()
    };
    let body = if polled {
        // The body runs as an inner async block, polled by the layer's
        // `Finishing`, which sees its value: that of a `return` hidden in
        // a macro too. Its exits reach the call's guard through
        // `CurrentGuard` (see the layer's `polled` module): the future
        // holds one word of state more than the body's, not a guard and a
        // reference to it.
        let mentions = mentions(&Head::parameters(item.clone()), stmts);
        let enter = quote_spanned!(Span::mixed_site()=> #private::ExitGuard::#enter);
        let polled = polled_body(&cx, &enter, &mentions, stmts);
        quote_spanned! {Span::mixed_site()=>
            #(#inner_attrs)*
            static #site: #private::ExitSite = #private::ExitSite::NEW;
            #prelude
            #polled.await
        }
    } else if sync_closure {
        // A `return` hidden in a macro (`bail!`) returns from the closure,
        // so its value is seen, as an async fn's is.
        let mentions = mentions(&Head::parameters(item.clone()), stmts);
        quote_spanned! {Span::mixed_site()=>
            #(#inner_attrs)*
            #static_site
            let #guard = &#guard;
            #private::#finish(#guard, #private::call_once(move || -> #ret_ty { #mentions #(#stmts)* }), #classify)
        }
    } else {
        quote_spanned! {Span::mixed_site()=>
            #(#inner_attrs)*
            #static_site
            #by_ref
            #(#stmts)*
        }
    };
    let mut braces = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, body);
    braces.set_span(func.block.brace_token.span.join());
    // The attributes, visibility and signature as they came, rather than
    // printed again from the syntax tree: all but the last token tree,
    // the body.
    let mut head: Vec<TokenTree> = item.into_iter().collect();
    head.pop();
    quote!(#(#head)* #braces)
}

/// The statements of a body whose only exit is its tail, then the tail
/// passed to `exit` (or `exit` at the closing brace): what `rewrite_tail`
/// makes of such a body, from its tokens.
fn simple_tail(cx: &Cx, simple: Simple, block: &mut Block) {
    let Simple {
        stmts,
        tail,
        close_end,
    } = simple;
    let exit = match tail {
        Some((tail, span)) => cx.exit_call(Which::Tail, span, tail),
        None => {
            let close = block.brace_token.span.close();
            let exit = cx.exit_unit(close, Cx::end_position(close_end, close));
            quote_spanned! {Span::mixed_site()=>
                #[allow(unreachable_code)]
                #exit;
            }
        }
    };
    block.stmts = vec![Stmt::Expr(Expr::Verbatim(quote!(#stmts #exit)), None)];
}

/// `let _ = (&pN, .., &p1, &self);`: a closure or an async block that
/// runs the body captures every parameter whole, last one first, so that
/// they drop in the order the function would drop them (locals first, then
/// the parameters from the last to the first) and a struct parameter is not
/// split into the fields the body uses.
///
/// A parameter the body never names is left out: a mention would be a use,
/// and the user's `unused variable` warning would be lost. (Its drop then
/// comes after the others'; a parameter kept only for its drop is named
/// `_x`, which is mentioned.)
fn mentions(
    inputs: &syn::punctuated::Punctuated<syn::FnArg, syn::Token![,]>,
    body: &[Stmt],
) -> TokenStream {
    let mut names = Bindings::default();
    for input in inputs {
        match input {
            syn::FnArg::Receiver(r) => names.0.push(syn::Ident::from(r.self_token)),
            syn::FnArg::Typed(t) => names.visit_pat(&t.pat),
        }
    }
    if names.0.is_empty() {
        return TokenStream::new();
    }
    let mut used = std::collections::HashSet::new();
    let mut literals = String::new();
    idents(quote!(#(#body)*), &mut used, &mut literals);
    names.0.retain(|name| {
        let name = name.to_string();
        // A name in a literal may be a format string's inline argument
        // (`"{x}"`), a use too.
        name == "self" || name.starts_with('_') || used.contains(&name) || literals.contains(&name)
    });
    if names.0.is_empty() {
        return TokenStream::new();
    }
    let names = names.0.iter().rev();
    quote_spanned!(Span::mixed_site()=> let _ = (#(&#names,)*);)
}

/// Every identifier in `tokens`, at any depth, and the text of every
/// literal.
fn idents(tokens: TokenStream, out: &mut std::collections::HashSet<String>, literals: &mut String) {
    for tt in tokens {
        match tt {
            TokenTree::Ident(i) => {
                out.insert(i.to_string());
            }
            TokenTree::Group(g) => idents(g.stream(), out, literals),
            TokenTree::Literal(l) => literals.push_str(&l.to_string()),
            TokenTree::Punct(_) => {}
        }
    }
}

/// The names a parameter pattern binds, in order.
#[derive(Default)]
struct Bindings(Vec<syn::Ident>);

impl<'ast> Visit<'ast> for Bindings {
    fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
        self.0.push(p.ident.clone());
        syn::visit::visit_pat_ident(self, p);
    }
}

/// `if false { let r: R = loop {}; return r; }` as the first statement of
/// an inner async block: its return type is the function's before any
/// `return` hidden in a macro fixes it, so that such a `return` gets the
/// coercions it gets in the function (`Box<T>` into `Box<dyn Trait>`).
fn fake_return_edge(cx: &Cx) -> TokenStream {
    if cx.opaque {
        return TokenStream::new();
    }
    let ret_ty = &cx.ret_ty;
    let r = syn::Ident::new("__lastwords_ret", Span::mixed_site());
    quote_spanned! {Span::mixed_site()=>
        #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::empty_loop)]
        if false {
            let #r: #ret_ty = loop {};
            return #r;
        }
    }
}

/// `#[tokio::main]` (or `#[tokio::test]`) above `#[exit_path]` hands over a
/// sync fn whose body is the user's, moved into an async block that a
/// runtime then blocks on:
///
/// ```text
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
    // tokio's own shape: an attributed block tail `{ return ..block_on(body); }`,
    // not a user's `rt.block_on(body)`.
    let blocks_on_body = block.stmts.last().is_some_and(|last| {
        matches!(last, Stmt::Expr(Expr::Block(b), None)
            if !b.attrs.is_empty() && calls_block_on_body(b.block.to_token_stream()))
    });
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
        in_async: true,
        hiding_macro: false,
    };
    sites.visit_block_mut(&mut body.block);
    rewrite_tail(cx, &mut body.block, None);
    let private = cx.private();
    let guard = guard_ident();
    let (classify, closure) = cx.classify_ret();
    let finish = Cx::helper(if cx.ret { "finish_ret" } else { "finish" }, closure);
    let pin = fake_return_edge(cx);
    let stmts = &body.block.stmts;
    // As in an async fn: an exit hidden in a macro leaves the inner block
    // with its value, which `finish` records.
    let wrapped = quote_spanned! {Span::mixed_site()=>
        #private::#finish(#guard, async move { #pin #(#stmts)* }.await, #classify)
    };
    body.block.stmts = vec![Stmt::Expr(Expr::Verbatim(wrapped), None)];
    true
}

/// `#[tracing::instrument]` above `#[exit_path]` hands over a body that
/// runs the user's block as an async block or a closure:
///
/// ```text
/// let __tracing_instrument_future = async move { USER BODY };   // async fn
/// let __tracing_instrument_future = async move {                // with err/ret
///     match async move { USER BODY }.await { .. }
/// };
/// match (move || { USER BODY })() { .. }                         // sync fn with err/ret
/// ```
///
/// The user's body is rewritten as an async fn's or a sync fn's would be,
/// run by an inner async block or closure whose value `finish` sees.
/// Returns whether the fn has such a shape.
fn adopt_instrumented_body(cx: &Cx, block: &mut Block) -> bool {
    let mut found = FindUserBody(None);
    for stmt in &mut block.stmts {
        found.visit_stmt_mut(stmt);
        if found.0.is_some() {
            break;
        }
    }
    let Some(target) = found.0 else {
        return false;
    };
    match target {
        UserBody::Async(expr) => {
            let Expr::Async(user) = expr else {
                return false;
            };
            cx.polled.set(true);
            rewrite_adopted(cx, &mut user.block, true);
            // Instrument's `async move { USER }` is replaced by the polled
            // user's statements, the call started right there: no async
            // block is added around the user's, which would hold the
            // parameters it captures a second time.
            let enter_fn = enter_ident();
            let enter = quote_spanned!(Span::mixed_site()=> #enter_fn());
            let stmts = std::mem::take(&mut user.block.stmts);
            *expr = Expr::Verbatim(polled_body(cx, &enter, &TokenStream::new(), &stmts));
        }
        UserBody::Closure(user) => {
            rewrite_adopted(cx, user, false);
            let private = cx.private();
            let guard = guard_ident();
            let (classify, closure) = cx.classify_ret();
            let finish = Cx::helper(if cx.ret { "finish_ret" } else { "finish" }, closure);
            let ret_ty = &cx.ret_ty;
            let stmts = &user.stmts;
            let wrapped = quote_spanned! {Span::mixed_site()=>
                #private::#finish(#guard, #private::call_once(move || -> #ret_ty { #(#stmts)* }), #classify)
            };
            user.stmts = vec![Stmt::Expr(Expr::Verbatim(wrapped), None)];
        }
    }
    true
}

/// Rewrites the exits of an adopted body (an async one's as an async
/// fn's).
fn rewrite_adopted(cx: &Cx, user: &mut Block, in_async: bool) {
    let mut sites = ExitSites {
        cx,
        in_async,
        hiding_macro: false,
    };
    sites.visit_block_mut(user);
    rewrite_tail(cx, user, None);
}

/// `finish_polled(ENTER, || &SITE, async move { BEFORE STMTS }, classify)`:
/// an async body polled by the layer's `Finishing`, which sees its value
/// (see the layer's `polled` module), the call started by `enter`.
fn polled_body(cx: &Cx, enter: &TokenStream, before: &TokenStream, stmts: &[Stmt]) -> TokenStream {
    let private = cx.private();
    let guard = guard_ident();
    let (classify, closure) = cx.classify_ret();
    let finish = cx.polled_helper(Cx::helper(
        if cx.ret { "finish_ret" } else { "finish" },
        closure,
    ));
    let pin = fake_return_edge(cx);
    let site = site_ident();
    quote_spanned! {Span::mixed_site()=>
        #private::#finish(
            #enter,
            || &#site,
            async move {
                let #guard = #private::CurrentGuard;
                #before #pin #(#stmts)*
            },
            #classify,
        )
    }
}

/// The function's `static` (the layer's `ExitSite`).
fn site_ident() -> syn::Ident {
    syn::Ident::new("__LASTWORDS_EXIT", Span::mixed_site())
}

/// The closure that starts the call of an adopted async body.
fn enter_ident() -> syn::Ident {
    syn::Ident::new("__lastwords_enter", Span::mixed_site())
}

/// Where `#[tracing::instrument]` put the user's body.
enum UserBody<'a> {
    /// The `async move { USER }` expression.
    Async(&'a mut Expr),
    /// The closure's block.
    Closure(&'a mut Block),
}

/// Finds the user's body in `#[tracing::instrument]`'s output.
struct FindUserBody<'a>(Option<UserBody<'a>>);

impl<'a> FindUserBody<'a> {
    fn visit_stmt_mut(&mut self, stmt: &'a mut Stmt) {
        match stmt {
            Stmt::Local(local) => {
                let named = matches!(&local.pat, syn::Pat::Ident(p)
                    if p.ident == "__tracing_instrument_future");
                let Some(init) = local.init.as_mut() else {
                    return;
                };
                if !named {
                    self.visit_expr_mut(&mut init.expr);
                } else if let Expr::Async(outer) = &*init.expr {
                    let inner = outer
                        .block
                        .stmts
                        .iter()
                        .position(|s| awaited_async(s).is_some());
                    self.0 = match (inner, &mut *init.expr) {
                        (Some(i), Expr::Async(outer)) => {
                            awaited_async_mut(&mut outer.block.stmts[i]).map(UserBody::Async)
                        }
                        (_, expr) => Some(UserBody::Async(expr)),
                    };
                }
            }
            Stmt::Expr(expr, _) => self.visit_expr_mut(expr),
            _ => {}
        }
    }

    fn visit_expr_mut(&mut self, expr: &'a mut Expr) {
        match expr {
            Expr::Match(m) => self.visit_expr_mut(&mut m.expr),
            Expr::Call(call) if call.args.is_empty() => {
                if let Expr::Paren(paren) = &mut *call.func {
                    if let Expr::Closure(c) = &mut *paren.expr {
                        if c.inputs.is_empty() && c.capture.is_some() {
                            if let Expr::Block(b) = &mut *c.body {
                                self.0 = Some(UserBody::Closure(&mut b.block));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// In `async move { match async move { USER }.await { .. } }`, the inner
/// block.
fn awaited_async(stmt: &Stmt) -> Option<&Block> {
    let expr = match stmt {
        Stmt::Local(l) => &*l.init.as_ref()?.expr,
        Stmt::Expr(Expr::Match(m), _) => &*m.expr,
        _ => return None,
    };
    match expr {
        Expr::Await(a) => match &*a.base {
            Expr::Async(inner) => Some(&inner.block),
            _ => None,
        },
        _ => None,
    }
}

/// [`awaited_async`]'s `async move { USER }` expression.
fn awaited_async_mut(stmt: &mut Stmt) -> Option<&mut Expr> {
    let expr = match stmt {
        Stmt::Local(l) => &mut *l.init.as_mut()?.expr,
        Stmt::Expr(Expr::Match(m), _) => &mut *m.expr,
        _ => return None,
    };
    match expr {
        Expr::Await(a) if matches!(*a.base, Expr::Async(_)) => Some(&mut *a.base),
        _ => None,
    }
}

/// Whether the type has a `_` (from an `impl Trait`) in it.
fn contains_infer(ty: &TokenStream) -> bool {
    ty.clone().into_iter().any(|tt| match tt {
        TokenTree::Ident(i) => i == "_",
        TokenTree::Group(g) => contains_infer(&g.stream()),
        _ => false,
    })
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
/// same meaning: not when it is `#[track_caller]`, where
/// `Location::caller()` would name the closure. (A reborrow through a
/// captured `&mut` may leave the closure: `call_once` makes it `FnOnce`.)
///
/// Otherwise the fn keeps the plain rewriting, where an exit inside a macro
/// is recorded with outcome `unknown`.
fn closure_keeps_meaning(func: &ItemFn) -> bool {
    !func.attrs.iter().any(|a| a.path().is_ident("track_caller"))
}

/// The body's own exit: its tail expression, or falling off its end.
///
/// Input:  { stmts; #[attrs] TAIL }
/// Output: { stmts; #[attrs] exit(guard, Site::Tail, line, col, TAIL, |v| outcome!(v)) }
///
/// Input:  { stmts; }
/// Output: { stmts; exit(guard, Site::Tail, <closing brace>, (), |v| outcome!(v)); }
///
/// A tail that diverges (`todo!()`, `loop {}`, an already rewritten
/// `return`) stays as it is: it never yields a value, and as an argument it
/// would be a diverging sub-expression. A tail returned as `impl Trait`
/// stays too, after a marker that the guard's drop records it by.
fn rewrite_tail(cx: &Cx, block: &mut Block, enclosing: Option<LineColumn>) {
    let close = block.brace_token.span.close();
    let close_end = Cx::closing_end(block, enclosing);
    let close_pos = Cx::end_position(close_end, close);
    if let Some(run) = cfg_tail_run(block) {
        // Input:  { stmts; #[cfg(a)] { A } #[cfg(not(a))] { B } }
        // Output: { stmts; exit(.., { #[cfg(a)] { A } #[cfg(not(a))] { B } }, ..) }
        // Whichever block the `#[cfg]`s leave is the tail, and the blocks
        // before it are statements: the run stays together, as one block.
        let first = block.stmts.len() - run;
        let span = block.stmts[first].span();
        let stmts = block.stmts.split_off(first);
        let tokens = quote!({ #(#stmts)* });
        block
            .stmts
            .push(Stmt::Expr(Expr::Verbatim(tokens.clone()), None));
        tail(cx, block, tokens, span, false, false);
        return;
    }
    match block.stmts.last_mut() {
        // An attributed block tail (`#[tokio::main]` emits
        // `#[allow(..)] { ..; return rt.block_on(body); }`) stays in place:
        // its attributes must keep covering it, so its own tail is the one
        // rewritten.
        // So does a plain block tail (`#[tracing::instrument]` above hands
        // over the user's body as one): the user's tail is inside it.
        Some(Stmt::Expr(Expr::Block(inner), None)) if inner.label.is_none() => {
            if inner.attrs.iter().any(|a| a.path().is_ident("cfg")) {
                // If the `#[cfg]` removes the tail, the body falls off its
                // end: the guard's drop records that at the closing brace.
                let last = block.stmts.len() - 1;
                let marker = cx.marker_at(Which::Tail, close_pos.clone());
                block
                    .stmts
                    .insert(last, Stmt::Expr(Expr::Verbatim(marker), None));
            }
            if let Some(Stmt::Expr(Expr::Block(inner), None)) = block.stmts.last_mut() {
                // Its own braces may have been made at another macro's
                // call site: the furthest end seen so far is the user's.
                let end = enclosing.map_or(close_end, |e| {
                    std::cmp::max_by_key(e, close_end, |e| (e.line, e.column))
                });
                rewrite_tail(cx, &mut inner.block, Some(end));
            }
        }
        Some(Stmt::Expr(expr, None)) => {
            if has_cfg(expr) {
                // If the `#[cfg]` removes the tail, the body falls off its
                // end: the guard's drop records that at the closing brace.
                let last = block.stmts.len() - 1;
                let marker = cx.marker_at(Which::Tail, close_pos.clone());
                block
                    .stmts
                    .insert(last, Stmt::Expr(Expr::Verbatim(marker), None));
            }
            let Some(Stmt::Expr(expr, None)) = block.stmts.last_mut() else {
                return;
            };
            let span = expr.span();
            let diverges = diverges(expr);
            let exits = is_process_exit(expr);
            let tokens = expr.to_token_stream();
            tail(cx, block, tokens, span, diverges, exits);
        }
        Some(Stmt::Macro(m)) if m.semi_token.is_none() && !defines_items(&m.mac) => {
            let span = m.span();
            let diverges = is_diverging_macro(&m.mac);
            let tokens = m.to_token_stream();
            tail(cx, block, tokens, span, diverges, false);
        }
        // Ends with `return ..;`, already rewritten: nothing falls off the
        // end, and the `return` stays the last statement, where the user's
        // lints about it (`clippy::needless_return`) look for it. Unless a
        // `#[cfg]` may remove it.
        Some(Stmt::Expr(Expr::Verbatim(tokens), Some(_))) if matches!(syn::parse2(tokens.clone()), Ok(e @ Expr::Return(_)) if !has_cfg(&e)) =>
        {
            push_late_fixes(cx, block);
        }
        _ => {
            // No tail: the body is `()` or diverges.
            let exit = cx.exit_unit(close, close_pos);
            block.stmts.push(Stmt::Expr(
                Expr::Verbatim(quote_spanned! {Span::mixed_site()=>
                    #[allow(unreachable_code)]
                    #exit;
                }),
                None,
            ));
            push_late_fixes(cx, block);
        }
    }
}

/// The length of the run of semicolon-less statements that ends the block,
/// when the last one has a `#[cfg]` and there are several: any of them may
/// be the tail once the `#[cfg]`s are applied.
fn cfg_tail_run(block: &Block) -> Option<usize> {
    match block.stmts.last() {
        Some(Stmt::Expr(last, None)) if has_cfg(last) => {}
        _ => return None,
    }
    let run = block
        .stmts
        .iter()
        .rev()
        .take_while(|s| matches!(s, Stmt::Expr(_, None)))
        .count();
    (run > 1).then_some(run)
}

/// After the last statement, which ends the body: the late classifiers
/// decided by the levels, everything the body says of their types being
/// before (see `Cx::late_fixes`).
fn push_late_fixes(cx: &Cx, block: &mut Block) {
    if cx.late_pending() {
        let fixes = cx.late_fixes(true);
        block.stmts.push(Stmt::Expr(
            // A statement, not a tail: after a `return` the body still
            // diverges.
            Expr::Verbatim(
                quote_spanned!(Span::mixed_site()=> #[allow(unreachable_code)] let _ = { #fixes };),
            ),
            None,
        ));
    }
}

/// Replaces the last statement of `block`, the tail `tokens`.
fn tail(cx: &Cx, block: &mut Block, tokens: TokenStream, span: Span, diverges: bool, exits: bool) {
    let last = block.stmts.len() - 1;
    let (attrs, expr) = split_outer_attrs(tokens);
    if cx.late_pending() && (cx.opaque || !attrs.is_empty()) && !(exits || diverges) {
        // The tail may say more of the late operands' types and nothing
        // can follow it (an opaque tail stays as it is; a `#[cfg]` may
        // remove the tail and what it carries): they are decided before
        // it, as `ByResultOption` (see `Cx::late_fixes`).
        let fixes = cx.late_fixes(false);
        block.stmts.insert(
            last,
            Stmt::Expr(
                Expr::Verbatim(quote_spanned!(Span::mixed_site()=> { #fixes })),
                None,
            ),
        );
    }
    let last = block.stmts.len() - 1;
    if exits || diverges {
        if exits {
            // `process::exit(..)`: the record is written before the
            // process ends.
            let exit = cx.exit_unit(span, Cx::position(span));
            block
                .stmts
                .insert(last, Stmt::Expr(Expr::Verbatim(quote!(#exit;)), None));
        }
        if cx.late_pending() {
            // A tail that diverges may as well be a statement (the body
            // still diverges), after which the late classifiers are
            // decided.
            let last = block.stmts.len() - 1;
            let tail = quote!(#attrs #expr;);
            block.stmts[last] = Stmt::Expr(Expr::Verbatim(tail), None);
            push_late_fixes(cx, block);
        }
    } else if cx.opaque {
        let marker = cx.marker(Which::Tail, span);
        block
            .stmts
            .insert(last, Stmt::Expr(Expr::Verbatim(marker), None));
    } else {
        let exit = if cx.late_pending() {
            cx.exit_call_fixing(span, expr)
        } else {
            cx.exit_call(Which::Tail, span, expr)
        };
        block.stmts[last] = Stmt::Expr(Expr::Verbatim(quote!(#attrs #exit)), None);
    }
}

/// Splits `#[a] #[b] EXPR` into the attributes and the expression, so that
/// the attributes go on the call that wraps the expression: attributes on
/// an argument are not allowed on stable, and a `#[cfg]` must remove the
/// whole tail.
fn split_outer_attrs(tokens: TokenStream) -> (TokenStream, TokenStream) {
    let mut attrs = TokenStream::new();
    let mut iter = tokens.into_iter().peekable();
    loop {
        match iter.peek() {
            Some(TokenTree::Punct(p)) if p.as_char() == '#' => {
                let pound = iter.next();
                let group = iter.next();
                attrs.extend(pound.into_iter().chain(group));
            }
            _ => break,
        }
    }
    (attrs, iter.collect())
}

/// Whether the expression's leading attributes (those written before it,
/// which may belong to its leftmost operand: `#[cfg(x)] a + b`) include a
/// `#[cfg(..)]`. Read from the syntax tree where it can be, rather than by
/// turning a whole tail into tokens.
fn has_cfg(expr: &Expr) -> bool {
    let (attrs, leftmost): (&[syn::Attribute], Option<&Expr>) = match expr {
        Expr::Binary(e) => (&e.attrs, Some(&e.left)),
        Expr::Cast(e) => (&e.attrs, Some(&e.expr)),
        Expr::Index(e) => (&e.attrs, Some(&e.expr)),
        Expr::Field(e) => (&e.attrs, Some(&e.base)),
        Expr::MethodCall(e) => (&e.attrs, Some(&e.receiver)),
        Expr::Call(e) => (&e.attrs, Some(&e.func)),
        Expr::Try(e) => (&e.attrs, Some(&e.expr)),
        Expr::Await(e) => (&e.attrs, Some(&e.base)),
        Expr::Array(e) => (&e.attrs, None),
        Expr::Block(e) => (&e.attrs, None),
        Expr::ForLoop(e) => (&e.attrs, None),
        Expr::If(e) => (&e.attrs, None),
        Expr::Lit(e) => (&e.attrs, None),
        Expr::Loop(e) => (&e.attrs, None),
        Expr::Macro(e) => (&e.attrs, None),
        Expr::Match(e) => (&e.attrs, None),
        Expr::Paren(e) => (&e.attrs, None),
        Expr::Path(e) => (&e.attrs, None),
        Expr::Reference(e) => (&e.attrs, None),
        Expr::Return(e) => (&e.attrs, None),
        Expr::Struct(e) => (&e.attrs, None),
        Expr::Tuple(e) => (&e.attrs, None),
        Expr::Unary(e) => (&e.attrs, None),
        Expr::Unsafe(e) => (&e.attrs, None),
        Expr::While(e) => (&e.attrs, None),
        other => return tokens_have_cfg(other.to_token_stream()),
    };
    attrs.iter().any(|a| a.path().is_ident("cfg")) || leftmost.is_some_and(has_cfg)
}

/// Whether the `#[..]` attributes `tokens` start with include a `#[cfg]`.
fn tokens_have_cfg(tokens: TokenStream) -> bool {
    let (attrs, _) = split_outer_attrs(tokens);
    attrs.into_iter().any(|tt| match tt {
        TokenTree::Group(g) => g
            .stream()
            .into_iter()
            .next()
            .is_some_and(|t| matches!(t, TokenTree::Ident(i) if i == "cfg")),
        _ => false,
    })
}

/// Whether a tail expression never yields a value.
fn diverges(expr: &Expr) -> bool {
    match expr {
        Expr::Macro(m) => is_diverging_macro(&m.mac),
        Expr::Loop(l) => !contains_ident(l.body.to_token_stream(), "break"),
        Expr::Return(_) | Expr::Break(_) | Expr::Continue(_) => true,
        // A `return` rewritten by the site finder.
        Expr::Verbatim(tokens) => tokens
            .clone()
            .into_iter()
            .find(|tt| !matches!(tt, TokenTree::Punct(p) if p.as_char() == '#'))
            .is_some_and(|tt| matches!(tt, TokenTree::Ident(i) if i == "return")),
        _ => is_process_exit(expr),
    }
}

/// `process::exit(..)` or `std::process::exit(..)`.
fn is_process_exit(expr: &Expr) -> bool {
    let Expr::Call(call) = expr else {
        return false;
    };
    let Expr::Path(path) = &*call.func else {
        return false;
    };
    let segments: Vec<String> = path
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    segments.ends_with(&["process".to_owned(), "exit".to_owned()])
}

fn is_diverging_macro(mac: &syn::Macro) -> bool {
    mac.path.segments.last().is_some_and(|s| {
        matches!(
            s.ident.to_string().as_str(),
            "panic" | "todo" | "unimplemented" | "unreachable"
        )
    })
}

/// `thread_local! { .. }` and the like: a statement, not a tail.
fn defines_items(mac: &syn::Macro) -> bool {
    matches!(mac.delimiter, syn::MacroDelimiter::Brace(_))
        && mac.path.segments.last().is_some_and(|s| {
            matches!(
                s.ident.to_string().as_str(),
                "thread_local" | "macro_rules" | "lazy_static" | "cfg_if" | "bitflags"
            )
        })
}

fn contains_ident(tokens: TokenStream, name: &str) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Ident(i) => i == name,
        TokenTree::Group(g) => contains_ident(g.stream(), name),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idents(tokens: TokenStream, out: &mut Vec<String>) {
        for tt in tokens {
            match tt {
                TokenTree::Ident(i) => out.push(i.to_string()),
                TokenTree::Group(g) => idents(g.stream(), out),
                _ => {}
            }
        }
    }

    #[test]
    fn a_renamed_crate_is_the_only_path_used() {
        let out = exit_path(
            quote!(crate = lw),
            quote! {
                fn f(x: u32) -> Result<u32, String> {
                    if x == 0 { return Err("zero".into()); }
                    let y = Some(x)?;
                    ensure!(y > 1);
                    Ok(y)
                }
            },
        );
        let mut names = Vec::new();
        idents(out, &mut names);
        assert!(names.iter().any(|n| n == "lw"));
        assert!(!names.iter().any(|n| n == "lastwords"), "{names:?}");
    }

    #[test]
    fn a_second_exit_path_is_an_error() {
        let out = exit_path(
            TokenStream::new(),
            quote! {
                #[lastwords::exit_path]
                fn f() {}
            },
        );
        assert!(out.to_string().contains("duplicate #[exit_path] attribute"));
    }
}
