//! Span field storage: each span's fields, formatted once, and the `span`
//! and `spans` members of the records written inside it.
//!
//! A span's fields are formatted into JSON members when the span is created
//! or recorded, and kept in the span's extensions as a [`SpanJson`]; every
//! record inside the span then copies the bytes instead of formatting the
//! values again.

use tracing_subscriber::registry::{LookupSpan, SpanRef};

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

fn write_span(out: &mut Vec<u8>, name: &str, ext: &tracing_subscriber::registry::Extensions<'_>) {
    out.extend_from_slice(b"{\"name\":");
    json::string(out, name);
    if let Some(SpanJson(fields)) = ext.get::<SpanJson>() {
        out.extend_from_slice(fields);
    }
    out.push(b'}');
}
