//! Per-thread identity for records: the kernel thread id and the thread's
//! name, looked up once per thread and cached.

use std::cell::OnceCell;

thread_local! {
    static TID: OnceCell<i64> = const { OnceCell::new() };
}

/// The calling thread's kernel thread id (`gettid(2)`), cached per thread.
/// The main thread's id equals the process id.
#[inline]
pub(crate) fn tid() -> i64 {
    TID.try_with(|cell| *cell.get_or_init(raw_tid))
        .unwrap_or_else(|_| raw_tid())
}

/// `gettid(2)` without the cache. Async-signal-safe.
pub(crate) fn raw_tid() -> i64 {
    // SAFETY: gettid has no preconditions and cannot fail.
    i64::from(unsafe { libc::gettid() })
}
