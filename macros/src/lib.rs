//! The macros of lastwords: `#[exit_path]`, `#[breadcrumb]` and `crumb!`.
//! Use them through the `lastwords` crate; the expansions name
//! `::lastwords::__private::…`.

mod attr;
mod clippy;
mod crumb;
mod description;
mod expand;
mod item;
mod segments;
mod simple;
mod sites;

use proc_macro::TokenStream;

// Each macro's documentation is a page under docs/. Its examples name
// `lastwords`, which this crate cannot depend on: they run as the facade's
// doctests instead (see its `macro_doctests`).
#[cfg_attr(not(doctest), doc = include_str!("../docs/exit_path.md"))]
#[proc_macro_attribute]
pub fn exit_path(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::exit_path(args.into(), item.into()).into()
}

#[cfg_attr(not(doctest), doc = include_str!("../docs/breadcrumb.md"))]
#[proc_macro_attribute]
pub fn breadcrumb(args: TokenStream, item: TokenStream) -> TokenStream {
    crumb::breadcrumb(args.into(), item.into()).into()
}

#[cfg_attr(not(doctest), doc = include_str!("../docs/crumb.md"))]
#[proc_macro]
pub fn crumb(input: TokenStream) -> TokenStream {
    crumb::crumb(input.into()).into()
}
