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
