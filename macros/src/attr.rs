//! Argument parsing for `#[exit_path(...)]` and `#[breadcrumb(...)]`.
//! Independent mistakes are collected and reported together.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, Token};

/// A tracing level, ordered from least to most verbose.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    /// The `tracing::Level` / `LevelFilter` constant's name.
    pub fn ident(self) -> syn::Ident {
        let name = match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        syn::Ident::new(name, Span::call_site())
    }

    fn parse(lit: &LitStr) -> syn::Result<Level> {
        match lit.value().to_ascii_lowercase().as_str() {
            "error" => Ok(Level::Error),
            "warn" => Ok(Level::Warn),
            "info" => Ok(Level::Info),
            "debug" => Ok(Level::Debug),
            "trace" => Ok(Level::Trace),
            _ => Err(syn::Error::new_spanned(
                lit,
                "unknown level; expected one of \"trace\", \"debug\", \"info\", \"warn\", \"error\"",
            )),
        }
    }
}

/// The options of `#[exit_path]`.
#[derive(Default)]
pub struct ExitArgs {
    pub level: Option<Level>,
    pub err_level: Option<Level>,
    pub unexpected: bool,
    pub ret: bool,
    pub label: Option<LitStr>,
    pub name: Option<LitStr>,
    /// `crate = path`: where the `lastwords` crate is, for a renamed
    /// dependency.
    pub krate: Option<syn::Path>,
}

/// The options of `#[breadcrumb]`.
#[derive(Default)]
pub struct CrumbArgs {
    pub level: Option<Level>,
    pub message: Option<LitStr>,
}

/// Collects errors so that independent mistakes are all reported.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(err),
            None => self.0 = Some(err),
        }
    }

    fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(err) => Err(err),
            None => Ok(value),
        }
    }
}

fn metas(args: TokenStream) -> syn::Result<Punctuated<Meta, Token![,]>> {
    Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)
}

fn name_of(meta: &Meta) -> String {
    meta.path()
        .get_ident()
        .map_or_else(|| quote::quote!(#meta).to_string(), ToString::to_string)
}

/// `key = "string"`; anything else is an error naming the syntax.
fn string_value(meta: &Meta, key: &str) -> syn::Result<LitStr> {
    match meta {
        Meta::NameValue(nv) => match &nv.value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => Ok(s.clone()),
            other => Err(syn::Error::new_spanned(
                other,
                format!("expected a string literal: `{key} = \"...\"`"),
            )),
        },
        _ => Err(syn::Error::new_spanned(
            meta,
            format!("`{key}` needs a value: `{key} = \"...\"`"),
        )),
    }
}

fn flag(meta: &Meta, key: &str) -> syn::Result<()> {
    match meta {
        Meta::Path(_) => Ok(()),
        _ => Err(syn::Error::new_spanned(
            meta,
            format!("`{key}` takes no value: write `{key}` alone"),
        )),
    }
}

fn set<T>(slot: &mut Option<T>, value: syn::Result<T>, meta: &Meta, errors: &mut Errors) {
    if slot.is_some() {
        errors.push(syn::Error::new_spanned(
            meta.path(),
            format!("duplicate `{}` argument", name_of(meta)),
        ));
        return;
    }
    match value {
        Ok(v) => *slot = Some(v),
        Err(e) => errors.push(e),
    }
}

fn set_flag(slot: &mut bool, meta: &Meta, key: &str, errors: &mut Errors) {
    if *slot {
        errors.push(syn::Error::new_spanned(
            meta.path(),
            format!("duplicate `{key}` argument"),
        ));
    } else if let Err(e) = flag(meta, key) {
        errors.push(e);
    } else {
        *slot = true;
    }
}

/// `crate = path` or `crate = "path"`.
fn path_value(meta: &Meta) -> syn::Result<syn::Path> {
    match meta {
        Meta::NameValue(nv) => match &nv.value {
            Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => Ok(p.path.clone()),
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => s.parse(),
            other => Err(syn::Error::new_spanned(
                other,
                "expected a path: `crate = lastwords`",
            )),
        },
        _ => Err(syn::Error::new_spanned(
            meta,
            "`crate` needs a value: `crate = lastwords`",
        )),
    }
}

/// The level named by `key = "..."`.
fn level_value(meta: &Meta, key: &str) -> syn::Result<Level> {
    string_value(meta, key).and_then(|s| Level::parse(&s))
}

/// Parses `level = "info", err_level = "error", unexpected, ret, label = "D",
/// name = "custom", crate = path`.
pub fn exit_args(args: TokenStream) -> syn::Result<ExitArgs> {
    let mut out = ExitArgs::default();
    let mut errors = Errors::default();
    for meta in metas(args)? {
        let key = name_of(&meta);
        match key.as_str() {
            "level" => set(&mut out.level, level_value(&meta, "level"), &meta, &mut errors),
            "err_level" => set(&mut out.err_level, level_value(&meta, "err_level"), &meta, &mut errors),
            "label" => set(&mut out.label, string_value(&meta, "label"), &meta, &mut errors),
            "name" => set(&mut out.name, string_value(&meta, "name"), &meta, &mut errors),
            "unexpected" => set_flag(&mut out.unexpected, &meta, "unexpected", &mut errors),
            "ret" => set_flag(&mut out.ret, &meta, "ret", &mut errors),
            "crate" => set(&mut out.krate, path_value(&meta), &meta, &mut errors),
            _ => errors.push(syn::Error::new_spanned(
                meta.path(),
                format!(
                    "unknown argument `{key}`; expected `level`, `err_level`, `unexpected`, `ret`, `label`, `name` or `crate`"
                ),
            )),
        }
    }
    errors.finish(out)
}

/// Parses `level = "debug", message = "..."`.
pub fn crumb_args(args: TokenStream) -> syn::Result<CrumbArgs> {
    let mut out = CrumbArgs::default();
    let mut errors = Errors::default();
    for meta in metas(args)? {
        let key = name_of(&meta);
        match key.as_str() {
            "level" => set(
                &mut out.level,
                level_value(&meta, "level"),
                &meta,
                &mut errors,
            ),
            "message" => set(
                &mut out.message,
                string_value(&meta, "message"),
                &meta,
                &mut errors,
            ),
            _ => errors.push(syn::Error::new_spanned(
                meta.path(),
                format!("unknown argument `{key}`; expected `level` or `message`"),
            )),
        }
    }
    errors.finish(out)
}
