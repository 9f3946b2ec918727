//! The panic hook: a `panic` record, then the hook that was there before
//! (std's "thread '…' panicked at …" message still prints).
//!
//! It runs on the panicking thread before unwinding starts (or before the
//! abort with `panic = "abort"`), so it is the only witness of a panic in a
//! spawned thread or a tokio task, which leaves the exit status at 0.
//!
//! The record carries the message, `location` (`file:line:col`), the
//! thread, a `backtrace` (captured whatever `RUST_BACKTRACE` says: a panic
//! is rare and this is the moment it is needed), the last breadcrumbs, and
//! the panicking thread's `span` and `spans`, as an event logged at the
//! panic's location would have them.

use std::cell::{Cell, RefCell};

use tracing_core::Level;

use crate::record;
use crate::sink::Sink;

thread_local! {
    /// The message and location of this thread's latest panic.
    static CURRENT: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
    /// Set while this thread is inside the hook: a panic inside it (a
    /// broken `Display`) must not recurse.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Chains the lastwords hook in front of the current panic hook. Does
/// nothing on a thread that is already panicking (std forbids changing the
/// hook there).
pub(crate) fn install() {
    if std::thread::panicking() {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("Box<dyn Any>");
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        record_panic(message, location);
        previous(info);
    }));
}

fn record_panic(message: &str, location: String) {
    // Another thread ending the process (a fatal or termination signal)
    // waits for this record, or this one waits for the end: the death's
    // record is never followed by a panic record.
    let _writing = super::panic_record();
    // Ignored: after this thread's locals are destroyed there is nowhere to
    // keep the panic for `current_panic`, and the record is still written.
    let _ = CURRENT.try_with(|current| {
        if let Ok(mut current) = current.try_borrow_mut() {
            *current = Some((message.to_owned(), location.clone()));
        }
    });
    if IN_HOOK.try_with(|flag| flag.replace(true)).unwrap_or(true) {
        return;
    }
    if let Some(sink) = Sink::global() {
        let backtrace = std::backtrace::Backtrace::force_capture().to_string();
        let crumbs = crate::ring::last(super::CRUMBS);
        record::emit(sink, Level::ERROR, "panic", &message, |f| {
            f.str("location", &location);
            f.str("backtrace", &backtrace);
            f.crumbs("breadcrumbs", &crumbs);
            // The hook runs on the panicking thread, before unwinding leaves
            // any span: the spans it is in are those an event logged at the
            // panic's location would list.
            crate::layer::write_current_spans(f.out);
        });
    }
    // Ignored: see above.
    let _ = IN_HOOK.try_with(|flag| flag.set(false));
}

/// The message and location (`file:line:col`) of the calling thread's
/// latest panic, as seen by the lastwords panic hook. Meaningful while
/// [`std::thread::panicking`] is true: `#[exit_path]` uses it to describe
/// the panic unwinding through an annotated function. `None` when the hook
/// is not installed or the thread never panicked.
pub fn current_panic() -> Option<(String, String)> {
    CURRENT
        .try_with(|current| current.try_borrow().ok().and_then(|c| c.clone()))
        .ok()
        .flatten()
}
