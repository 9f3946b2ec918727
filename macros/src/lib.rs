//! The macros of lastwords: `#[exit_path]`, `#[breadcrumb]` and `crumb!`.
//! Use them through the `lastwords` crate; the expansions name
//! `::lastwords::__private::…`.

mod attr;
mod crumb;
mod expand;
mod item;
mod sites;

use proc_macro::TokenStream;

/// Records every way the annotated function leaves as one `fn_exit` record.
///
/// Options: `level = "info"`, `err_level = "error"`, `unexpected`, `ret`,
/// `label = "..."`, `name = "..."`, and `crate = path` when the `lastwords`
/// dependency is renamed (`lw = { package = "lastwords", .. }` in
/// Cargo.toml, then `#[lw::exit_path(crate = lw)]`), as serde's and
/// tokio's `crate` options do.
#[proc_macro_attribute]
pub fn exit_path(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::exit_path(args.into(), item.into()).into()
}

/// Leaves a breadcrumb on every entry to the annotated function.
#[proc_macro_attribute]
pub fn breadcrumb(args: TokenStream, item: TokenStream) -> TokenStream {
    crumb::breadcrumb(args.into(), item.into()).into()
}

/// Leaves a breadcrumb at this point.
#[proc_macro]
pub fn crumb(input: TokenStream) -> TokenStream {
    crumb::crumb(input.into()).into()
}
