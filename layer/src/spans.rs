//! Span field storage: each span's fields, formatted once, and the `span`
//! and `spans` members of the records written inside it.
//!
//! A span's fields are formatted into JSON members when the span is created
//! or recorded, and kept in the span's extensions as a [`SpanJson`]; every
//! record inside the span then copies the bytes instead of formatting the
//! values again.

use tracing_core::span::Id;
use tracing_core::Subscriber;
use tracing_subscriber::registry::{LookupSpan, Registry, SpanRef};

use crate::json;

/// The fields of a span, already in JSON (`,"k":v…`), kept in the span's
/// extensions.
pub(crate) struct SpanJson(pub(crate) Vec<u8>);

/// Writes `,"span":{…},"spans":[…]` for `current` and its parents: `span`
/// is the innermost span, `spans` all of them from the root, as
/// tracing-subscriber's JSON formatter writes them.
pub(crate) fn write_event_spans<'a, R: LookupSpan<'a>>(
    out: &mut Vec<u8>,
    current: &SpanRef<'a, R>,
) {
    out.extend_from_slice(b",\"span\":");
    write_span(out, current.name(), &current.extensions());
    out.extend_from_slice(b",\"spans\":[");
    for (i, span) in current.scope().from_root().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_span(out, span.name(), &span.extensions());
    }
    out.push(b']');
}

/// How long the panic hook waits for the spans to be read (see
/// [`write_current_spans`]).
pub(crate) const SPANS_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Writes `,"span":{…},"spans":[…]` for the calling thread's current span
/// into a record that is not a `tracing` event (the `panic` record), the
/// same members [`LastwordsLayer::on_event`] writes for an event logged at
/// this point; writes nothing when there is no current span.
///
/// The spans come from the thread's default dispatcher, global or scoped,
/// when it is (or wraps, through [`Layered`]) a [`Registry`]: the stack
/// `install()` builds, or any stack a user builds on `registry()`. Only
/// spans this layer saw (they carry a [`SpanJson`]) are listed, so spans
/// that a per-layer filter hides from the lastwords layer are left out
/// here too, as `Context::event_span` leaves them out for events. Any other
/// subscriber, or a span already closed, simply gives no span members.
///
/// Does not panic (a panic inside the panic hook aborts the process): the
/// registry's lookups return `Option`s. Reading a span's fields takes its
/// extensions lock, which another layer may hold on this very thread: the
/// `fmt` layer formats span fields while holding it, so a `Debug` impl
/// panicking inside `Span::record` lands here with the lock taken, and a
/// read from this thread would wait forever. So the current span is found
/// here (the span stack is per thread), and its fields are read by a
/// short-lived thread, waited for at most [`SPANS_WAIT`]; if it cannot
/// finish (or cannot be started) the record goes without spans.
///
/// [`Layered`]: tracing_subscriber::layer::Layered
pub(crate) fn write_current_spans(out: &mut Vec<u8>) {
    let Some((dispatch, leaf)) = tracing_core::dispatcher::get_default(|dispatch| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let leaf = registry.current_span().id()?.clone();
        Some((dispatch.clone(), leaf))
    }) else {
        return;
    };
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let reader = std::thread::Builder::new()
        .name("lastwords-panic-spans".into())
        .spawn(move || {
            let mut spans = Vec::new();
            if let Some(registry) = dispatch.downcast_ref::<Registry>() {
                write_spans_of(registry, &leaf, &mut spans);
            }
            // Ignored: the panic hook stopped waiting.
            let _ = tx.send(spans);
        });
    if reader.is_ok() {
        if let Ok(spans) = rx.recv_timeout(SPANS_WAIT) {
            out.extend_from_slice(&spans);
        }
    }
}

/// The `span` and `spans` members for the span `leaf` and its parents.
fn write_spans_of(registry: &Registry, leaf: &Id, out: &mut Vec<u8>) {
    let Some(leaf) = registry.span(leaf) else {
        return;
    };
    // Innermost first, as `scope()` walks.
    let ours: Vec<_> = leaf
        .scope()
        .filter(|span| span.extensions().get::<SpanJson>().is_some())
        .collect();
    let Some(innermost) = ours.first() else {
        return;
    };
    out.extend_from_slice(b",\"span\":");
    write_span(out, innermost.name(), &innermost.extensions());
    out.extend_from_slice(b",\"spans\":[");
    for (i, span) in ours.iter().rev().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_span(out, span.name(), &span.extensions());
    }
    out.push(b']');
}

fn write_span(out: &mut Vec<u8>, name: &str, ext: &tracing_subscriber::registry::Extensions<'_>) {
    out.extend_from_slice(b"{\"name\":");
    json::string(out, name);
    if let Some(SpanJson(fields)) = ext.get::<SpanJson>() {
        out.extend_from_slice(fields);
    }
    out.push(b'}');
}
