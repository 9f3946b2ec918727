//! Bodies whose only exit is their tail, rewritten at the token level.
//!
//! Most functions have no `return`, no `?` and no macro invocation but
//! the ones known not to hide a `return` (`format!`, `assert!`..): the
//! tail (or falling off the end) is their one exit. For those the body is
//! not parsed into a syntax tree and printed again, which is most of what
//! the macro costs the compiler: the tail is found among the body's
//! top-level tokens and passed to `exit` as the full rewriting would pass
//! it, with every other token left as it came.
//!
//! ```text
//! // Input:  { let a = f(); a.len() }
//! // Output: { let a = f(); exit(&__lastwords_guard, Site::Tail, 3, 5, ByValue, a.len()) }
//! ```
//!
//! Anything the token level cannot tell for sure (a `#[cfg]`'d or
//! attributed tail, a block-like statement before the tail, a tail that
//! may diverge, spans made by another macro) goes to the full rewriting.

use proc_macro2::{Delimiter, Group, LineColumn, Spacing, Span, TokenStream, TokenTree};

use crate::sites::is_known_safe_name;

/// A body whose one exit is its tail.
pub struct Simple {
    /// The statements before the tail, as they came.
    pub stmts: TokenStream,
    /// The tail, or `None` when the body ends with a `;` (or is empty).
    pub tail: Option<(TokenStream, Span)>,
    /// Where the closing brace ends: the body's end when it has no tail.
    pub close_end: LineColumn,
}

impl Simple {
    /// Splits `body` (the function's braces) into its statements and its
    /// tail, if nothing in it can leave the function but the tail.
    pub fn split(body: &Group) -> Option<Simple> {
        if body.delimiter() != Delimiter::Brace || may_exit(body.stream()) {
            return None;
        }
        let trees: Vec<TokenTree> = body.stream().into_iter().collect();
        if let [TokenTree::Punct(p), ..] = trees.as_slice() {
            // `#![inner]` attributes, or an attributed first statement.
            if p.as_char() == '#' {
                return None;
            }
        }
        // The tail: what follows the last top-level `;`.
        let start = trees
            .iter()
            .rposition(|tt| matches!(tt, TokenTree::Punct(p) if p.as_char() == ';'))
            .map_or(0, |i| i + 1);
        let (stmts, tail) = trees.split_at(start);
        let close_end = body.span_close().end();
        let Some(last) = trees.last() else {
            return Some(Simple {
                stmts: TokenStream::new(),
                tail: None,
                close_end,
            });
        };
        // A body re-emitted by another macro may end its braces before its
        // statements: the full rewriting finds the user's end.
        let last_end = last.span().end();
        if (close_end.line, close_end.column) < (last_end.line, last_end.column) {
            return None;
        }
        let tail = match tail.first() {
            None => None,
            Some(first) if is_one_plain_expression(tail) => {
                Some((tail.iter().cloned().collect(), first.span()))
            }
            Some(_) => return None,
        };
        Some(Simple {
            stmts: stmts.iter().cloned().collect(),
            tail,
            close_end,
        })
    }
}

/// Whether `tokens` hold, at any depth, what could leave the function or
/// hide an exit: `?`, `return`, or the invocation of a macro not known to
/// be safe (see `sites::is_known_safe_name`; a lone `!` after any other
/// identifier counts, `if !x` included, which only sends the body to the
/// full rewriting; `a != b` does not).
pub fn may_exit(tokens: TokenStream) -> bool {
    let mut last_ident: Option<String> = None;
    for tt in tokens {
        let exits = match &tt {
            TokenTree::Punct(p) => {
                p.as_char() == '?'
                    || (p.as_char() == '!'
                        && p.spacing() == Spacing::Alone
                        && last_ident
                            .as_deref()
                            .is_some_and(|name| !is_known_safe_name(name)))
            }
            TokenTree::Ident(i) => i == "return",
            TokenTree::Group(g) => may_exit(g.stream()),
            TokenTree::Literal(_) => false,
        };
        if exits {
            return true;
        }
        last_ident = match &tt {
            TokenTree::Ident(i) => Some(i.to_string()),
            _ => None,
        };
    }
    false
}

/// Whether the tokens after the last `;` are one expression that yields a
/// value: no block-like statement or item before it (a top-level brace
/// group is last, or followed by `else`), no attribute, and nothing at its
/// own level that may diverge (`loop`, `break`, `continue`, `panic!` and
/// the like), end the process (`exit`), or be or define an item (`impl S
/// {}`, `thread_local!`).
pub fn is_one_plain_expression(tail: &[TokenTree]) -> bool {
    if let Some(TokenTree::Punct(p)) = tail.first() {
        if p.as_char() == '#' {
            return false;
        }
    }
    if let Some(TokenTree::Ident(i)) = tail.first() {
        if i == "break" || i == "continue" {
            return false;
        }
    }
    const NOT_A_VALUE: &[&str] = &[
        "loop",
        "exit",
        "panic",
        "todo",
        "unimplemented",
        "unreachable",
        "compile_error",
        "thread_local",
        // An item last in the body (`impl S {}`): no tail.
        "fn",
        "struct",
        "enum",
        "union",
        "impl",
        "trait",
        "mod",
        "extern",
        "use",
        "static",
        "const",
        "type",
        "pub",
        "let",
    ];
    tail.iter().enumerate().all(|(i, tt)| match tt {
        TokenTree::Ident(id) => !NOT_A_VALUE.contains(&id.to_string().as_str()),
        TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => match tail.get(i + 1) {
            None => true,
            Some(TokenTree::Ident(next)) => next == "else",
            Some(_) => false,
        },
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn split(body: TokenStream) -> Option<(String, Option<String>)> {
        let group = Group::new(Delimiter::Brace, body);
        Simple::split(&group).map(|s| {
            (
                s.stmts.to_string(),
                s.tail.map(|(tail, _)| tail.to_string()),
            )
        })
    }

    #[test]
    fn the_tail_is_what_follows_the_last_semicolon() {
        assert_eq!(
            split(quote!(let a = f(); a.len())),
            Some(("let a = f () ;".into(), Some("a . len ()".into())))
        );
        assert_eq!(
            split(quote!(v.push(1);)),
            Some(("v . push (1) ;".into(), None))
        );
        assert_eq!(split(quote!()), Some((String::new(), None)));
        assert_eq!(
            split(quote!(for k in 0..n {
                v.push(k);
            })),
            Some((
                String::new(),
                Some("for k in 0 .. n { v . push (k) ; }".into())
            ))
        );
        assert_eq!(
            split(quote!(if a {
                1
            } else if b {
                2
            } else {
                3
            })),
            Some((
                String::new(),
                Some("if a { 1 } else if b { 2 } else { 3 }".into())
            ))
        );
        assert_eq!(
            split(quote!(let x = 1; Self { x })),
            Some(("let x = 1 ;".into(), Some("Self { x }".into())))
        );
    }

    #[test]
    fn anything_else_goes_to_the_full_rewriting() {
        for body in [
            quote!(f()?),
            quote!(if a { return 1; } 2),
            quote!(g(|x| x?)),
            quote!(bail!("x")),
            quote!(log(|| my_macro!(x))),
            quote!(todo!()),
            quote!(v.push(1); unreachable!("no")),
            quote!(thread_local! { static X: u8 = 0; }),
            quote!(if !a { 1 } else { 2 }),
            quote!(for k in v {} k),
            quote!(fn inner() {}, inner()),
            quote!(
                #[cfg(x)]
                a
            ),
            quote!(#![allow(unused)] a),
            quote!(loop {
                step()
            }),
            quote!(std::process::exit(1)),
            quote!(struct S; impl S {}),
            quote!(let a = 1; fn inner() {}),
            quote!(let a = 1; pub(crate) struct T { a: u8 }),
        ] {
            assert_eq!(split(body.clone()), None, "{body}");
        }
    }

    #[test]
    fn macros_known_not_to_return_stay_simple() {
        assert_eq!(
            split(quote!(println!("x"); format!("{}", 1))),
            Some((
                "println ! (\"x\") ;".into(),
                Some("format ! (\"{}\" , 1)".into())
            ))
        );
        assert!(split(quote!(if a { panic!("no") } else { 1 })).is_some());
    }

    #[test]
    fn comparisons_and_negations_stay_simple() {
        assert!(split(quote!(a != b)).is_some());
        assert!(split(quote!(!a)).is_some());
        assert!(split(quote!(let c = !a; c)).is_some());
    }
}
