//! The spans the `panic` record lists, kept ready so that the panic hook
//! never waits for them.
//!
//! A `panic` record lists the panicking thread's `span` and `spans`, as an
//! event logged at the panic's location would. The registry holds span
//! fields behind per-span locks, and another layer may hold one of them on
//! the panicking thread itself: the `fmt` layer formats a field while
//! holding its span's lock, so a `Debug` impl that panics there reaches the
//! hook with the lock taken. Reading the registry from the hook could then
//! wait forever, or (from a helper thread) find the lock poisoned once the
//! unwinding passes and panic on its own.
//!
//! So the lastwords layer keeps, per thread, a stack of the spans this
//! thread is in, each with its `,"span":{…},"spans":[…]` members already
//! rendered: pushed in `on_enter`, popped in `on_exit`, and rendered again
//! when a field of a span is recorded on this thread. The hook copies the
//! top entry and takes no lock: it reads the stack with `try_borrow`, and a
//! thread interrupted while updating its own stack (which runs no user
//! code) gives a record without spans rather than a wait. Rendered buffers
//! are reused, so entering and leaving spans allocates nothing once a
//! thread's stack has been as deep before; and a span entered again at the
//! depth it was last left (a loop over requests, a task polled again) keeps
//! its rendering when no span field was recorded and no span closed since
//! ([`changed`]), so that it costs a comparison rather than a rendering.
//!
//! A field recorded from *another* thread into a span this thread is in
//! shows up here from the next time this thread enters a span.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts span field records and span closes, in any thread: a rendering
/// made when it had another value may be out of date (a field changed, or
/// a closed span's id was given to a new span).
static GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static STACK: RefCell<Stack> = const { RefCell::new(Stack { entries: Vec::new(), len: 0 }) };
}

/// The spans this thread is in, innermost last. `entries[len..]` are spare
/// buffers kept for reuse.
struct Stack {
    entries: Vec<Entry>,
    len: usize,
}

struct Entry {
    /// Which lastwords layer entered the span (span ids are per registry).
    owner: usize,
    id: u64,
    /// [`GENERATION`] when `rendered` was made.
    generation: u64,
    /// The `span` and `spans` members for this span and its parents.
    rendered: Vec<u8>,
}

/// Some span's fields were recorded, or a span closed: renderings kept for
/// reuse are out of date.
pub(crate) fn changed() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Records that this thread entered span `id` of layer `owner`;
/// `render` writes its `span` and `spans` members.
pub(crate) fn entered(owner: usize, id: u64, render: impl FnOnce(&mut Vec<u8>)) {
    // Ignored: a thread whose locals are gone lists no spans in a panic.
    let _ = STACK.try_with(|stack| {
        let Ok(mut stack) = stack.try_borrow_mut() else {
            return;
        };
        let stack = &mut *stack;
        let generation = GENERATION.load(Ordering::Relaxed);
        if stack.len == stack.entries.len() {
            stack.entries.push(Entry {
                owner,
                id,
                generation: generation.wrapping_sub(1),
                rendered: Vec::new(),
            });
        }
        let entry = &mut stack.entries[stack.len];
        stack.len += 1;
        if (entry.owner, entry.id, entry.generation) == (owner, id, generation) {
            return; // left here last time, and still up to date
        }
        entry.owner = owner;
        entry.id = id;
        entry.generation = generation;
        entry.rendered.clear();
        render(&mut entry.rendered);
    });
}

/// Records that this thread left span `id` of layer `owner`: removes its
/// innermost entry.
pub(crate) fn exited(owner: usize, id: u64) {
    // Ignored: as in `entered`.
    let _ = STACK.try_with(|stack| {
        let Ok(mut stack) = stack.try_borrow_mut() else {
            return;
        };
        let len = stack.len;
        // Spans are left in the reverse order of entering, almost always.
        if len > 0 && (stack.entries[len - 1].owner, stack.entries[len - 1].id) == (owner, id) {
            stack.len -= 1;
            return;
        }
        let Some(at) = stack.entries[..len]
            .iter()
            .rposition(|e| e.owner == owner && e.id == id)
        else {
            return;
        };
        // Left out of order: keep the order of the others, and the removed
        // entry's buffer for reuse.
        let entry = stack.entries.remove(at);
        stack.entries.push(entry);
        stack.len -= 1;
    });
}

/// A field of some span of layer `owner` was recorded on this thread:
/// renders again every entry of `owner` (any of them may list that span),
/// `render(id, out)` writing the members for span `id`.
pub(crate) fn recorded(owner: usize, mut render: impl FnMut(u64, &mut Vec<u8>)) {
    // Ignored: as in `entered`.
    let _ = STACK.try_with(|stack| {
        let Ok(mut stack) = stack.try_borrow_mut() else {
            return;
        };
        let len = stack.len;
        let generation = GENERATION.load(Ordering::Relaxed);
        for entry in &mut stack.entries[..len] {
            if entry.owner == owner {
                entry.generation = generation;
                entry.rendered.clear();
                render(entry.id, &mut entry.rendered);
            }
        }
    });
}

/// Whether this thread is in any span a lastwords layer saw. Lets
/// `on_record` skip [`recorded`] on threads outside spans.
pub(crate) fn in_any() -> bool {
    STACK
        .try_with(|stack| stack.try_borrow().is_ok_and(|s| s.len > 0))
        .unwrap_or(false)
}

/// Appends `,"span":{…},"spans":[…]` for the calling thread's innermost
/// span, as an event logged here would list them; nothing when the thread
/// is in no span. Takes no lock and never waits: see the module docs.
pub(crate) fn write_current(out: &mut Vec<u8>) {
    // Ignored: as in `entered`.
    let _ = STACK.try_with(|stack| {
        if let Ok(stack) = stack.try_borrow() {
            if let Some(top) = stack.entries[..stack.len].last() {
                out.extend_from_slice(&top.rendered);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current() -> String {
        let mut out = Vec::new();
        write_current(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_innermost_entered_span_is_current() {
        std::thread::spawn(|| {
            assert_eq!(current(), "");
            entered(1, 10, |o| o.extend_from_slice(b"a"));
            entered(1, 11, |o| o.extend_from_slice(b"b"));
            assert_eq!(current(), "b");
            // The same span entered twice on one thread.
            entered(1, 10, |o| o.extend_from_slice(b"a2"));
            assert_eq!(current(), "a2");
            exited(1, 10);
            assert_eq!(current(), "b");
            // Another layer's span with the same id is a different span.
            exited(2, 11);
            assert_eq!(current(), "b");
            recorded(1, |id, o| o.extend_from_slice(format!("{id}!").as_bytes()));
            assert_eq!(current(), "11!");
            // Left out of order.
            exited(1, 10);
            assert_eq!(current(), "11!");
            exited(1, 11);
            assert_eq!(current(), "");
            assert!(!in_any());
            // An exit never entered changes nothing.
            exited(1, 99);
            assert_eq!(current(), "");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn buffers_are_reused() {
        std::thread::spawn(|| {
            entered(1, 1, |o| o.extend_from_slice(&[b'x'; 100]));
            exited(1, 1);
            let before = STACK.with(|s| s.borrow().entries[0].rendered.as_ptr());
            entered(1, 2, |o| o.extend_from_slice(&[b'y'; 50]));
            let after = STACK.with(|s| s.borrow().entries[0].rendered.as_ptr());
            assert_eq!(before, after);
            assert_eq!(current(), "y".repeat(50));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_span_entered_again_keeps_its_rendering_until_something_changed() {
        std::thread::spawn(|| {
            // Other tests in this process record fields meanwhile: a hit
            // needs no change between leaving and entering again.
            let hit = (0..1_000).any(|i| {
                entered(1, 7, |o| o.extend_from_slice(b"first"));
                exited(1, 7);
                entered(1, 7, |o| {
                    o.extend_from_slice(format!("again {i}").as_bytes())
                });
                let kept = current() == "first";
                exited(1, 7);
                kept
            });
            assert!(hit, "never reused a rendering");
            entered(1, 7, |o| o.extend_from_slice(b"first"));
            exited(1, 7);
            changed();
            entered(1, 7, |o| o.extend_from_slice(b"after a change"));
            assert_eq!(current(), "after a change");
            // Another span at the same depth is rendered, of course.
            exited(1, 7);
            entered(1, 8, |o| o.extend_from_slice(b"eight"));
            assert_eq!(current(), "eight");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_thread_busy_with_its_own_stack_lists_no_spans_and_does_not_wait() {
        std::thread::spawn(|| {
            entered(1, 1, |o| o.extend_from_slice(b"outer"));
            // What the hook sees if a panic interrupts a render.
            entered(1, 2, |_| assert_eq!(current(), ""));
            assert!(in_any());
        })
        .join()
        .unwrap();
    }
}
