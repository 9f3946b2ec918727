//! The process hooks: panics, exits, termination signals and fatal signals.
//!
//! | ending | hook | record |
//! |---|---|---|
//! | panic, any thread | [`panic`] hook, chained | `panic` |
//! | return from `main`, `process::exit` | glibc `on_exit` ([`exit`](mod@exit)) | `process_exit` |
//! | SIGTERM, SIGINT, SIGHUP, SIGQUIT | [`signals`] | `signal` |
//! | SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT | [`fatal`] | `fatal_signal` |
//!
//! Each hook records, then hands over to what would have happened without
//! lastwords, so the exit status and death signal are unchanged.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::builder::InitError;
use crate::sink::Sink;

pub mod exit;
pub(crate) mod fatal;
pub mod panic;
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
