//! SIGTERM, SIGINT, SIGHUP and SIGQUIT: a `signal` record, then whatever
//! would have happened without lastwords.
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
//! - else restores the default action and re-raises the signal, so the
//!   parent sees the process die of the same signal. As PID 1 the kernel
//!   ignores a default-action signal, so the handler ends the process with
//!   `_exit(128 + signo)` instead, the status a shell reports for it.
//!
//! So tokio's handlers work in either install order. A handler installed
//! later with a plain `sigaction` that does not call the previous one
//! replaces ours: then no `signal` record is written for that signal.
//!
//! A signal whose disposition was "ignore" when lastwords was installed
//! (`nohup`, a parent's `SIG_IGN`) is left ignored.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use super::sigsafe::{self, ErrnoGuard, Overflow, SignalRecord};
use crate::sink::Sink;

/// The signals handled here.
pub(crate) const SIGNALS: [libc::c_int; 4] =
    [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

/// How long the handler waits for records with a lower `seq` still being
/// written by other threads before the process dies.
const WAIT_MS: u64 = 20;

// The application's handler found at install time (`sa_sigaction` and
// `sa_flags`), per entry of SIGNALS; SIG_DFL when there was none.
static PREV_HANDLER: [AtomicUsize; 4] = [const { AtomicUsize::new(libc::SIG_DFL) }; 4];
static PREV_FLAGS: [AtomicI32; 4] = [const { AtomicI32::new(0) }; 4];

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
        // SAFETY: a zeroed sigaction with an empty mask is valid.
        let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
        new.sa_sigaction = handler_address();
        new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
        // SAFETY: `new` is fully initialised and the handler is AS-safe.
        if unsafe { libc::sigaction(signo, &new, std::ptr::null_mut()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
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
    if let Some(sink) = sink {
        sigsafe::write(
            sink,
            &SignalRecord {
                kind: "signal",
                level: "WARN",
                signo,
                fault_address: None,
                overflow: Overflow::No,
            },
        );
    }

    // Called by a handler that replaced ours: it decides what happens next.
    // SAFETY: a zeroed sigaction is a valid out-parameter; sigaction is
    // async-signal-safe.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    unsafe { libc::sigaction(signo, std::ptr::null(), &mut current) };
    if current.sa_sigaction != handler_address() {
        return;
    }

    let prev = PREV_HANDLER[i].load(Ordering::Acquire);
    if prev != libc::SIG_DFL && prev != libc::SIG_IGN {
        let flags = PREV_FLAGS[i].load(Ordering::Acquire);
        // SAFETY: `prev` is the handler the application installed for this
        // signal with these flags; we call it the way the kernel would.
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

    if let Some(sink) = sink {
        sink.wait_for_earlier(WAIT_MS);
    }
    die_of(signo);
}

/// Ends the process with `signo` as its death signal, as the default action
/// would; as PID 1 (where the kernel ignores default-action signals), with
/// `_exit(128 + signo)`. Async-signal-safe.
pub(crate) fn die_of(signo: libc::c_int) -> ! {
    // SAFETY: all calls below are async-signal-safe and take valid
    // arguments; none of them returns into Rust state we rely on.
    unsafe {
        if libc::getpid() != 1 {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(signo, &dfl, std::ptr::null_mut());
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signo);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::raise(signo);
        }
        libc::_exit(128 + signo)
    }
}
