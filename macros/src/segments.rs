//! Bodies parsed only where they may exit.
//!
//! A body with a `?`, a `return` or a macro that may hide one is rewritten
//! from its syntax tree, but only its statements that hold one need the
//! tree: the body is cut at its top-level `;`s, and a piece with nothing
//! that may exit stays the tokens it came as (`Expr::Verbatim`), which the
//! rewriting passes over and prints back unchanged. A piece with an exit
//! is parsed as the statements it holds (`Block::parse_within`), and so is
//! a last piece that is not one plain expression (see `simple`).
//!
//! Whatever the cut, the pieces put back in order are the body's tokens:
//! a piece that does not parse on its own sends the body to the full
//! parse. Bodies whose shape the rewriting adopts as a whole (an
//! attributed statement, `#[tokio::main]`'s, `#[tracing::instrument]`'s)
//! go to the full parse too.

use proc_macro2::{Delimiter, Group, TokenTree};
use syn::parse::Parser;
use syn::{Block, Expr, Stmt, Token};

use crate::simple::{is_one_plain_expression, may_exit};

/// The statements of `body`, parsed only where they may exit; `None` where
/// the body needs the full parse.
pub fn statements(body: &Group) -> Option<Vec<Stmt>> {
    if body.delimiter() != Delimiter::Brace {
        return None;
    }
    let mut stmts = Vec::new();
    let mut piece: Vec<TokenTree> = Vec::new();
    for tt in body.stream() {
        match &tt {
            // An attributed statement or `#![inner]` attributes.
            TokenTree::Punct(p) if p.as_char() == '#' => return None,
            TokenTree::Ident(i) if i.to_string().starts_with("__tracing") => return None,
            TokenTree::Punct(p) if p.as_char() == ';' => {
                if may_exit(piece.iter().cloned().collect()) {
                    piece.push(tt);
                    stmts.extend(parse(std::mem::take(&mut piece))?);
                } else {
                    // Printed back as `tokens ;`, and seen by the tail's
                    // rewriting as a statement, not a tail.
                    let semi = Token![;](p.span());
                    let tokens = std::mem::take(&mut piece).into_iter().collect();
                    stmts.push(Stmt::Expr(Expr::Verbatim(tokens), Some(semi)));
                }
                continue;
            }
            _ => {}
        }
        piece.push(tt);
    }
    if !piece.is_empty() {
        let tail_exits = may_exit(piece.iter().cloned().collect());
        if !tail_exits && is_one_plain_expression(&piece) {
            stmts.push(Stmt::Expr(
                Expr::Verbatim(piece.into_iter().collect()),
                None,
            ));
        } else {
            stmts.extend(parse(piece)?);
        }
    }
    Some(stmts)
}

/// The statements `tokens` hold.
fn parse(tokens: Vec<TokenTree>) -> Option<Vec<Stmt>> {
    Block::parse_within
        .parse2(tokens.into_iter().collect())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::TokenStream;
    use quote::{quote, ToTokens};

    /// Each statement: `V` (tokens kept) or `P` (parsed), and its tokens.
    fn pieces(body: TokenStream) -> Option<Vec<(char, String)>> {
        let group = Group::new(Delimiter::Brace, body);
        statements(&group).map(|stmts| {
            stmts
                .iter()
                .map(|s| {
                    let kind = match s {
                        Stmt::Expr(Expr::Verbatim(_), _) => 'V',
                        _ => 'P',
                    };
                    (kind, s.to_token_stream().to_string())
                })
                .collect()
        })
    }

    #[test]
    fn only_the_pieces_that_may_exit_are_parsed() {
        let got = pieces(quote!(let a = f(); let b = g(a)?; h(); if b { return 1; } b)).unwrap();
        let kinds: String = got.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, "VPVPP");
        let tokens: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            tokens,
            [
                "let a = f () ;",
                "let b = g (a) ? ;",
                "h () ;",
                "if b { return 1 ; }",
                "b"
            ]
        );
    }

    #[test]
    fn a_last_piece_that_is_not_one_expression_is_parsed() {
        let got = pieces(quote!(let a = f()?; for x in a {} a.len())).unwrap();
        let kinds: String = got.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, "PPP");
    }

    #[test]
    fn adopted_shapes_and_unparsable_pieces_take_the_full_parse() {
        for body in [
            quote!(#![allow(unused)] f()?),
            quote!(#[cfg(x)] let a = f()?; a),
            quote!(let __tracing_attr_span = span(); f()?),
            quote!(let a = f()? +; a),
        ] {
            assert!(pieces(body.clone()).is_none(), "{body}");
        }
    }
}
