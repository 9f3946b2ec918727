//! The process hooks: panics, exits, termination signals and fatal signals.
//!
//! | ending | hook | record |
//! |---|---|---|
//! | panic, any thread | [`panic`](mod@panic) hook, chained; its spans kept by [`panic_spans`] | `panic` |
//! | return from `main`, `process::exit` | glibc `on_exit` ([`exit`](mod@exit)) | `process_exit` |
//! | SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGALRM, SIGUSR1, SIGUSR2, SIGVTALRM, SIGPROF, SIGPIPE | [`signals`] | `signal` |
//! | SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGTRAP, SIGXCPU, SIGXFSZ | [`fatal`] | `fatal_signal` |
//!
//! Each hook records, then hands over to what would have happened without
//! lastwords, so the exit status and death signal are unchanged. The split
//! between the two kinds: `fatal_signal` is for the signals whose default
//! action dumps core because the program itself did something (a fault, an
//! abort, a forbidden system call, a breakpoint, a CPU or file-size limit);
//! `signal` for the others, which ask the process to stop or tell it about
//! an event (SIGQUIT, the user's Ctrl-\, included).
//!
//! # Two deaths at once
//!
//! A handler that is about to end the process claims the death first
//! ([`claim_death`]). Another thread that is about to die too (two threads
//! crash at once), or to write a `panic` record, waits instead, at most
//! [`DEATH_WAIT_MS`] after the claim, for the process to end: the file then
//! has one ending, not two records racing each other. A claim also waits,
//! at most [`PANIC_WAIT_MS`], for `panic` records already being written,
//! so that they come before the death's record. If the process is
//! still alive after that (an application handler recovered from the
//! signal), everyone goes on as usual. The exit handler does not claim: a
//! termination signal that arrives while `exit()` runs still ends the
//! process (as it would without lastwords), and its `signal` record follows
//! `process_exit`.
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

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::error::InitError;
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

/// How long, after a handler claimed the process's death, other threads'
/// deaths and panics wait for it before going on as usual.
pub(crate) const DEATH_WAIT_MS: u32 = 1000;

/// The thread that claimed the process's death (high 32 bits, 0 = none)
/// and when (low 32 bits, [`monotonic_ms`] truncated), in one word so that
/// both change together.
static DYING: AtomicU64 = AtomicU64::new(0);

/// How long a claim on the process's death waits for `panic` records
/// other threads are already writing.
const PANIC_WAIT_MS: u32 = 200;

/// How many threads are writing a `panic` record right now.
static PANICS_WRITING: AtomicUsize = AtomicUsize::new(0);

/// Held while a `panic` record is written; see [`panic_record`].
pub(crate) struct PanicRecord(());

impl Drop for PanicRecord {
    fn drop(&mut self) {
        PANICS_WRITING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Announces that the calling thread is about to write a `panic` record.
/// If another thread is ending the process, waits for the end first (see
/// [`wait_while_dying`]); the record is written only if the process is
/// still alive after that.
pub(crate) fn panic_record() -> PanicRecord {
    PANICS_WRITING.fetch_add(1, Ordering::SeqCst);
    if dying_elsewhere() {
        PANICS_WRITING.fetch_sub(1, Ordering::SeqCst);
        wait_while_dying();
        PANICS_WRITING.fetch_add(1, Ordering::SeqCst);
    }
    PanicRecord(())
}

fn dying_elsewhere() -> bool {
    let me = crate::thread::raw_tid() as u32 as u64;
    let held = DYING.load(Ordering::SeqCst);
    held != 0 && held >> 32 != me && monotonic_ms().wrapping_sub(held as u32) <= DEATH_WAIT_MS
}

/// Claims the process's death for the calling thread. If another thread
/// claimed it less than [`DEATH_WAIT_MS`] ago, waits until that claim
/// expires (the process normally ends long before) and takes it over.
/// Async-signal-safe.
pub(crate) fn claim_death() {
    let me = crate::thread::raw_tid() as u32 as u64;
    loop {
        let held = DYING.load(Ordering::Acquire);
        let now = monotonic_ms();
        let expired = now.wrapping_sub(held as u32) > DEATH_WAIT_MS;
        if held == 0 || held >> 32 == me || expired {
            let mine = (me << 32) | u64::from(now);
            if DYING
                .compare_exchange(held, mine, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                // Panic records being written come first; new ones wait.
                while PANICS_WRITING.load(Ordering::SeqCst) != 0
                    && monotonic_ms().wrapping_sub(now) < PANIC_WAIT_MS
                {
                    pause_1ms();
                }
                return;
            }
            continue;
        }
        pause_1ms();
    }
}

/// Waits while another thread's unexpired claim on the process's death
/// holds (see [`claim_death`]); returns at once when there is none.
/// Async-signal-safe.
pub(crate) fn wait_while_dying() {
    while dying_elsewhere() {
        pause_1ms();
    }
}

/// `CLOCK_MONOTONIC` in milliseconds, truncated to 32 bits (only
/// differences of a few seconds are ever taken). Async-signal-safe.
fn monotonic_ms() -> u32 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000) as u32
}

fn pause_1ms() {
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: 1_000_000,
    };
    // SAFETY: a valid timespec; waking early only means one more look.
    unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
}

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
    // Without a builder (or with one that said nothing): the default path.
    crate::termination_log::configure_default_once();
    panic::install();
    exit::install().map_err(|e| InitError::io("cannot register the exit handler".into(), e))?;
    signals::install()
        .map_err(|e| InitError::io("cannot install the termination signal handlers".into(), e))?;
    fatal::install()
        .map_err(|e| InitError::io("cannot install the fatal signal handlers".into(), e))?;
    Ok(())
}
