//! The `process_exit` record: a glibc `on_exit` handler, and
//! [`exit`], which also records where it was called.
//!
//! glibc runs `on_exit` handlers with the real status for every ordinary
//! exit: a return from `main` (`Ok` → 0, `Err` → 1, an `ExitCode`), and
//! `std::process::exit(n)` from any thread. They do not run for `_exit`,
//! signals or `abort`; those are recorded by the signal hooks.
//!
//! Other threads keep running, and logging, while exit handlers run, so the
//! file is never closed here. The handler waits (at most [`WAIT_MS`]) until
//! every record numbered below `process_exit`'s `seq` has been written:
//! then the file holds `seq` 1..=N without a gap, N being `process_exit`'s
//! `seq`. Records other threads log after that may still be cut off by the
//! end of the process, leaving gaps above N.
//!
//! A termination signal that arrives while exit handlers run ends the
//! process as it would without lastwords; its `signal` record then comes
//! after `process_exit`. So that it cannot cut in on this thread between
//! `process_exit`'s `seq` and its write (leaving a gap below its own
//! record), the termination signals are blocked on this thread while the
//! record is written (a few microseconds: a signal arriving then is
//! delivered right after). If another thread is already dying of a signal,
//! the handler waits for that instead (see [`super::claim_death`]).

use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use tracing_core::Level;

use crate::record;
use crate::sink::Sink;

/// How long the exit handler waits for records with a lower `seq` that
/// other threads are still writing.
pub(crate) const WAIT_MS: u64 = 50;

/// Where [`exit`] was called, if it was.
static CALLER: AtomicPtr<Location<'static>> = AtomicPtr::new(std::ptr::null_mut());
/// Set by the first exit handler run: `exit` called again (from another
/// thread, or from an `atexit` handler) writes nothing more.
static WROTE: AtomicBool = AtomicBool::new(false);

extern "C" {
    // glibc: like atexit, but the handler gets the exit status.
    fn on_exit(
        function: extern "C" fn(libc::c_int, *mut libc::c_void),
        arg: *mut libc::c_void,
    ) -> libc::c_int;
}

/// Registers the exit handler.
pub(crate) fn install() -> std::io::Result<()> {
    // SAFETY: `on_exit_handler` is a valid handler for the life of the
    // process; the argument is unused.
    if unsafe { on_exit(on_exit_handler, std::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::other("on_exit failed"));
    }
    Ok(())
}

/// Ends the process with `code` like [`std::process::exit`], after
/// recording the caller's source location in the `process_exit` record (as
/// `location`, `file:line:col`).
///
/// Like `std::process::exit`, no destructors run on this thread or others;
/// records already logged are in the file (each is written before the
/// logging call returns).
///
/// # Examples
///
/// ```no_run
/// # fn shutdown_requested() -> bool { true }
/// if shutdown_requested() {
///     lastwords_layer::exit(3); // process_exit: exit_code 3, location "src/main.rs:3:5"
/// }
/// ```
#[track_caller]
pub fn exit(code: i32) -> ! {
    let caller: &'static Location<'static> = Location::caller();
    CALLER.store(caller as *const _ as *mut _, Ordering::Release);
    std::process::exit(code)
}

/// In the child of a `fork()`: forgets an exit the parent was in the middle
/// of, so that the child's own exit is recorded. Async-signal-safe.
pub(crate) fn reset_after_fork() {
    CALLER.store(std::ptr::null_mut(), Ordering::Release);
    WROTE.store(false, Ordering::Release);
}

extern "C" fn on_exit_handler(status: libc::c_int, _arg: *mut libc::c_void) {
    // A panic must not cross into C: it would abort with a different status.
    // Ignored result: if writing the record panicked there is nothing left
    // to do but let the exit go on.
    let _ = std::panic::catch_unwind(|| write_process_exit(status));
}

/// Writes `process_exit` for `status` (once per process), waits for
/// records still being written, and flushes the mirror's pending count.
fn write_process_exit(status: libc::c_int) {
    if WROTE.swap(true, Ordering::AcqRel) {
        return;
    }
    let Some(sink) = Sink::global() else { return };
    super::wait_while_dying();
    // The parent sees the low 8 bits only.
    let code = status & 0xff;
    // SAFETY: CALLER is null or a `&'static Location` stored by `exit`.
    let caller = unsafe { CALLER.load(Ordering::Acquire).as_ref() };
    let dropped = sink.dropped();
    let crumbs = crate::ring::last(super::CRUMBS);
    let level = if code == 0 { Level::INFO } else { Level::ERROR };
    let message = format!(
        "process exited with code {code}{}{}",
        caller.map_or_else(String::new, |l| format!(" at {l}")),
        if dropped > 0 {
            format!("; {dropped} records could not be written")
        } else {
            String::new()
        }
    );
    let mask = crate::sigmask::block();
    record::emit(sink, level, "process_exit", &message, |f| {
        f.int("exit_code", code);
        f.int("dropped_records", dropped);
        f.int("mirror_dropped", crate::mirror::dropped());
        if let Some(caller) = caller {
            f.display("location", caller);
        }
        f.crumbs("breadcrumbs", &crumbs);
        crate::recorder::counts::write_members(f.out);
    });
    crate::sigmask::restore_mask(&mask);
    // Kubernetes' termination message: a clean exit leaves none, even
    // after a panic the process went on from.
    if code == 0 {
        crate::termination_log::clear();
    } else {
        crate::termination_log::write(crate::termination_log::Ending::Exit {
            code,
            location: caller.map(|l| (l.file(), l.line(), l.column())),
        });
    }
    sink.wait_for_earlier(WAIT_MS);
    sink.mirror.flush();
}
