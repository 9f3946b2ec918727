//! `fork()`: a child gets a run of its own.
//!
//! A child created with `fork()` (a daemon detaching, a pre-fork server, a
//! `Command` with `pre_exec`) is a new process with a copy of the parent's
//! memory: the sink with the parent's pid, run id and `seq`, per-thread
//! caches holding the forking thread's id, and whatever flags the parent's
//! other threads held at that instant (they do not exist in the child and
//! will never clear them). Left alone, the child would write its records
//! into the parent's run, and its `exit(3)` would read as the parent's end.
//!
//! So a `pthread_atfork` child handler, which runs in the child before
//! `fork()` returns there, gives the child its own run and clears those
//! flags, with async-signal-safe steps only (the child of a multi-threaded
//! process may call nothing else): a new pid and run id and `seq` from 1 in
//! the sink ([`Sink::after_fork`]), a new fork generation that the
//! per-thread caches check ([`crate::thread`]), and the signal handlers'
//! scratch area and the exit record's once-flag freed. The child leaves the
//! parent's flight recorder alone: its mapping is the parent's ring, whose
//! heartbeat thread did not come along, so the child records to the file
//! only.
//!
//! Nothing is written at the fork: a child that logs nothing (a `pre_exec`
//! child that `exec`s at once) leaves no trace. Its first record is preceded
//! by its own `process_start`, with `forked_from` naming the parent's run,
//! so a reader sees two runs in the file, each with `seq` 1, 2, 3….

use std::sync::atomic::{AtomicBool, Ordering};

use crate::sink::Sink;

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Registers the atfork child handler, once per process.
pub(crate) fn install() {
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: `child` is a valid handler for the life of the process.
    // Ignored result: it fails only without memory for the entry, and then
    // a forked child writes into the parent's run as before.
    let _ = unsafe { libc::pthread_atfork(None, None, Some(child)) };
}

/// Runs in the child of every `fork()`. Async-signal-safe.
extern "C" fn child() {
    let _errno = crate::hooks::sigsafe::ErrnoGuard::new();
    crate::thread::new_generation();
    crate::hooks::sigsafe::reset_after_fork();
    crate::hooks::exit::reset_after_fork();
    crate::recorder::Recorder::forget_after_fork();
    if let Some(sink) = Sink::global() {
        sink.after_fork();
    }
}
