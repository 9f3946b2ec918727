//! Support for the expansions of `lastwords-macros`. Not a stable API: every
//! item here may change in any release.

#[doc(hidden)]
pub use tracing;

#[doc(hidden)]
pub use crate::ring::{push as push_crumb, CrumbSite};

#[doc(hidden)]
pub use crate::hooks::panic::current_panic;

#[doc(hidden)]
pub use crumb::enclosing_fn;

mod callsites;
mod crumb;
pub mod exit;
pub mod outcome;
pub mod polled;
pub mod question;
pub mod site;

#[doc(hidden)]
pub use exit::{
    call_once, exit, exit_ret, exit_ret_with, exit_with, finish, finish_ret, finish_ret_with,
    finish_with, question, question_late, ExitGuard, ExitSite, Site, SiteInfo,
};
#[doc(hidden)]
pub use polled::{
    exit_polled, exit_ret_polled, exit_ret_with_polled, exit_with_polled, finish_polled,
    finish_ret_polled, finish_ret_with_polled, finish_with_polled, question_late_polled,
    question_polled, CurrentGuard,
};
#[doc(hidden)]
pub use std::sync::OnceLock;
#[doc(hidden)]
pub use tracing_core::callsite::{DefaultCallsite, Identifier};
#[doc(hidden)]
pub use tracing_core::field::FieldSet;
#[doc(hidden)]
pub use tracing_core::metadata::Kind;
#[doc(hidden)]
pub use tracing_core::{Level, LevelFilter, Metadata};
