//! lastwords makes a Rust service say, in its log, how and where it died.
//!
//! ```no_run
//! lastwords::init()
//!     .path("logs/ingester.jsonl")
//!     .install()
//!     .expect("lastwords");
//! lastwords::crumb!("entering select with all three tasks");
//! ```
//!
//! See the README for the record schema and how each way of dying is
//! recorded.

#![warn(missing_docs)]

pub use lastwords_layer::{
    exit, init, install_hooks, Builder, ErrorChain, InitError, Lastwords, LastwordsLayer, Rotation,
    DEFAULT_MAX_RECORD_BYTES,
};
/// The flight recorder's defaults and caps (see [`Builder::flight_recorder`]).
pub use lastwords_layer::{DEFAULT_RECORDER_BYTES, MAX_RECOVERED};
pub use lastwords_macros::{breadcrumb, crumb, exit_path};

/// Support for the macros' expansions. Not a stable API: every item here may
/// change in any release.
#[doc(hidden)]
pub mod __private {
    pub use lastwords_layer::private::*;
}
