#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub use lastwords_layer::{
    exit, init, install_hooks, Builder, ErrorChain, InitError, Lastwords, LastwordsLayer, Rotation,
    DEFAULT_MAX_RECORD_BYTES,
};
pub use lastwords_layer::{
    exit_counts, in_flight, ExitCount, InFlight, MAX_EXIT_COUNTS, MAX_FNS, MAX_IN_FLIGHT, MAX_SITES,
};
/// The flight recorder's defaults and caps (see [`Builder::flight_recorder`]).
pub use lastwords_layer::{DEFAULT_RECORDER_BYTES, MAX_RECOVERED};

pub use lastwords_layer::TerminationLogPath;

pub use lastwords_macros::{breadcrumb, crumb, exit_path};

/// The macros' documentation lives with them (the `lastwords-macros`
/// crate, so that an editor shows it on hover); its examples name this
/// crate, so they run here, as this crate's doctests.
#[cfg(doctest)]
mod macro_doctests {
    #[doc = include_str!("../macros/docs/exit_path.md")]
    struct ExitPath;

    #[doc = include_str!("../macros/docs/breadcrumb.md")]
    struct Breadcrumb;

    #[doc = include_str!("../macros/docs/crumb.md")]
    struct Crumb;
}

/// Support for the macros' expansions. Not a stable API: every item here may
/// change in any release.
#[doc(hidden)]
pub mod __private {
    pub use lastwords_layer::private::*;
}
