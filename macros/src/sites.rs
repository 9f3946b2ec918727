//! The site finder: rewrites the exits of the annotated function that the
//! expansion can see (`return`, `?`), and marks where a macro invocation
//! which could hide an exit runs. Closures, async blocks, const blocks and
//! nested items are skipped on purpose: their `return` and `?` are not
//! exits of the annotated function.
//!
//! Each exit becomes a call of a small generic helper that takes the value
//! as an argument and gives it back, rather than a `let` that holds it: an
//! argument keeps the place the user wrote it in (its expected type, its
//! temporaries' scope), and the user's own `?` stays in place with std's
//! conversions and diagnostics.

use std::cell::RefCell;

use proc_macro2::{LineColumn, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, Macro, Stmt, Token, Type};

/// What every rewritten exit needs to know about the function.
pub struct Cx {
    /// The declared return type, `impl Trait` replaced by `_`.
    pub ret_ty: TokenStream,
    /// The return type is itself an `impl Trait`: the tail is left in
    /// place, where it gets the declared signature (a closure needs it).
    pub opaque: bool,
    /// The `ret` option: also record the value's Debug.
    pub ret: bool,
    /// The path of the lastwords crate: `::lastwords`, or `crate = path`.
    pub krate: TokenStream,
    /// `#krate::__private`, made once: most of what the expansion names is
    /// there.
    pub private: TokenStream,
    /// The markers placed so far: the site they stand for, and where
    /// (`line, col` tokens, see [`Cx::position`]).
    pub marks: RefCell<Vec<(Which, TokenStream)>>,
    /// The body runs as an inner async block polled by the layer's
    /// `Finishing` (an async fn that invokes a macro that may hide a
    /// `return`): its exits reach the call's guard through `CurrentGuard`
    /// and the helpers' `_polled` forms. Set before the sites are rewritten.
    pub polled: std::cell::Cell<bool>,
    /// How many `?` operands are classified late (see the layer's
    /// `outcome::late`), and whether their classifiers were decided yet.
    pub late: std::cell::Cell<usize>,
    pub late_fixed: std::cell::Cell<bool>,
    /// The item as written, and whether its body holds a `#[cfg]` (looked
    /// at only when a `?` would be classified late).
    pub item: TokenStream,
    pub body_has_cfg: std::cell::OnceCell<bool>,
    /// The return type is spelled in full (no `impl Trait`): its values are
    /// classified by one classifier looked up at the top of the body,
    /// rather than one closure per exit (each costs the type checker a
    /// method lookup).
    pub shared: bool,
    /// What the return type's spelling tells of its values.
    pub shape: Shape,
}

/// What the spelling of the return type tells of its values' outcomes.
/// The levels' lookup (a method lookup down a ladder of seven rungs) costs
/// the type checker more than the rest of an exit: it is used only where
/// the spelling leaves the outcome open.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `()`, a primitive, a reference, a tuple, an array, `String`, `Vec`:
    /// no value is an error or `None`; every exit is `returned`.
    Returned,
    /// `Option<T>`: `none` or `returned`; the operand of its `?` is an
    /// `Option` too.
    Option,
    /// Anything else (`Result<T, E>`, an alias such as `io::Result<T>`, a
    /// type parameter): the probe decides.
    Probe,
}

impl Shape {
    /// The shape of a declared return type.
    pub fn of(ty: &Type) -> Shape {
        match ty {
            Type::Tuple(_)
            | Type::Reference(_)
            | Type::Array(_)
            | Type::Slice(_)
            | Type::Ptr(_)
            | Type::BareFn(_)
            | Type::Never(_) => Shape::Returned,
            Type::Paren(p) => Shape::of(&p.elem),
            Type::Group(g) => Shape::of(&g.elem),
            Type::Path(p) if p.qself.is_none() => {
                let Some(last) = p.path.segments.last() else {
                    return Shape::Probe;
                };
                let name = last.ident.to_string();
                match name.as_str() {
                    "Option" if !last.arguments.is_none() => Shape::Option,
                    "bool" | "char" | "str" | "u8" | "u16" | "u32" | "u64" | "u128" | "usize"
                    | "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "f32" | "f64"
                    | "String" | "Vec" | "VecDeque" | "HashMap" | "HashSet" | "BTreeMap"
                    | "BTreeSet" | "PathBuf" | "Duration" | "Instant" | "SystemTime" | "Arc"
                    | "Rc" | "Box" | "Cow" => Shape::Returned,
                    _ => Shape::Probe,
                }
            }
            _ => Shape::Probe,
        }
    }
}

/// Which exit: the name of a `Site` variant.
#[derive(Clone, Copy)]
pub enum Which {
    Return,
    Tail,
    Macro,
    /// A macro known to return only an `Err` (`bail!`, `ensure!`).
    MacroErr,
}

impl Which {
    pub fn ident(self) -> syn::Ident {
        let name = match self {
            Which::Return => "Return",
            Which::Tail => "Tail",
            Which::Macro | Which::MacroErr => "Macro",
        };
        syn::Ident::new(name, Span::mixed_site())
    }
}

impl Cx {
    /// `::lastwords::__private`.
    pub fn private(&self) -> TokenStream {
        self.private.clone()
    }

    /// `line, col` of `span`: integer literals where the compiler tells a
    /// proc macro its spans' positions (Rust 1.88), which spares two macro
    /// expansions per exit; else `::core::line!(), ::core::column!()` at
    /// the user's span, so that they report the user's position.
    pub fn position(span: Span) -> TokenStream {
        let start = span.start();
        match u32::try_from(start.column + 1) {
            Ok(col) if start.line > 0 => {
                let line = proc_macro2::Literal::usize_unsuffixed(start.line);
                let col = proc_macro2::Literal::u32_unsuffixed(col);
                quote!(#line, #col)
            }
            _ => quote_spanned!(span=> ::core::line!(), ::core::column!()),
        }
    }

    /// Where the closing brace of `block` ends, where a body without a
    /// tail ends; `enclosing` is that of the block it is the tail of.
    ///
    /// The end of the brace's span rather than its start: a block that
    /// another attribute macro re-emitted comes back with one span for the
    /// whole block, which starts at the opening brace and ends just after
    /// the closing one. A block whose span ends before its own statements
    /// was made by such a macro at its call site (`#[tracing::instrument]`
    /// wraps the user's statements so, in a block that keeps the user's
    /// braces): the enclosing block's end is then the user's, or failing
    /// that the end of the last statement is the nearest position the user
    /// wrote.
    pub fn closing_end(block: &Block, enclosing: Option<LineColumn>) -> LineColumn {
        let end = block.brace_token.span.close().end();
        let Some(last) = block.stmts.last().map(last_token_span) else {
            return end;
        };
        let last = last.end();
        let after = |e: LineColumn| (e.line, e.column) >= (last.line, last.column);
        if after(end) {
            end
        } else {
            enclosing.filter(|&e| after(e)).unwrap_or(last)
        }
    }

    /// `line, col` of the character that ends at `end` (a closing brace),
    /// from [`closing_end`](Cx::closing_end); `::core::line!()` and
    /// `::core::column!()` at `span` where the compiler does not tell
    /// positions.
    pub fn end_position(end: LineColumn, span: Span) -> TokenStream {
        match u32::try_from(end.column) {
            // `end` is just past the brace: its 0-based column is the
            // brace's 1-based one.
            Ok(col) if end.line > 0 && col > 0 => {
                let line = proc_macro2::Literal::usize_unsuffixed(end.line);
                let col = proc_macro2::Literal::u32_unsuffixed(col);
                quote!(#line, #col)
            }
            _ => quote_spanned!(span=> ::core::line!(), ::core::column!()),
        }
    }

    /// What `exit` and `finish` classify the function's values with: the
    /// shared classifier where the probe's levels were looked up once on
    /// the return type (see `prelude`), a zero-sized `ByValue` or
    /// `ByResultOption` where the spelling tells, else a closure with the
    /// probe (a return type the expansion cannot name whole), which goes to
    /// the helpers' `_with` forms: the second value says which.
    pub fn classify_ret(&self) -> (TokenStream, bool) {
        let private = self.private();
        match self.shape {
            Shape::Returned => (
                quote_spanned!(Span::mixed_site()=> #private::outcome::ByValue),
                false,
            ),
            Shape::Option => (
                quote_spanned!(Span::mixed_site()=> #private::outcome::ByResultOption),
                false,
            ),
            Shape::Probe if self.shares_classifier() => {
                (classifier_ident().into_token_stream(), false)
            }
            Shape::Probe => (self.classify_closure(), true),
        }
    }

    /// Whether the prelude looks the probe's levels up on the return type,
    /// once (see [`Shape`] for the types whose spelling tells).
    fn shares_classifier(&self) -> bool {
        self.shared && self.shape == Shape::Probe
    }

    /// `name` or, for a classifier that is a closure, `name_with`.
    pub fn helper(name: &str, closure: bool) -> syn::Ident {
        let name = if closure {
            format!("{name}_with")
        } else {
            name.to_owned()
        };
        syn::Ident::new(&name, Span::mixed_site())
    }

    /// `name`, or `name_polled` in a polled body.
    pub fn polled_helper(&self, name: syn::Ident) -> syn::Ident {
        if self.polled.get() {
            quote::format_ident!("{}_polled", name, span = Span::mixed_site())
        } else {
            name
        }
    }

    /// `|v| Classify::outcome(Kind::levels_of(v).__lastwords_classifier(), v)`:
    /// the levels looked up on the value's type (see the layer's `outcome`
    /// module), for a return type the expansion cannot name whole.
    fn classify_closure(&self) -> TokenStream {
        let private = self.private();
        let v = syn::Ident::new("__lastwords_v", Span::mixed_site());
        quote_spanned! {Span::mixed_site()=>
            |#v| #private::outcome::Classify::outcome(
                #private::outcome::Kind::levels_of(#v).__lastwords_classifier(),
                #v,
            )
        }
    }

    /// The top of the body: the shared classifier, the levels looked up
    /// once on the return type. Made once every exit is rewritten.
    pub fn prelude(&self) -> TokenStream {
        let private = self.private();
        let shared = if self.shares_classifier() {
            // A zero-sized classifier, no closure to check, nothing in an
            // async fn's future.
            let ret_ty = &self.ret_ty;
            let classifier = classifier_ident();
            quote_spanned! {Span::mixed_site()=>
                let #classifier = #private::outcome::Kind::<#ret_ty>::levels().__lastwords_classifier();
            }
        } else {
            TokenStream::new()
        };
        if self.late.get() == 0 {
            return shared;
        }
        let lates = (0..self.late.get()).map(late_ident);
        // No place after the whole body was found if not yet fixed (see
        // `late_fixes`).
        let fixes = self.late_fixes(false);
        quote_spanned! {Span::mixed_site()=>
            #(let #lates = #private::outcome::late;)*
            #fixes
            #shared
        }
    }

    /// Decides the late classifiers (see the layer's `outcome::late`), once:
    /// by the levels of the operands' types, where everything the body
    /// says of those types comes before (`after_body`), else as
    /// `ByResultOption`, which needs nothing of the error type (`err`
    /// without its text).
    pub fn late_fixes(&self, after_body: bool) -> TokenStream {
        if self.late_fixed.replace(true) {
            return TokenStream::new();
        }
        let private = self.private();
        (0..self.late.get())
            .map(|i| {
                let late = late_ident(i);
                let classifier = if after_body {
                    quote_spanned!(Span::mixed_site()=>
                        (#private::outcome::Kind::levels_like(&#late)).__lastwords_classifier())
                } else {
                    quote_spanned!(Span::mixed_site()=> #private::outcome::ByResultOption)
                };
                quote_spanned!(Span::mixed_site()=> #private::outcome::fix_late(&#late, #classifier);)
            })
            .collect()
    }

    /// Whether the body holds a `#[cfg]`: one may remove a late-classified
    /// `?` and leave its classifier's type unknown (a compile error), or
    /// the place after the body where it is decided. Such a body's
    /// late-typed `?` operands are classified from `ResultOption` down,
    /// which needs nothing of their error type.
    fn has_cfg(&self) -> bool {
        *self.body_has_cfg.get_or_init(|| {
            // The body is the item's last token tree.
            self.item
                .clone()
                .into_iter()
                .last()
                .is_some_and(|body| contains_cfg(body.into()))
        })
    }

    /// Whether the body has late classifiers still to decide.
    pub fn late_pending(&self) -> bool {
        self.late.get() > 0 && !self.late_fixed.get()
    }

    /// [`exit_call`](Cx::exit_call) for the tail, deciding the late
    /// classifiers in its classifying closure: the compiler checks a
    /// closure argument after the call's other arguments, so after the
    /// tail, the end of the body.
    pub fn exit_call_fixing(&self, span: Span, expr: TokenStream) -> TokenStream {
        let fixes = self.late_fixes(true);
        let (classify, closure) = self.classify_ret();
        let private = self.private();
        let v = syn::Ident::new("__lastwords_v", Span::mixed_site());
        let classify = if closure {
            quote_spanned!(Span::mixed_site()=> |#v| { #fixes (#classify)(#v) })
        } else {
            quote_spanned!(Span::mixed_site()=>
                |#v| { #fixes #private::outcome::Classify::outcome(#classify, #v) })
        };
        self.exit_call_with(Which::Tail, Cx::position(span), expr, classify, true)
    }

    /// Input:  EXPR
    /// Output: exit(__lastwords_guard, Site::Return, line, col, EXPR, |v| outcome!(v))
    pub fn exit_call(&self, which: Which, span: Span, expr: TokenStream) -> TokenStream {
        let (classify, closure) = self.classify_ret();
        self.exit_call_with(which, Cx::position(span), expr, classify, closure)
    }

    /// [`exit_call`](Cx::exit_call) of `()`, which may not be the return
    /// type (a body that diverges, a tail `process::exit`), at `pos`
    /// (`line, col` tokens).
    pub fn exit_unit(&self, span: Span, pos: TokenStream) -> TokenStream {
        let unit = quote_spanned!(span=> ());
        let private = self.private();
        let returned = quote_spanned!(Span::mixed_site()=> #private::outcome::ByValue);
        self.exit_call_with(Which::Tail, pos, unit, returned, false)
    }

    fn exit_call_with(
        &self,
        which: Which,
        pos: TokenStream,
        expr: TokenStream,
        classify: TokenStream,
        closure: bool,
    ) -> TokenStream {
        let private = self.private();
        let site = which.ident();
        let exit = self.polled_helper(Cx::helper(
            if self.ret { "exit_ret" } else { "exit" },
            closure,
        ));
        let guard = guard_ident();
        // For a `return`, the call's path and parentheses take the spans
        // of the value's first and last tokens, and the value comes last:
        // `return exit(.., value)` then spans, and ends like, the user's
        // `return value`, which the user's lints about it
        // (`clippy::needless_return`, whose fix keeps just the value) look
        // for.
        let (path, args) = (
            quote_spanned!(Span::mixed_site()=> #private::#exit),
            quote_spanned!(Span::mixed_site()=>
                &#guard, #private::Site::#site, #pos, #classify, #expr),
        );
        // A tail's call spans its value too: a warning about the tail
        // (`unreachable expression` after a `return` hidden in a macro)
        // points at it, as without the attribute.
        let ends = || {
            let mut tokens = expr.clone().into_iter();
            let first = tokens.next().map(|t| t.span());
            let last = tokens.last().map(|t| t.span()).or(first);
            (first, last)
        };
        let (first, last) = match which {
            Which::Return | Which::Tail => ends(),
            _ => (None, None),
        };
        match (which, first, last) {
            (Which::Return | Which::Tail, Some(first), Some(last)) => {
                let path = respan(path, first);
                let mut args = proc_macro2::Group::new(proc_macro2::Delimiter::Parenthesis, args);
                args.set_span(last);
                quote!(#path #args)
            }
            _ => quote_spanned!(Span::mixed_site()=> #path(#args)),
        }
    }

    /// Which levels a `?` operand's classification starts at, for both
    /// ladders (`Question` in a sync body, `Kind` in an async one): how many
    /// rungs from the top to leave out (one `*` each), and a type hint for
    /// the operand.
    fn operand_levels(
        &self,
        operand: &Expr,
        late: bool,
        target: Option<&Type>,
    ) -> (usize, TokenStream) {
        match target {
            // `let x: T = s.parse()?`: the operand is `Result<T, _>`, which
            // tells rustc its error type before the lookup looks at it.
            Some(target) => (
                0,
                quote_spanned!(Span::mixed_site()=> ::<::core::result::Result<#target, _>>),
            ),
            // In a fn that returns an `Option`, the operand is one: from
            // `ResultOption` down.
            None if self.shape == Shape::Option => (5, TokenStream::new()),
            // `?` does not compile in such a fn: std's error says so.
            None if self.shape == Shape::Returned => (6, TokenStream::new()),
            // From `ResultOption` down: an error type only the `?`
            // decides, in a body a `#[cfg]` may cut (see `has_cfg`).
            None if late => (5, TokenStream::new()),
            // From `Display` down: an error built in place (see
            // `error_built_here`).
            None if error_built_here(operand) => (3, TokenStream::new()),
            None => (0, TokenStream::new()),
        }
    }

    /// Input:  EXPR
    /// Output: pass(Question::levels(&__lastwords_guard, line, col, EXPR).__lastwords_pass())
    /// (the user's `?` follows, untouched).
    ///
    /// The wrapper carries the operand to the probe's levels (see the
    /// layer's `question` module): no closure per `?`. The receiver takes
    /// the span of EXPR's first token and the call's parentheses that of
    /// its last (only the guard and the wrapper's path are hygienic), so
    /// that to rustc the operand is the user's code: std's diagnostics for
    /// a misused `?`, which span from the operand's end to the `?`, read as
    /// they read without the attribute.
    pub fn question_call(
        &self,
        span: Span,
        operand: &Expr,
        target: Option<&Type>,
        in_async: bool,
    ) -> TokenStream {
        let expr = operand.to_token_stream();
        let mut tokens = expr.clone().into_iter();
        let first = tokens.next().map_or(span, |t| t.span());
        let last = tokens.last().map_or(first, |t| t.span());
        let krate = respan(self.krate.clone(), first);
        let guard = guard_ident();
        let pos = Cx::position(span);
        let late = target.is_none() && self.shape == Shape::Probe && inferred_later(operand);
        if late && !self.has_cfg() {
            return self.question_late(first, last, &krate, &expr, pos, in_async);
        }
        let (skip, hint) = self.operand_levels(operand, late, target);
        if in_async {
            return self.question_match(first, last, &krate, &expr, skip, &hint, pos);
        }
        let args = quote_spanned!(first=> &#guard, #pos, #expr);
        let mut args = proc_macro2::Group::new(proc_macro2::Delimiter::Parenthesis, args);
        args.set_span(last);
        // One `*` per level left out: `levels` makes the top rung.
        let derefs = (0..skip).map(|_| quote_spanned!(first=> *));
        let private = quote_spanned!(first=> #krate::__private::question);
        let receiver = quote_spanned!(first=> #(#derefs)* #private::Question #hint ::levels #args);
        let mut receiver = proc_macro2::Group::new(proc_macro2::Delimiter::Parenthesis, receiver);
        receiver.set_span(first);
        let method = syn::Ident::new("__lastwords_pass", Span::mixed_site());
        // Rustc points a method call's diagnostics at the method, not the
        // whole chain: the call is wrapped in a plain function's, whose
        // span is the operand's.
        let call = quote_spanned!(first=> #receiver.#method());
        let mut call = proc_macro2::Group::new(proc_macro2::Delimiter::Parenthesis, call);
        call.set_span(last);
        quote_spanned!(first=> #private::pass #call)
    }

    /// [`question_call`](Cx::question_call) of an operand whose error type
    /// the compiler learns only after the `?` (see the layer's
    /// `outcome::late`):
    ///
    /// Input:  EXPR
    /// Output: question_late(&__lastwords_guard, line, col, &__lastwords_late_N, EXPR)
    ///         match EXPR { v => question_late(.., v) }      (async)
    fn question_late(
        &self,
        first: Span,
        last: Span,
        krate: &TokenStream,
        expr: &TokenStream,
        pos: TokenStream,
        in_async: bool,
    ) -> TokenStream {
        let n = self.late.get();
        self.late.set(n + 1);
        let late = late_ident(n);
        let guard = guard_ident();
        let question = self.polled_helper(syn::Ident::new("question_late", Span::mixed_site()));
        let private = quote_spanned!(first=> #krate::__private);
        if in_async {
            let v = syn::Ident::new("__lastwords_v", Span::mixed_site());
            let call = quote_spanned!(Span::mixed_site()=>
                #private::#question(&#guard, #pos, &#late, #v));
            return operand_in_arm(first, last, expr, &v, &call);
        }
        let args = quote_spanned!(first=> &#guard, #pos, &#late, #expr);
        let mut args = proc_macro2::Group::new(proc_macro2::Delimiter::Parenthesis, args);
        args.set_span(last);
        quote_spanned!(first=> #private::#question #args)
    }

    /// [`question_call`](Cx::question_call) in an async body:
    ///
    /// Input:  EXPR
    /// Output: match EXPR { v => question(&__lastwords_guard, line, col, Kind::levels_of(&v).__lastwords_classifier(), v) }
    ///
    /// The wrapper's temporaries would live to the end of the statement,
    /// across any `.await` in it (all of a `while let`'s body for its
    /// scrutinee): the future would hold them, grow, and not be `Send`. An
    /// arm's temporaries end with the arm, before any later `.await`; the
    /// operand's own are where they were.
    #[allow(clippy::too_many_arguments)]
    fn question_match(
        &self,
        first: Span,
        last: Span,
        krate: &TokenStream,
        expr: &TokenStream,
        skip: usize,
        hint: &TokenStream,
        pos: TokenStream,
    ) -> TokenStream {
        let guard = guard_ident();
        let v = syn::Ident::new("__lastwords_v", Span::mixed_site());
        let derefs = (0..skip).map(|_| quote_spanned!(Span::mixed_site()=> *));
        let private = quote_spanned!(Span::mixed_site()=> #krate::__private);
        let classify = quote_spanned! {Span::mixed_site()=>
            (#(#derefs)* #private::outcome::Kind #hint ::levels_of(&#v)).__lastwords_classifier()
        };
        let question = self.polled_helper(syn::Ident::new("question", Span::mixed_site()));
        let call = quote_spanned!(Span::mixed_site()=>
            #private::#question(&#guard, #pos, #classify, #v));
        operand_in_arm(first, last, expr, &v, &call)
    }

    /// `__lastwords_guard.mark(N);` for a new marker at `span`; its
    /// position goes in the function's static `ExitSite`.
    pub fn marker(&self, site: Which, span: Span) -> TokenStream {
        self.marker_at(site, Cx::position(span))
    }

    /// [`marker`](Cx::marker) at `pos` (`line, col` tokens).
    pub fn marker_at(&self, site: Which, pos: TokenStream) -> TokenStream {
        let mut marks = self.marks.borrow_mut();
        let index = u16::try_from(marks.len()).unwrap_or(u16::MAX);
        marks.push((site, pos));
        let guard = guard_ident();
        let index = proc_macro2::Literal::u16_unsuffixed(index);
        quote_spanned!(Span::mixed_site()=> #[allow(unreachable_code)] #guard.mark(#index);)
    }

    /// Writes the markers into the function's description: `T12:5,M14:9`,
    /// kind `T` (tail), `R` (`return`), `M` (macro) or `E` (a macro that
    /// returns only an `Err`).
    pub fn describe_marks(&self, out: &mut crate::description::Description) {
        for (i, (site, pos)) in self.marks.borrow().iter().enumerate() {
            if i > 0 {
                out.text(",");
            }
            out.text(match site {
                Which::Tail => "T",
                Which::Return => "R",
                Which::Macro => "M",
                Which::MacroErr => "E",
            });
            out.position(pos, ":");
        }
    }
}

/// The span of a statement's last token. Read from the syntax tree where
/// the kind of statement tells (a `;`, a closing brace or parenthesis),
/// rather than by turning the whole statement into tokens: the last
/// statement is often most of the body.
fn last_token_span(stmt: &Stmt) -> Span {
    let expr = match stmt {
        Stmt::Local(l) => return l.semi_token.span,
        Stmt::Expr(_, Some(semi)) => return semi.span,
        Stmt::Macro(m) if m.semi_token.is_some() => {
            return m.semi_token.map_or_else(Span::call_site, |s| s.span)
        }
        Stmt::Expr(e, None) => e,
        _ => return last_token_of(stmt.to_token_stream()),
    };
    match expr {
        Expr::Block(b) if b.label.is_none() => b.block.brace_token.span.close(),
        Expr::Unsafe(b) => b.block.brace_token.span.close(),
        Expr::Loop(b) => b.body.brace_token.span.close(),
        Expr::While(b) => b.body.brace_token.span.close(),
        Expr::ForLoop(b) => b.body.brace_token.span.close(),
        Expr::Match(m) => m.brace_token.span.close(),
        Expr::Call(c) => c.paren_token.span.close(),
        Expr::MethodCall(c) => c.paren_token.span.close(),
        Expr::Tuple(t) => t.paren_token.span.close(),
        Expr::Struct(s) => s.brace_token.span.close(),
        Expr::Macro(m) => m.mac.delimiter.span().close(),
        Expr::If(i) if i.else_branch.is_none() => i.then_branch.brace_token.span.close(),
        other => last_token_of(other.to_token_stream()),
    }
}

fn last_token_of(tokens: TokenStream) -> Span {
    tokens
        .into_iter()
        .last()
        .map_or_else(Span::call_site, |t| t.span())
}

/// Whether the operand of a `?` is a conversion whose target, and so whose
/// error type, rustc may learn only from the `?`'s value:
/// `s.parse()?`, `n.try_into()?`, `T::from_str(s)?` without a turbofish.
fn inferred_later(operand: &Expr) -> bool {
    match operand {
        Expr::MethodCall(m) => {
            m.turbofish.is_none()
                && matches!(m.method.to_string().as_str(), "parse" | "try_into" | "into")
        }
        // `FromStr::from_str(s)`, `TryFrom::try_from(n)`: the trait, not
        // the type, names the function.
        Expr::Call(c) => match &*c.func {
            Expr::Path(p) => {
                let segments: Vec<String> = p
                    .path
                    .segments
                    .iter()
                    .map(|s| s.ident.to_string())
                    .collect();
                segments.ends_with(&["FromStr".to_owned(), "from_str".to_owned()])
                    || segments.ends_with(&["TryFrom".to_owned(), "try_from".to_owned()])
            }
            _ => false,
        },
        _ => false,
    }
}

/// Whether the operand of a `?` builds its error in place, from an
/// `Option`: `x.ok_or(AllEqualError(None))?`. Such an error's type
/// arguments may be decided only by the `?`'s conversion, after the probe
/// looked: with them still unknown, method lookup would pick the `Error`
/// level, whose bound (`Item: Debug`) may then fail. The error is shown
/// by its `Display`, the bound an error type nearly always meets for
/// every argument. (Classifying it late, as an [`inferred_later`] operand,
/// would show its chain, but costs the type checker a third more for such
/// a function: `ok_or(..)?` is common.)
fn error_built_here(operand: &Expr) -> bool {
    matches!(operand, Expr::MethodCall(m) if m.method == "ok_or" || m.method == "ok_or_else")
}

/// `.into()` yields any type whose `?` gives `T`, not a `Result<T, _>`.
fn is_into(operand: &Expr) -> bool {
    matches!(operand, Expr::MethodCall(m) if m.method == "into")
}

/// `tokens` with the span `at` (a path: no group inside).
fn respan(tokens: TokenStream, at: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            tt.set_span(at);
            tt
        })
        .collect()
}

/// The shared classifier of return values; `_`-prefixed, as it may go
/// unused (a body whose every exit diverges).
pub fn classifier_ident() -> syn::Ident {
    syn::Ident::new("__lastwords_classify", Span::mixed_site())
}

/// `match EXPR { v => CALL }`, spanned from the operand's first token to
/// its last: an async body's `?` operand (see [`Cx::question_match`]).
fn operand_in_arm(
    first: Span,
    last: Span,
    expr: &TokenStream,
    v: &syn::Ident,
    call: &TokenStream,
) -> TokenStream {
    let mut arms = proc_macro2::Group::new(
        proc_macro2::Delimiter::Brace,
        quote_spanned!(Span::mixed_site()=> #v => #call),
    );
    arms.set_span(last);
    let match_token = syn::Ident::new("match", first);
    quote!(#match_token #expr #arms)
}

/// The `n`th late classifier (see [`Cx::question_late`]).
fn late_ident(n: usize) -> syn::Ident {
    quote::format_ident!("__lastwords_late_{}", n, span = Span::mixed_site())
}

pub fn guard_ident() -> syn::Ident {
    syn::Ident::new("__lastwords_guard", Span::mixed_site())
}

/// Rewrites `return` and `?` at the function's own level and inserts the
/// macro markers.
pub struct ExitSites<'a> {
    pub cx: &'a Cx,
    /// The body is an async fn's or an async block's: a `?` there keeps no
    /// temporary of ours, which could live across an `.await` (see
    /// [`Cx::question_call`]).
    pub in_async: bool,
    /// Set when the body invokes a macro that could hide a `return`.
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
            let marker = HidingMacro::find_stmt(&stmt);
            self.visit_stmt_mut(&mut stmt);
            if let Some((span, which)) = marker {
                stmts.push(Stmt::Expr(
                    Expr::Verbatim(self.cx.marker(which, span)),
                    None,
                ));
                self.hiding_macro = true;
            }
            stmts.push(stmt);
        }
        block.stmts = stmts;
    }

    // Input:  PAT => hiding!(..),
    // Output: PAT => { __lastwords_guard.at_macro(line, col); hiding!(..) },
    // so that of two hiding macros in one `match`, the one that fired is
    // the one recorded.
    fn visit_arm_mut(&mut self, arm: &mut syn::Arm) {
        visit_mut::visit_arm_mut(self, arm);
        if let Some((span, which)) = HidingMacro::find_expr(&arm.body) {
            self.hiding_macro = true;
            let marker = self.cx.marker(which, span);
            let body = &arm.body;
            *arm.body = Expr::Verbatim(quote!({ #marker #body }));
        }
    }

    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        self.rewrite_macro_args(mac);
    }

    // Input:  let x: T = s.parse()?;
    // Output: let x: T = pass(Question::<Result<T, _>>::levels(.., s.parse()).__lastwords_pass())?;
    fn visit_local_mut(&mut self, local: &mut syn::Local) {
        if let (syn::Pat::Type(typed), Some(init)) = (&local.pat, local.init.as_mut()) {
            if let (None, Expr::Try(t)) = (&init.diverge, &mut *init.expr) {
                if inferred_later(&t.expr) && !is_into(&t.expr) {
                    self.visit_expr_mut(&mut t.expr);
                    let span = t.question_token.span;
                    let call = self
                        .cx
                        .question_call(span, &t.expr, Some(&typed.ty), self.in_async);
                    let (attrs, question) = (&t.attrs, t.question_token);
                    *init.expr = Expr::Verbatim(quote!(#(#attrs)* #call #question));
                    return;
                }
            }
        }
        visit_mut::visit_local_mut(self, local);
    }

    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        // Children first, so that the tokens this produces are never visited.
        visit_mut::visit_expr_mut(self, expr);
        match expr {
            // Input:  return EXPR
            // Output: return exit(__lastwords_guard, Site::Return, line, col, EXPR, |v| outcome!(v))
            Expr::Return(ret) => {
                let span = ret.return_token.span;
                let value = match &ret.expr {
                    Some(e) => e.to_token_stream(),
                    None => quote_spanned!(span=> ()),
                };
                // A returned `impl Trait` keeps its expected type in a
                // block after a marker; the guard's drop records it.
                let captured = if self.cx.opaque {
                    let marker = self.cx.marker(Which::Return, span);
                    quote_spanned!(Span::mixed_site()=> { #marker #value })
                } else {
                    self.cx.exit_call(Which::Return, span, value)
                };
                let attrs = &ret.attrs;
                let return_token = ret.return_token;
                *expr = Expr::Verbatim(quote!(#(#attrs)* #return_token #captured));
            }
            // Input:  EXPR?
            // Output: pass(Question::levels(&__lastwords_guard, line, col, EXPR).__lastwords_pass())?
            Expr::Try(t) => {
                let span = t.question_token.span;
                let attrs = &t.attrs;
                let call = self.cx.question_call(span, &t.expr, None, self.in_async);
                let question = t.question_token;
                *expr = Expr::Verbatim(quote!(#(#attrs)* #call #question));
            }
            _ => {}
        }
    }
}

impl ExitSites<'_> {
    /// Input:  vec![fetch()?; 2]
    /// Output: vec![question(.., fetch(), ..)?; 2]
    ///
    /// Only for well-known macros whose arguments are expressions, and only
    /// in the pieces between top-level `,` and `;` that contain a `?` or a
    /// `return` and parse as an expression; anything else stays opaque.
    fn rewrite_macro_args(&mut self, mac: &mut Macro) {
        if !is_known_safe(mac) || !has_exit_tokens(mac.tokens.clone()) {
            return;
        }
        let mut out = TokenStream::new();
        let mut piece = TokenStream::new();
        for tt in mac.tokens.clone() {
            match &tt {
                TokenTree::Punct(p) if matches!(p.as_char(), ',' | ';') => {
                    out.extend(self.rewrite_piece(std::mem::take(&mut piece)));
                    out.extend([tt]);
                }
                _ => piece.extend([tt]),
            }
        }
        out.extend(self.rewrite_piece(piece));
        mac.tokens = out;
    }

    fn rewrite_piece(&mut self, piece: TokenStream) -> TokenStream {
        if !has_exit_tokens(piece.clone()) {
            return piece;
        }
        match syn::parse2::<Expr>(piece.clone()) {
            Ok(mut expr) => {
                self.visit_expr_mut(&mut expr);
                expr.into_token_stream()
            }
            Err(_) => piece,
        }
    }
}

/// Whether `tokens` hold an attribute that names `cfg` (`#[cfg(..)]`,
/// `#[cfg_attr(..)]`), at any depth.
fn contains_cfg(tokens: TokenStream) -> bool {
    let mut pound = false;
    tokens.into_iter().any(|tt| {
        let after_pound = std::mem::replace(&mut pound, false);
        match tt {
            TokenTree::Punct(p) => {
                // `#[..]`, or an inner `#![..]`.
                pound = p.as_char() == '#' || (after_pound && p.as_char() == '!');
                false
            }
            TokenTree::Group(g) => {
                (after_pound
                    && g.delimiter() == proc_macro2::Delimiter::Bracket
                    && g.stream().into_iter().next().is_some_and(
                        |first| matches!(first, TokenTree::Ident(i) if i.to_string().starts_with("cfg")),
                    ))
                    || contains_cfg(g.stream())
            }
            _ => false,
        }
    })
}

fn has_exit_tokens(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Punct(p) => p.as_char() == '?',
        TokenTree::Ident(i) => i == "return",
        TokenTree::Group(g) => has_exit_tokens(g.stream()),
        TokenTree::Literal(_) => false,
    })
}

/// `bail!` and `ensure!` (anyhow, eyre, snafu) return nothing but an `Err`:
/// an exit through one is an error even where its value is not seen.
fn hiding(mac: &Macro) -> Which {
    let errs = mac
        .path
        .segments
        .last()
        .is_some_and(|s| s.ident == "bail" || s.ident == "ensure");
    if errs {
        Which::MacroErr
    } else {
        Which::Macro
    }
}

/// Macros known not to hide a `return`: formatting, assertions (their
/// panics are recorded as `unwind`), logging, and the like.
fn is_known_safe(mac: &Macro) -> bool {
    mac.path
        .segments
        .last()
        .is_some_and(|s| is_known_safe_name(&s.ident.to_string()))
}

/// [`is_known_safe`] by the macro's name, the last segment of its path.
pub fn is_known_safe_name(name: &str) -> bool {
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
    SAFE.contains(&name)
}

/// Does this statement invoke, at the function's own level, a macro that
/// could hide a `return`? Yields the first such invocation's span.
struct HidingMacro(Option<(Span, Which)>);

/// Whether `block` invokes, at the function's own level, a macro that could
/// hide a `return`: what [`ExitSites`] marks.
pub fn invokes_hiding_macro(block: &Block) -> bool {
    block
        .stmts
        .iter()
        .any(|stmt| HidingMacro::find_stmt(stmt).is_some())
}

impl HidingMacro {
    fn find_stmt(stmt: &Stmt) -> Option<(Span, Which)> {
        let mut finder = HidingMacro(None);
        finder.visit_stmt(stmt);
        finder.0
    }

    /// Only for an expression that is itself such an invocation.
    fn find_expr(expr: &Expr) -> Option<(Span, Which)> {
        match expr {
            Expr::Macro(m) if !is_known_safe(&m.mac) => Some((m.mac.path.span(), hiding(&m.mac))),
            _ => None,
        }
    }
}

impl<'ast> Visit<'ast> for HidingMacro {
    fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
    fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}
    fn visit_expr_const(&mut self, _: &'ast syn::ExprConst) {}
    fn visit_item(&mut self, _: &'ast syn::Item) {}
    fn visit_type(&mut self, _: &'ast Type) {}

    fn visit_macro(&mut self, mac: &'ast Macro) {
        if !is_known_safe(mac) {
            self.0.get_or_insert((mac.path.span(), hiding(mac)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_cfg_finds_cfg_attributes_at_any_depth() {
        let with = [
            quote!(#[cfg(feature = "x")] let a = b()?;),
            quote!(if c {
                #[cfg_attr(test, allow(unused))]
                let a = 1;
            }),
            quote!(match x {
                #[cfg(unix)]
                A => 1,
                _ => 2,
            }),
            quote!(
                {
                    #![cfg(any())]
                }
            ),
        ];
        for tokens in with {
            assert!(contains_cfg(tokens.clone()), "{tokens}");
        }
        let without = [
            quote!(let cfg = config(); cfg.load()?;),
            quote!(#[allow(unused)] let a = 1;),
            quote!(let a = [cfg, b];),
        ];
        for tokens in without {
            assert!(!contains_cfg(tokens.clone()), "{tokens}");
        }
    }
}
