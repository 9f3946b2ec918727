//! The termination signals lastwords records (see `hooks::signals`), and
//! blocking them on one thread while a death record is written: a leaf
//! that the hooks, the exit handler and the termination log all use.

/// The termination signals: recorded by `hooks::signals`, blocked by
/// [`block`].
pub(crate) const SIGNALS: [libc::c_int; 10] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGALRM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGPIPE,
];

/// Blocks the termination signals on the calling thread; returns the
/// previous mask for [`restore_mask`]. Used around the writing of a death
/// record, so that a termination signal arriving on the same thread cannot
/// interrupt it between taking its `seq` and writing it (which would leave
/// a gap below the signal's own record). Async-signal-safe.
pub(crate) fn block() -> libc::sigset_t {
    // SAFETY: valid sets; pthread_sigmask is async-signal-safe.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in &SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        old
    }
}

/// Puts back the mask [`block`] returned. Async-signal-safe.
pub(crate) fn restore_mask(old: &libc::sigset_t) {
    // SAFETY: `old` is a mask the kernel gave us.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut()) };
}
