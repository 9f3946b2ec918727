//! The signals whose default action ends the process and that do not come
//! from a fault of the program itself: SIGTERM, SIGINT, SIGHUP, SIGQUIT,
//! SIGALRM, SIGUSR1, SIGUSR2, SIGVTALRM, SIGPROF and SIGPIPE. Each gets a
//! `signal` record, then whatever would have happened without lastwords.
//!
//! The handler writes the record with async-signal-safe code only (see
//! [`sigsafe`]), then:
//!
//! - if another handler was installed *over* ours and called us (as
//!   `signal-hook-registry`, and so tokio's `signal::ctrl_c()` and
//!   `signal(SignalKind::terminate())`, does with the handler it found),
//!   returns to it: it runs the application's reaction itself;
//! - else if the application had a handler before lastwords was installed,
//!   calls it (graceful shutdown keeps working);
//! - else, as PID 1 (a container's init), returns: the kernel ignores a
//!   default-action signal sent to PID 1, so the process goes on, and the
//!   record says `"ignored":true`;
//! - else restores the default action and re-raises the signal, so the
//!   parent sees the process die of the same signal.
//!
//! # The application's handler keeps its semantics
//!
//! When the application installed its handler first, ours takes its place
//! with the application's own `sa_flags` (plus `SA_SIGINFO`) and `sa_mask`:
//! the kernel restarts system calls only if the application asked for
//! `SA_RESTART`, runs the handler on the alternate stack only if it asked
//! for `SA_ONSTACK`, blocks what it asked to block, and honours
//! `SA_NODEFER` and `SA_RESETHAND`. With `SA_RESETHAND` the kernel resets
//! the action to the default when it delivers the signal; the handler then
//! puts itself back as a default-action handler (before calling the
//! application's, which may reinstall itself) so that the next delivery
//! kills the process as it would have, with a record.
//!
//! A handler installed later with a plain `sigaction` replaces ours: the
//! kernel then runs it exactly as the application asked, and no `signal`
//! record is written for that signal unless it calls the previous handler.
//!
//! With no application handler, ours runs with `SA_RESTART | SA_ONSTACK`
//! and every signal of this module blocked: it either ends the process or,
//! as PID 1, returns. A system call that the kernel does not restart even
//! with `SA_RESTART` (`epoll_wait`, `nanosleep`, …) can then fail with
//! `EINTR` in a PID 1 where the ignored signal would not have interrupted it.
//!
//! A signal whose disposition was "ignore" when lastwords was installed
//! (`nohup`, a parent's `SIG_IGN`, std's SIGPIPE) is left ignored.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use super::sigsafe::{self, ErrnoGuard, Overflow, SignalRecord};
use crate::sink::Sink;

pub(crate) use crate::sigmask::SIGNALS;

const N: usize = SIGNALS.len();

/// How long the handler waits for records with a lower `seq` still being
/// written by other threads before the process dies.
const WAIT_MS: u64 = 20;

// Per entry of SIGNALS: the application's handler found at install time
// (SIG_DFL when there was none) and its `sa_flags`, and the `sa_flags` our
// handler was installed with (to tell a reset by SA_RESETHAND).
static PREV_HANDLER: [AtomicUsize; N] = [const { AtomicUsize::new(libc::SIG_DFL) }; N];
static PREV_FLAGS: [AtomicI32; N] = [const { AtomicI32::new(0) }; N];
static OUR_FLAGS: [AtomicI32; N] = [const { AtomicI32::new(0) }; N];

/// Installs the handler for each signal not already ignored.
pub(crate) fn install() -> std::io::Result<()> {
    for (i, &signo) in SIGNALS.iter().enumerate() {
        // SAFETY: a zeroed sigaction is a valid out-parameter.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: querying the current action; `old` is writable.
        if unsafe { libc::sigaction(signo, std::ptr::null(), &mut old) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if old.sa_sigaction == libc::SIG_IGN || old.sa_sigaction == handler_address() {
            continue; // inherited "ignore" stays; already installed
        }
        PREV_HANDLER[i].store(old.sa_sigaction, Ordering::Release);
        PREV_FLAGS[i].store(old.sa_flags, Ordering::Release);
        let new = if old.sa_sigaction == libc::SIG_DFL {
            default_action_handler()
        } else {
            // The application's choices, so that the kernel treats the
            // signal as it would without lastwords.
            // SAFETY: a zeroed sigaction is valid; the mask is copied.
            let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
            new.sa_sigaction = handler_address();
            new.sa_flags = old.sa_flags | libc::SA_SIGINFO;
            new.sa_mask = old.sa_mask;
            new
        };
        OUR_FLAGS[i].store(new.sa_flags, Ordering::Release);
        // SAFETY: `new` is fully initialised and the handler is AS-safe.
        if unsafe { libc::sigaction(signo, &new, std::ptr::null_mut()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Our handler for a signal whose action is the default: it ends the
/// process (or, as PID 1, returns), so it blocks the other signals of this
/// module while it writes and runs on the alternate stack if there is one.
/// Async-signal-safe.
fn default_action_handler() -> libc::sigaction {
    // SAFETY: a zeroed sigaction is valid; sigemptyset/sigaddset take a
    // valid set.
    unsafe {
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = handler_address();
        new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
        libc::sigemptyset(&mut new.sa_mask);
        for &s in &SIGNALS {
            libc::sigaddset(&mut new.sa_mask, s);
        }
        new
    }
}

fn handler_address() -> libc::sighandler_t {
    on_signal as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize
}

extern "C" fn on_signal(signo: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let _errno = ErrnoGuard::new();
    let Some(i) = SIGNALS.iter().position(|&s| s == signo) else {
        return;
    };
    let sink = Sink::global();

    // Who called us: the kernel (our action is installed, or was until
    // SA_RESETHAND reset it on this delivery), or a handler installed
    // over ours that chains to the one it found.
    // SAFETY: a zeroed sigaction is a valid out-parameter; sigaction is
    // async-signal-safe.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    unsafe { libc::sigaction(signo, std::ptr::null(), &mut current) };
    let reset = current.sa_sigaction == libc::SIG_DFL
        && OUR_FLAGS[i].load(Ordering::Acquire) & libc::SA_RESETHAND != 0;
    if current.sa_sigaction != handler_address() && !reset {
        record(sink, signo, false);
        return; // the handler that called us decides what happens next
    }

    let prev = PREV_HANDLER[i].load(Ordering::Acquire);
    if prev != libc::SIG_DFL && prev != libc::SIG_IGN {
        let flags = PREV_FLAGS[i].load(Ordering::Acquire);
        if reset {
            // The kernel reset the action as the application asked: the
            // next delivery must end the process. Done before calling the
            // application's handler, which may reinstall itself.
            rearm(i);
        }
        record(sink, signo, false);
        // SAFETY: `prev` is the handler the application installed for this
        // signal with these flags; we call it the way the kernel would,
        // already under its mask and on the stack it chose.
        unsafe {
            if flags & libc::SA_SIGINFO != 0 {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(prev);
                f(signo, info, ctx);
            } else {
                let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev);
                f(signo);
            }
        }
        return;
    }

    // SAFETY: getpid has no preconditions.
    if unsafe { libc::getpid() } == 1 {
        // The kernel ignores a default-action signal sent to PID 1.
        record(sink, signo, true);
        return;
    }
    super::claim_death();
    record(sink, signo, false);
    crate::termination_log::write(crate::termination_log::Ending::Signal { signo });
    if let Some(sink) = sink {
        sink.wait_for_earlier(WAIT_MS);
    }
    die_of(signo);
}

/// Writes the `signal` record, if a file is open. Async-signal-safe.
fn record(sink: Option<&Sink>, signo: libc::c_int, ignored: bool) {
    if let Some(sink) = sink {
        sigsafe::write(
            sink,
            &SignalRecord {
                kind: "signal",
                level: "WARN",
                signo,
                fault_address: None,
                overflow: Overflow::No,
                ignored,
            },
        );
    }
}

/// After SA_RESETHAND reset `SIGNALS[i]` to the default action: installs
/// our handler again, as for a signal whose action is the default, and
/// forgets the application's handler. Async-signal-safe.
fn rearm(i: usize) {
    PREV_HANDLER[i].store(libc::SIG_DFL, Ordering::Release);
    let new = default_action_handler();
    OUR_FLAGS[i].store(new.sa_flags, Ordering::Release);
    // SAFETY: `new` is fully initialised and the handler is AS-safe.
    unsafe { libc::sigaction(SIGNALS[i], &new, std::ptr::null_mut()) };
}

/// Ends the process with `signo` as its death signal, as the default action
/// would. Only for a process that is not PID 1 (which ignores a
/// default-action signal): if the raised signal does not end it anyway,
/// `_exit(128 + signo)`, the status a shell reports for it.
/// Async-signal-safe.
pub(crate) fn die_of(signo: libc::c_int) -> ! {
    // SAFETY: all calls below are async-signal-safe and take valid
    // arguments; none of them returns into Rust state we rely on.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(signo, &dfl, std::ptr::null_mut());
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signo);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signo);
        libc::_exit(128 + signo)
    }
}
