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

#[doc = include_str!("../docs/api/exit_path.md")]
pub use lastwords_macros::exit_path;

#[doc = include_str!("../docs/api/breadcrumb.md")]
pub use lastwords_macros::breadcrumb;

#[doc = include_str!("../docs/api/crumb.md")]
pub use lastwords_macros::crumb;

/// Support for the macros' expansions. Not a stable API: every item here may
/// change in any release.
#[doc(hidden)]
pub mod __private {
    pub use lastwords_layer::private::*;
}
