//! The lastwords runtime: a `tracing` layer that writes every record as one
//! durable JSON line, a stderr mirror for the records that matter, and hooks
//! that record how the process ended.
//!
//! Most users depend on the `lastwords` facade crate, which re-exports this
//! crate next to the macros.
//!
//! # Why each record is one `write(2)`
//!
//! A record is safe from the death of the process once the system call that
//! carries it has returned; bytes waiting in a user-space buffer die with the
//! process on `std::process::exit`, SIGKILL or the OOM killer. So every
//! record is formatted into a reusable per-thread buffer and handed to the
//! kernel with a single `write(2)` on an `O_APPEND` descriptor before the
//! logging call returns. See the [`sink`](crate) module docs for the details.

#![warn(missing_docs)]

mod builder;
mod clock;
mod error;
mod fd;
mod fields;
mod fork;
mod hooks;
mod json;
mod json_read;
mod layer;
mod log_records;
mod mirror;
#[cfg(feature = "opentelemetry")]
mod otel;
mod previous_run;
mod record;
mod recorder;
pub mod ring;
mod rotation;
mod sigmask;
mod sink;
mod spans;
mod termination_log;
mod thread;

#[cfg(test)]
mod test_support;

#[doc(hidden)]
pub mod private;

pub use builder::{init, Builder, InitError, Lastwords, DEFAULT_MAX_RECORD_BYTES};
pub use hooks::exit::exit;
pub use hooks::install_hooks;
pub use json::ErrorChain;
pub use layer::LastwordsLayer;
pub use recorder::{
    exit_counts, in_flight, ExitCount, InFlight, DEFAULT_RECORDER_BYTES, MAX_EXIT_COUNTS, MAX_FNS,
    MAX_IN_FLIGHT, MAX_RECOVERED, MAX_SITES,
};
pub use termination_log::TerminationLogPath;
/// How often [`Builder::rotation`] starts a new file: tracing-appender's type.
pub use tracing_appender::rolling::Rotation;
