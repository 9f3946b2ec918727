//! Support for the expansions of `lastwords-macros`. Not a stable API: every
//! item here may change in any release.

#[doc(hidden)]
pub use tracing;

#[doc(hidden)]
pub use crate::ring::{push as push_crumb, CrumbSite};

#[doc(hidden)]
pub use crate::hooks::panic::current_panic;
