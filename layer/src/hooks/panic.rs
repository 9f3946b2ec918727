//! The panic hook: a `panic` record, then the hook that was there before
//! (std's "thread '…' panicked at …" message still prints).
//!
//! It runs on the panicking thread before unwinding starts (or before the
//! abort with `panic = "abort"`), so it is the only witness of a panic in a
//! spawned thread or a tokio task, which leaves the exit status at 0.
//!
//! The record carries the message, `location` (`file:line:col`), the
//! thread, a `backtrace`, the last breadcrumbs, and the panicking thread's
//! `span` and `spans`, as an event logged at the panic's location would
//! have them.
//!
//! # Backtraces follow `RUST_BACKTRACE`, as std's panic message does
//!
//! A panic is not always rare: a web framework's panic guard, a tokio task
//! or any `catch_unwind` turns panics into ordinary errors, and a service
//! may see thousands of them. Resolving a backtrace costs milliseconds and
//! loads the debug information into memory for good (tens of MB), so a
//! hook that always captured one made every caught panic ~100× dearer and
//! grew the process. So the record's `backtrace` is captured exactly when
//! std's own panic message prints one: when `RUST_BACKTRACE` is set and is
//! not `0` (read at the first panic, as std does). Otherwise it is the
//! string `"disabled backtrace"` (what [`std::backtrace::Backtrace`]
//! displays then), and what locates the bug is the `location`, the
//! message, the spans and the breadcrumbs. Without a backtrace a panic
//! costs the hook a few microseconds: it formats one record, writes it
//! with one `write(2)`, and takes no lock and starts no thread (the spans
//! are kept ready by [`panic_spans`](super::panic_spans)).

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU8, Ordering};

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
        let backtrace = if backtraces_wanted() {
            std::backtrace::Backtrace::force_capture().to_string()
        } else {
            String::from(NO_BACKTRACE)
        };
        let crumbs = crate::ring::last(super::CRUMBS);
        record::emit(sink, Level::ERROR, "panic", &message, |f| {
            f.str("location", &location);
            f.str("backtrace", &backtrace);
            f.crumbs("breadcrumbs", &crumbs);
            crate::recorder::counts::write_members(f.out);
            // The hook runs on the panicking thread, before unwinding leaves
            // any span: the spans it is in are those an event logged at the
            // panic's location would list.
            super::panic_spans::write_current(f.out);
        });
    }
    // Kubernetes' termination message: the last panic until something
    // else ends the process.
    crate::termination_log::panic(&location, message);
    // Ignored: see above.
    let _ = IN_HOOK.try_with(|flag| flag.set(false));
}

/// The `backtrace` of a panic record when `RUST_BACKTRACE` asks for none.
const NO_BACKTRACE: &str = "disabled backtrace";

/// Whether `RUST_BACKTRACE` asks for backtraces: set, and not `0` (`1`,
/// `full`, …), as std's panic message decides. Read once, at the first
/// panic, as std reads it.
fn backtraces_wanted() -> bool {
    /// 0: not read yet; 1: no; 2: yes.
    static WANTED: AtomicU8 = AtomicU8::new(0);
    match WANTED.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let wanted = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0");
            WANTED.store(if wanted { 2 } else { 1 }, Ordering::Relaxed);
            wanted
        }
    }
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
