//! The description of an annotated function that the expansion passes to
//! `ExitGuard::enter`: one string literal, read by the layer's
//! `SiteInfo::parse`.
//!
//! ```text
//! FILE \0 MODULE \0 NAME \0 LINE \0 COL \0 FLAGS \0 MARKS \0 LABEL
//! ```
//!
//! Only `FILE` and `MODULE` need the compiler (`file!()`,
//! `module_path!()`); the rest is known here and written as one literal, so
//! the expansion is `concat!(file!(), "\0", module_path!(), "<the rest>")`.
//! Literals are made with `Literal::string`: `quote!` would have the
//! compiler lex each one from source text, once per annotated function.
//! Where the compiler does not tell a proc macro its spans' positions
//! (before Rust 1.88), a position is `line!(), column!()`, written as its
//! own argument of the `concat!`.

use proc_macro2::{Literal, Span, TokenStream, TokenTree};
use quote::quote_spanned;

/// The pieces of the `concat!`, text merged as it comes.
#[derive(Default)]
pub struct Description {
    pieces: Vec<TokenStream>,
    text: String,
}

impl Description {
    /// Starts with `file!() \0 module_path!() \0`.
    pub fn new() -> Description {
        let mut d = Description::default();
        d.tokens(quote_spanned!(Span::mixed_site()=> ::core::file!()));
        d.text("\0");
        d.tokens(quote_spanned!(Span::mixed_site()=> ::core::module_path!()));
        d.text("\0");
        d
    }

    /// Appends text.
    pub fn text(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// Appends an expression `concat!` takes (a literal or a macro call).
    fn tokens(&mut self, tokens: TokenStream) {
        self.flush();
        self.pieces.push(tokens);
    }

    /// Appends a position, `line, col` tokens, as `LINE<sep>COL`.
    pub fn position(&mut self, pos: &TokenStream, sep: &str) {
        let parts = split_at_commas(pos.clone());
        match parts.as_slice() {
            [line, col] => match (number(line), number(col)) {
                (Some(line), Some(col)) => self.text(&format!("{line}{sep}{col}")),
                _ => {
                    self.tokens(line.clone());
                    self.text(sep);
                    self.tokens(col.clone());
                }
            },
            // Not made by `Cx::position`: nothing better than no position.
            _ => self.text(&format!("0{sep}0")),
        }
    }

    fn flush(&mut self) {
        if !self.text.is_empty() {
            let mut lit = Literal::string(&std::mem::take(&mut self.text));
            lit.set_span(Span::mixed_site());
            self.pieces.push(TokenTree::Literal(lit).into());
        }
    }

    /// `::core::concat!(..)`.
    pub fn into_tokens(mut self) -> TokenStream {
        self.flush();
        let pieces = self.pieces;
        quote_spanned!(Span::mixed_site()=> ::core::concat!(#(#pieces),*))
    }
}

/// The value of an integer literal token stream.
fn number(tokens: &TokenStream) -> Option<u64> {
    let mut iter = tokens.clone().into_iter();
    match (iter.next(), iter.next()) {
        (Some(TokenTree::Literal(lit)), None) => lit.to_string().parse().ok(),
        _ => None,
    }
}

/// `tokens` split at its top-level commas.
fn split_at_commas(tokens: TokenStream) -> Vec<TokenStream> {
    let mut parts = vec![TokenStream::new()];
    for tt in tokens {
        match &tt {
            TokenTree::Punct(p) if p.as_char() == ',' => parts.push(TokenStream::new()),
            _ => parts
                .last_mut()
                .into_iter()
                .for_each(|p| p.extend([tt.clone()])),
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn known_positions_make_one_literal_after_file_and_module() {
        let mut d = Description::new();
        d.text("run\0");
        d.position(&quote!(12, 5), "\0");
        d.text("\0M");
        d.position(&quote!(14, 9), ":");
        let out = d.into_tokens().to_string();
        assert_eq!(
            out,
            r#":: core :: concat ! (:: core :: file ! () , "\0" , :: core :: module_path ! () , "\0run\x0012\x005\0M14:9")"#
        );
    }

    #[test]
    fn macro_positions_stay_arguments() {
        let mut d = Description::new();
        d.position(&quote!(::core::line!(), ::core::column!()), "\0");
        let out = d.into_tokens().to_string();
        assert!(
            out.ends_with(r#", :: core :: line ! () , "\0" , :: core :: column ! ())"#),
            "{out}"
        );
    }
}
