//! Per-thread identity for records: the kernel thread id and the thread's
//! name, looked up once per thread and cached; and the fork generation
//! that tells those caches they are stale.
//!
//! A child created by `fork()` runs on a copy of the forking thread with a
//! new thread id (and pid), but inherits that thread's caches. The child's
//! atfork handler bumps the generation ([`new_generation`]); every cache
//! checks it and looks its value up again when it changed.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Incremented in the child of every `fork()`.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The current fork generation. Async-signal-safe.
#[inline]
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// Marks every per-thread cache stale: called in the child of a `fork()`.
/// Async-signal-safe.
pub(crate) fn new_generation() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

thread_local! {
    /// The generation the id was looked up in, and the id.
    static TID: Cell<(u64, i64)> = const { Cell::new((u64::MAX, 0)) };
}

/// The calling thread's kernel thread id (`gettid(2)`), cached per thread.
/// The main thread's id equals the process id.
#[inline]
pub(crate) fn tid() -> i64 {
    let generation = generation();
    TID.try_with(|cell| {
        let (seen, tid) = cell.get();
        if seen == generation {
            return tid;
        }
        let tid = raw_tid();
        cell.set((generation, tid));
        tid
    })
    .unwrap_or_else(|_| raw_tid())
}

/// `gettid(2)` without the cache. Async-signal-safe.
pub(crate) fn raw_tid() -> i64 {
    // SAFETY: gettid has no preconditions and cannot fail.
    i64::from(unsafe { libc::gettid() })
}

/// The calling thread's name: `main` for the main thread (as in ordinary
/// records), else the kernel's copy of it (15 bytes at most).
/// Async-signal-safe.
pub(crate) fn name_sigsafe(buf: &mut [u8; 17]) -> &str {
    // SAFETY: getpid has no preconditions.
    if raw_tid() == i64::from(unsafe { libc::getpid() }) {
        return "main";
    }
    // SAFETY: PR_GET_NAME writes at most 16 bytes, NUL included.
    let rc = unsafe {
        libc::prctl(
            libc::PR_GET_NAME,
            buf.as_mut_ptr() as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc != 0 {
        return "<unnamed>";
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(16);
    std::str::from_utf8(&buf[..len]).unwrap_or("<unnamed>")
}
