//! SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGTRAP, SIGXCPU and
//! SIGXFSZ: a `fatal_signal` record, then the death the process would have
//! died without lastwords (the same signal, a core dump where the default
//! action makes one).
//!
//! The handler runs with `SA_ONSTACK`, because a stack overflow leaves no
//! stack to run on: std gives the main thread and every thread it spawns an
//! alternate signal stack (`install` adds one to the installing thread if it
//! has none). That stack is small, so the handler's frame is kept tiny: the
//! record is built in a static scratch area ([`sigsafe`]).
//!
//! After writing, the handler puts back the action it found at install time
//! (for SIGSEGV and SIGBUS that is std's stack-overflow handler, which
//! prints "thread '…' has overflowed its stack" and aborts) and also puts
//! back SIGABRT's, so that abort called from std's handler, still on the
//! small alternate stack, does not run our handler a second time there.
//! Then:
//!
//! - a fault raised by the CPU (SIGSEGV, SIGBUS, SIGILL or SIGFPE with
//!   `si_code > 0`): return; the instruction faults again and the restored
//!   action handles it as if lastwords had never been there;
//! - any other (sent by `kill`, `raise` or `abort`; SIGSYS from seccomp and
//!   SIGTRAP from a breakpoint, which do not fault again; SIGXCPU and
//!   SIGXFSZ from a resource limit): raise it again; it is blocked until
//!   the handler returns, then the restored action gets it.
//!
//! As PID 1 the kernel ignores a default-action signal unless it forces it
//! (a CPU fault, seccomp's SIGSYS, a breakpoint's SIGTRAP): for the others
//! the handler writes the record with `"ignored":true` and returns, and the
//! process goes on as without lastwords. A forced SIGSYS or SIGTRAP kills
//! PID 1 without lastwords, but the handler cannot re-raise it with the
//! force the kernel used: it ends the process with `_exit(128 + signo)`.
//!
//! SIGSYS, SIGTRAP, SIGXCPU and SIGXFSZ are handled only while their action
//! is the default: an application that installed a handler for one of them
//! (a debugger's SIGTRAP, a CPU-limit checkpoint on SIGXCPU) keeps it
//! untouched, and no record is written for it.
//!
//! The handler is one-shot: the first fatal signal restores the previous
//! actions for good, which is right for a process that is about to die. A
//! program that recovers from SIGSEGV on purpose (a JIT, a wasm runtime)
//! should install its own handler after lastwords, so that it runs first.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

use super::sigsafe::{self, ErrnoGuard, Overflow, SignalRecord};
use crate::sink::Sink;

/// The signals handled here.
pub(crate) const SIGNALS: [libc::c_int; 9] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
    libc::SIGSYS,
    libc::SIGTRAP,
    libc::SIGXCPU,
    libc::SIGXFSZ,
];

const N: usize = SIGNALS.len();

const ABRT: usize = 4;

/// `SIGNALS[i]` for `i >= DEFAULT_ONLY` is handled only while its action
/// is the default.
const DEFAULT_ONLY: usize = 5;

/// How long the handler waits for records with a lower `seq` still being
/// written by other threads.
const WAIT_MS: u64 = 20;

/// Size of the alternate signal stack given to the installing thread when
/// it has none.
const ALT_STACK_BYTES: usize = 64 * 1024;

/// How far from the stack pointer a fault may be to count as a stack
/// overflow. A function touches its frame near the stack pointer, and
/// large frames are probed a page at a time (Rust's stack probes, C's
/// `-fstack-clash-protection`), so running into the guard page faults
/// within a page or so of it; a wild or null pointer is almost always far
/// away. 64 KiB leaves room for a frame set up without probes.
const OVERFLOW_REACH: usize = 64 * 1024;

struct Prev {
    saved: [AtomicBool; N],
    actions: UnsafeCell<[libc::sigaction; N]>,
}

// SAFETY: `actions[i]` is written once, before `saved[i]` is set (Release)
// and before our handler is installed; afterwards it is only read.
unsafe impl Sync for Prev {}

static PREV: Prev = Prev {
    saved: [const { AtomicBool::new(false) }; N],
    // SAFETY: sigaction is plain data; all zeroes is SIG_DFL, empty mask.
    actions: UnsafeCell::new(unsafe { std::mem::zeroed() }),
};

/// Installs the handler for each fatal signal not ignored, and an
/// alternate signal stack for the calling thread if it has none.
pub(crate) fn install() -> std::io::Result<()> {
    ensure_alt_stack();
    for (i, &signo) in SIGNALS.iter().enumerate() {
        if PREV.saved[i].load(Ordering::Acquire) {
            continue; // already installed
        }
        // SAFETY: a zeroed sigaction is a valid out-parameter.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: querying the current action; `old` is writable.
        if unsafe { libc::sigaction(signo, std::ptr::null(), &mut old) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if old.sa_sigaction == libc::SIG_IGN
            || (i >= DEFAULT_ONLY && old.sa_sigaction != libc::SIG_DFL)
        {
            continue;
        }
        // SAFETY: `saved[i]` is false, so no handler reads this entry yet,
        // and `install_hooks` runs once.
        unsafe { (*PREV.actions.get())[i] = old };
        PREV.saved[i].store(true, Ordering::Release);
        // SAFETY: a zeroed sigaction with an empty mask is valid.
        let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
        new.sa_sigaction = on_fatal
            as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
            as usize;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `new` is fully initialised and the handler is AS-safe.
        if unsafe { libc::sigaction(signo, &new, std::ptr::null_mut()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Gives the calling thread an alternate signal stack if it has none
/// (threads not started by std). The memory is never freed: the thread
/// may use it until the process ends.
fn ensure_alt_stack() {
    // SAFETY: querying; `current` is writable.
    let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
    if unsafe { libc::sigaltstack(std::ptr::null(), &mut current) } != 0 {
        return;
    }
    if current.ss_flags & libc::SS_DISABLE == 0 {
        return; // std already gave this thread one
    }
    // SAFETY: an anonymous private mapping; checked below.
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            ALT_STACK_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        return; // without it, only a stack overflow goes unrecorded
    }
    let stack = libc::stack_t {
        ss_sp: mem,
        ss_flags: 0,
        ss_size: ALT_STACK_BYTES,
    };
    // SAFETY: `stack` describes the mapping above, which is never unmapped.
    unsafe { libc::sigaltstack(&stack, std::ptr::null_mut()) };
}

extern "C" fn on_fatal(signo: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let _errno = ErrnoGuard::new();
    let Some(i) = SIGNALS.iter().position(|&s| s == signo) else {
        return;
    };
    // SAFETY: the kernel passes a valid siginfo with SA_SIGINFO.
    let (code, addr) = unsafe {
        match info.as_ref() {
            Some(info) => (info.si_code, info.si_addr() as usize),
            None => (0, 0),
        }
    };
    // A fault the CPU raised: the instruction faults again on return.
    let hardware = code > 0
        && matches!(
            signo,
            libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE
        );
    // Signals the kernel delivers even to PID 1 with the default action.
    let forced = hardware || (code > 0 && matches!(signo, libc::SIGSYS | libc::SIGTRAP));
    // SAFETY: getpid has no preconditions.
    let pid1 = unsafe { libc::getpid() } == 1;
    if pid1 && !forced && previous_is_default(i) {
        // The kernel ignores it; our handler stays for the next one.
        record(signo, None, Overflow::No, true);
        return;
    }
    // Only a fault the CPU raised has a meaningful address; `kill -SEGV`
    // fills `si_addr` with the sender's pid and uid.
    let overflow = if hardware && (signo == libc::SIGSEGV || signo == libc::SIGBUS) {
        overflow(i, addr, ctx)
    } else {
        Overflow::No
    };
    super::claim_death();
    record(signo, hardware.then_some(addr), overflow, false);
    crate::termination_log::write(crate::termination_log::Ending::Fatal {
        signo,
        overflow: overflow != Overflow::No,
    });
    restore(i);
    if i != ABRT {
        restore(ABRT);
    }
    if !hardware {
        if pid1 && forced && previous_is_default(i) {
            // SAFETY: _exit is async-signal-safe. See the module docs.
            unsafe { libc::_exit(128 + signo) };
        }
        // SAFETY: raise is async-signal-safe; the signal stays pending
        // until this handler returns, then the restored action takes it.
        unsafe { libc::raise(signo) };
    }
}

/// Writes the `fatal_signal` record and, unless the process goes on,
/// waits for lower `seq` values still being written. Async-signal-safe.
fn record(signo: libc::c_int, fault_address: Option<usize>, overflow: Overflow, ignored: bool) {
    let Some(sink) = Sink::global() else { return };
    sigsafe::write(
        sink,
        &SignalRecord {
            kind: "fatal_signal",
            level: "ERROR",
            signo,
            fault_address,
            overflow,
            ignored,
        },
    );
    if !ignored {
        sink.wait_for_earlier(WAIT_MS);
    }
}

/// Whether the action found at install time for `SIGNALS[i]` is the
/// default one. Async-signal-safe.
fn previous_is_default(i: usize) -> bool {
    !PREV.saved[i].load(Ordering::Acquire)
        // SAFETY: as in `restore`.
        || unsafe { (*PREV.actions.get())[i].sa_sigaction } == libc::SIG_DFL
}

/// Whether a fault at `addr` is the thread running off its stack: the
/// address is within [`OVERFLOW_REACH`] of the stack pointer saved in the
/// signal's context. Then tells what the restored action will do with it:
/// a handler (std's, installed before `main`) prints "has overflowed its
/// stack" and aborts; the default action lets the fault kill the process.
/// Async-signal-safe.
fn overflow(i: usize, addr: usize, ctx: *mut libc::c_void) -> Overflow {
    let Some(sp) = stack_pointer(ctx) else {
        return Overflow::No;
    };
    if addr.abs_diff(sp) > OVERFLOW_REACH {
        return Overflow::No;
    }
    let prev = if PREV.saved[i].load(Ordering::Acquire) {
        // SAFETY: as in `restore`.
        unsafe { (*PREV.actions.get())[i].sa_sigaction }
    } else {
        libc::SIG_DFL
    };
    if prev == libc::SIG_DFL {
        Overflow::ThenDefault
    } else {
        Overflow::ThenAbort
    }
}

/// The interrupted thread's stack pointer, from the `ucontext_t` the
/// kernel passes to an `SA_SIGINFO` handler. Async-signal-safe.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn stack_pointer(ctx: *mut libc::c_void) -> Option<usize> {
    // SAFETY: with SA_SIGINFO the kernel passes a valid ucontext_t (or
    // null, checked by `as_ref`).
    let uc = unsafe { (ctx as *const libc::ucontext_t).as_ref()? };
    // A register's bits, not a number: the cast keeps them.
    Some(uc.uc_mcontext.gregs[libc::REG_RSP as usize] as usize)
}

/// The interrupted thread's stack pointer, from the `ucontext_t` the
/// kernel passes to an `SA_SIGINFO` handler. Async-signal-safe.
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
fn stack_pointer(ctx: *mut libc::c_void) -> Option<usize> {
    // SAFETY: as on x86_64.
    let uc = unsafe { (ctx as *const libc::ucontext_t).as_ref()? };
    Some(uc.uc_mcontext.sp as usize)
}

/// Other architectures: their register layout is not spelled out here, so
/// a stack overflow is recorded as a plain fault.
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn stack_pointer(_ctx: *mut libc::c_void) -> Option<usize> {
    None
}

/// Puts back the action found at install time for `SIGNALS[i]`.
/// Async-signal-safe.
fn restore(i: usize) {
    if !PREV.saved[i].load(Ordering::Acquire) {
        return;
    }
    // SAFETY: `actions[i]` was written before `saved[i]` was set and is
    // never written again.
    let action = unsafe { &(*PREV.actions.get())[i] };
    // SAFETY: restoring an action the kernel gave us.
    unsafe { libc::sigaction(SIGNALS[i], action, std::ptr::null_mut()) };
}
