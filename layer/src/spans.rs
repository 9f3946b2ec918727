//! Span field storage: each span's fields, formatted once, and the `span`
//! and `spans` members of the records written inside it.
//!
//! A span's fields are formatted into JSON members when the span is created
//! or recorded, and kept in the span's extensions as a [`SpanJson`]; every
//! record inside the span then copies the bytes instead of formatting the
//! values again.

use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::fields::SpanValues;
use crate::json;
use crate::record::{Fields, Reserved, Written};

/// The fields of a span, already in JSON, kept in the span's extensions.
///
/// Recording a field the span already has replaces its value, as
/// tracing-subscriber's formatters show a span's latest values; a field
/// recorded for the first time is added after the others. Keys follow
/// [`Fields`]' rule with `name` reserved for the span's name, so a span
/// object never has a key twice either.
#[derive(Default)]
pub(crate) struct SpanJson {
    /// The members, `,"k":v…`, in the order their fields were first
    /// recorded.
    json: Vec<u8>,
    /// Each member's field (its index in the callsite's field set), and
    /// where its key and its value begin in `json`; a member ends where the
    /// next one begins.
    members: Vec<Member>,
}

struct Member {
    field: usize,
    key: usize,
    value: usize,
}

impl SpanJson {
    /// The span's members, `,"k":v…`.
    pub(crate) fn members(&self) -> &[u8] {
        &self.json
    }

    /// Each member's key and value bytes, first to last.
    fn each_member(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.members.iter().enumerate().map(|(i, m)| {
            let end = self.members.get(i + 1).map_or(self.json.len(), |n| n.key);
            (&self.json[m.key..m.value], &self.json[m.value..end])
        })
    }

    /// Takes in newly recorded values: replaces those of fields the span
    /// has, adds the others.
    pub(crate) fn record(&mut self, new: &SpanValues) {
        for (field, name, range) in &new.values {
            let value = &new.bytes[range.clone()];
            match self.members.iter().position(|m| m.field == *field) {
                Some(i) => {
                    let start = self.members[i].value;
                    let end = self.members.get(i + 1).map_or(self.json.len(), |m| m.key);
                    self.json.splice(start..end, value.iter().copied());
                    let (grew, shrank) = (
                        value.len().saturating_sub(end - start),
                        (end - start).saturating_sub(value.len()),
                    );
                    for m in &mut self.members[i + 1..] {
                        m.key = m.key + grew - shrank;
                        m.value = m.value + grew - shrank;
                    }
                }
                None => {
                    let mut written = Written::default();
                    for m in &self.members {
                        written.insert(&self.json, m.key, m.value);
                    }
                    let key = self.json.len();
                    let mut fields = Fields {
                        out: &mut self.json,
                        limit: usize::MAX / 2,
                        keys: None,
                        written: &mut written,
                        reserved: Reserved::Span,
                        dropped: 0,
                        value_start: 0,
                    };
                    fields.key(name);
                    let at = self.json.len();
                    self.json.extend_from_slice(value);
                    self.members.push(Member {
                        field: *field,
                        key,
                        value: at,
                    });
                }
            }
        }
    }
}

/// Writes `,"span":{…},"spans":[…]` for `current` and its parents: `span`
/// is the innermost span, `spans` all of them from the root, as
/// tracing-subscriber's JSON formatter writes them.
///
/// The members take at most `room` bytes. When they would take more, each
/// span object gets an equal share of the room and keeps the fields that
/// fit in it, first to last; when not even the spans' names fit, there are
/// no span members.
pub(crate) fn write_event_spans<'a, R: LookupSpan<'a>>(
    out: &mut Vec<u8>,
    current: &SpanRef<'a, R>,
    room: usize,
) {
    let start = out.len();
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
    if out.len() - start > room {
        out.truncate(start);
        write_event_spans_within(out, current, room);
        if out.len() - start > room {
            out.truncate(start);
        }
    }
}

/// [`write_event_spans`] when the spans do not fit whole.
#[cold]
fn write_event_spans_within<'a, R: LookupSpan<'a>>(
    out: &mut Vec<u8>,
    current: &SpanRef<'a, R>,
    room: usize,
) {
    let scope: Vec<_> = current.scope().from_root().collect();
    // `,"span":` `,"spans":[` `]` and a comma between spans.
    let fixed = 20 + scope.len();
    let share = room.saturating_sub(fixed) / (scope.len() + 1);
    out.extend_from_slice(b",\"span\":");
    write_span_within(out, current.name(), &current.extensions(), share);
    out.extend_from_slice(b",\"spans\":[");
    for (i, span) in scope.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_span_within(out, span.name(), &span.extensions(), share);
    }
    out.push(b']');
}

/// A span's object in `share` bytes: its name, then its members first to
/// last, each whole if it fits, else with its string value cut so that the
/// members after it keep their room (at least a short stub of it, if that
/// fits), else left out.
fn write_span_within(
    out: &mut Vec<u8>,
    name: &str,
    ext: &tracing_subscriber::registry::Extensions<'_>,
    share: usize,
) {
    /// A cut value's least room past its key: the marker and a few bytes.
    const STUB: usize = 64;
    let start = out.len();
    // Room for the closing brace.
    let limit = start + share.saturating_sub(1);
    out.extend_from_slice(b"{\"name\":");
    json::string(out, name);
    if let Some(span) = ext.get::<SpanJson>() {
        let members: Vec<_> = span.each_member().collect();
        let mut rest: usize = members.iter().map(|(k, v)| k.len() + v.len()).sum();
        for (key, value) in members {
            rest -= key.len() + value.len();
            let at = out.len();
            if at + key.len() + value.len() <= limit {
                out.extend_from_slice(key);
                out.extend_from_slice(value);
                continue;
            }
            let cut = limit
                .saturating_sub(rest)
                .max(at + key.len() + STUB)
                .min(limit);
            out.extend_from_slice(key);
            if !json::recut_string(out, value, cut) {
                out.truncate(at);
            }
        }
    }
    out.push(b'}');
}

fn write_span(out: &mut Vec<u8>, name: &str, ext: &tracing_subscriber::registry::Extensions<'_>) {
    out.extend_from_slice(b"{\"name\":");
    json::string(out, name);
    if let Some(span) = ext.get::<SpanJson>() {
        out.extend_from_slice(span.members());
    }
    out.push(b'}');
}
