//! Puts `#[lastwords::exit_path]` on every function of a source file.
//!
//! The file is parsed with syn only to learn where each function starts; the
//! attribute is then inserted into the original text, on the same line as
//! the function's first token. Nothing else moves: formatting, comments,
//! doc tests, `#[cfg]`s and every line number stay as the crate wrote them
//! (panic messages and `line!()` in the crate's own tests keep matching).
//!
//! Annotated: every function with a body that is not `const fn` — free
//! functions, inherent and trait-impl methods, trait default methods and
//! functions nested in other functions. Not annotated: `const fn`, functions
//! in `extern` blocks (they have no body) and anything inside a macro
//! invocation or `macro_rules!` body (syn keeps those as opaque tokens).

use proc_macro2::{LineColumn, TokenStream};
use quote::ToTokens;
use syn::visit::Visit;

/// The attribute text inserted before each function.
pub const ATTRIBUTE: &str = "#[lastwords::exit_path] ";

/// A source file with the attribute inserted.
pub struct Annotated {
    /// The new text.
    pub text: String,
    /// How many functions got the attribute.
    pub functions: usize,
    /// Every annotatable function, annotated or left out.
    pub sites: Vec<FnSite>,
}

/// An annotatable function.
#[derive(Clone, Debug)]
pub struct FnSite {
    /// Its name.
    pub name: String,
    /// The line of its first token after the attributes (where the
    /// attribute goes), from 1.
    pub line: usize,
    /// The line of its closing brace.
    pub end_line: usize,
}

/// Inserts [`ATTRIBUTE`] before every annotatable function of `source`.
///
/// # Errors
///
/// The file does not parse as Rust (syn's message).
pub fn annotate(source: &str) -> syn::Result<Annotated> {
    annotate_except(source, &|_| false)
}

/// Like [`annotate`], leaving out the functions for which `skip` is true.
///
/// # Errors
///
/// The file does not parse as Rust (syn's message).
pub fn annotate_except(source: &str, skip: &dyn Fn(&FnSite) -> bool) -> syn::Result<Annotated> {
    // syn strips a byte order mark before parsing; the positions it reports
    // are then relative to the rest of the text.
    let bom = if source.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    let body = &source[bom..];
    let file = syn::parse_file(body)?;
    let mut finder = FnStarts::default();
    finder.visit_file(&file);

    let lines = LineStarts::new(body);
    let sites: Vec<FnSite> = finder.starts.iter().map(|(_, site)| site.clone()).collect();
    let mut offsets: Vec<usize> = finder
        .starts
        .iter()
        .filter(|(_, site)| !skip(site))
        .map(|(lc, _)| bom + lines.offset(body, *lc))
        .collect();
    offsets.sort_unstable();
    offsets.dedup();

    let mut text = String::with_capacity(source.len() + offsets.len() * ATTRIBUTE.len());
    let mut done = 0;
    for &offset in &offsets {
        text.push_str(&source[done..offset]);
        text.push_str(ATTRIBUTE);
        done = offset;
    }
    text.push_str(&source[done..]);
    Ok(Annotated {
        text,
        functions: offsets.len(),
        sites,
    })
}

/// Collects the position of the first token after the attributes of every
/// annotatable function (the visibility, `default`, `async`, `unsafe`,
/// `extern` or `fn`), and where it ends.
#[derive(Default)]
struct FnStarts {
    starts: Vec<(LineColumn, FnSite)>,
}

impl FnStarts {
    fn push(&mut self, parts: &[&dyn ToTokens], sig: &syn::Signature, block: &syn::Block) {
        let start = first_token_start(parts);
        let site = FnSite {
            name: sig.ident.to_string(),
            line: start.line,
            end_line: block.brace_token.span.close().end().line,
        };
        self.starts.push((start, site));
    }
}

impl<'ast> Visit<'ast> for FnStarts {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if f.sig.constness.is_none() {
            self.push(&[&f.vis, &f.sig], &f.sig, &f.block);
        }
        syn::visit::visit_item_fn(self, f);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if f.sig.constness.is_none() {
            self.push(&[&f.vis, &f.defaultness, &f.sig], &f.sig, &f.block);
        }
        syn::visit::visit_impl_item_fn(self, f);
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let (None, Some(block)) = (&f.sig.constness, &f.default) {
            self.push(&[&f.sig], &f.sig, block);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }

    // Functions declared in `extern` blocks have no body: nothing to visit.
    fn visit_item_foreign_mod(&mut self, _: &'ast syn::ItemForeignMod) {}
}

/// The byte offset of each line's start, to turn syn's (line, char column)
/// into a byte offset.
struct LineStarts(Vec<usize>);

impl LineStarts {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineStarts(starts)
    }

    /// proc-macro2 counts lines from 1 and columns in chars from 0.
    fn offset(&self, text: &str, at: LineColumn) -> usize {
        let start = self.0[at.line - 1];
        text[start..]
            .char_indices()
            .nth(at.column)
            .map_or(text.len(), |(i, _)| start + i)
    }
}

/// The start of the first token among some syntax nodes, skipping the ones
/// that print as nothing (an inherited visibility, no `default`).
fn first_token_start(parts: &[&dyn ToTokens]) -> LineColumn {
    parts
        .iter()
        .find_map(|part| {
            let mut tokens = TokenStream::new();
            part.to_tokens(&mut tokens);
            tokens.into_iter().next().map(|t| t.span().start())
        })
        .expect("a function signature has at least the `fn` token")
}

#[cfg(test)]
mod tests {
    use super::annotate;

    fn check(input: &str, expected: &str, functions: usize) {
        let out = annotate(input).unwrap();
        assert_eq!(out.text, expected);
        assert_eq!(out.functions, functions);
    }

    #[test]
    fn free_methods_trait_defaults_and_nested_functions() {
        check(
            "/// doc\n#[inline]\npub(crate) fn a() { fn inner() {} }\n\
             impl S { pub default unsafe fn m(&self) {} }\n\
             trait T { fn req(&self); fn def(&self) {} }\n",
            "/// doc\n#[inline]\n#[lastwords::exit_path] pub(crate) fn a() { #[lastwords::exit_path] fn inner() {} }\n\
             impl S { #[lastwords::exit_path] pub default unsafe fn m(&self) {} }\n\
             trait T { fn req(&self); #[lastwords::exit_path] fn def(&self) {} }\n",
            4,
        );
    }

    #[test]
    fn skips_const_extern_block_and_macro_bodies() {
        let input = "const fn c() -> u8 { fn n() {} 0 }\nextern \"C\" { fn f(); }\n\
                     macro_rules! m { () => { fn g() {} } }\nm! { fn h() {} }\n\
                     extern \"C\" fn callback() {}\n";
        let expected = "const fn c() -> u8 { #[lastwords::exit_path] fn n() {} 0 }\nextern \"C\" { fn f(); }\n\
                        macro_rules! m { () => { fn g() {} } }\nm! { fn h() {} }\n\
                        #[lastwords::exit_path] extern \"C\" fn callback() {}\n";
        check(input, expected, 2);
    }

    #[test]
    fn columns_after_multibyte_chars() {
        check(
            "\u{feff}const É: &str = \"é\"; fn a() {}\n",
            "\u{feff}const É: &str = \"é\"; #[lastwords::exit_path] fn a() {}\n",
            1,
        );
    }
}
