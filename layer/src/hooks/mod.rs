//! The process hooks: panics, exits, termination signals and fatal signals.
//!
//! | ending | hook | record |
//! |---|---|---|
//! | panic, any thread | [`panic`](mod@panic) hook, chained; its spans kept by [`panic_spans`] | `panic` |
//! | return from `main`, `process::exit` | glibc `on_exit` ([`exit`](mod@exit)) | `process_exit` |
//! | SIGTERM, SIGINT, SIGHUP, SIGQUIT | [`signals`] | `signal` |
//! | SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT | [`fatal`] | `fatal_signal` |
//!
//! Each hook records, then hands over to what would have happened without
//! lastwords, so the exit status and death signal are unchanged.
//!
//! # What is guaranteed about `seq` at the end
//!
//! A record takes its `seq` just before its `writev`, so the only records
//! that can be missing when the process ends are those whose `writev` was
//! in flight on another thread. Before the process goes on to die, the exit
//! handler waits up to 50 ms, and the signal handlers up to 20 ms, until
//! every record numbered below their own is written (or counted as
//! dropped), so the file holds `seq` 1..=N with no gap, N being the death
//! record's `seq`. Records that other threads log after it may be cut off
//! by the end of the process (gaps above N). If a signal interrupts its own
//! thread in the middle of a `writev`, that record is lost and the handler
//! waits the full 20 ms for it.
//!
//! # Install order with tokio
//!
//! Termination signals work whichever of lastwords and tokio's
//! `signal::ctrl_c()` / `signal(SignalKind::terminate())` is installed
//! first: see [`signals`].

use std::sync::atomic::{AtomicBool, Ordering};

use crate::builder::InitError;
use crate::sink::Sink;

pub mod exit;
pub(crate) mod fatal;
pub mod panic;
pub(crate) mod panic_spans;
pub(crate) mod signals;
pub(crate) mod sigsafe;

/// How many breadcrumbs the records of a death carry, oldest first.
pub(crate) const CRUMBS: usize = sigsafe::CRUMBS;

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the panic hook, the exit handler and the signal handlers, all
/// writing to the file opened by [`Builder::layer`](crate::Builder::layer) or
/// [`Builder::install`](crate::Builder::install) (which calls this).
///
/// Call it once, early in `main`. A second call does nothing and returns
/// `Ok(())`.
///
/// # Errors
///
/// When no lastwords file is open yet in this process, or when a signal
/// handler or the exit handler cannot be registered.
pub fn install_hooks() -> Result<(), InitError> {
    if Sink::global().is_none() {
        return Err(InitError::new(
            "no lastwords file is open: call lastwords::init()...layer() or .install() first"
                .into(),
        ));
    }
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return Ok(());
    }
    panic::install();
    exit::install().map_err(|e| InitError::io("cannot register the exit handler".into(), e))?;
    signals::install()
        .map_err(|e| InitError::io("cannot install the termination signal handlers".into(), e))?;
    fatal::install()
        .map_err(|e| InitError::io("cannot install the fatal signal handlers".into(), e))?;
    Ok(())
}
