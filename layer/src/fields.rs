//! The field visitors: how an event's or a span's values become JSON.
//!
//! `tracing` hands a record's values to a [`Visit`] one by one. The event
//! path tries to walk them once ([`OnePass`]): the message, which the
//! `tracing` macros put first, completes the record's head, and every later
//! value goes straight to the tail as a field ([`FieldVisitor`]). Events
//! whose message is not first take two walks, the message
//! ([`MessageVisitor`]) and then the fields; both paths write the same bytes.

use std::fmt;
use std::ops::Range;

use tracing_core::field::{Field, Visit};
use tracing_core::Level;

use crate::clock::Timestamp;
use crate::json;
use crate::record::{self, Fields, Reserved, Written};
use crate::sink::Sink;

/// Where [`OnePass`] stands.
pub(crate) enum Pass<'a> {
    /// No value seen yet.
    Start(&'a mut record::Bufs),
    /// The first value was the message: the head is written, the fields go
    /// to the tail.
    Fields(FieldVisitor<'a>),
    /// The first value was not the message: the two-pass path takes over.
    Bail,
}

/// Visits an event's values once when its first value is the message: the
/// message completes the record's head (whose length sets the fields' size
/// cap), then every other value is a field. Saves the second walk over the
/// values, about a dozen dynamic calls per `fn_exit` record.
pub(crate) struct OnePass<'a, 'e> {
    pub(crate) state: Pass<'a>,
    /// What `record::head` needs besides the message.
    pub(crate) head: (
        &'static Sink,
        Timestamp,
        Level,
        &'static tracing_core::Metadata<'static>,
        &'e str,
    ),
    pub(crate) skip_kind: bool,
}

impl<'a> OnePass<'a, '_> {
    /// Hands the value to the message writer if it is the first one and the
    /// message, else to the fields writer once the head is written.
    #[inline]
    fn visit(
        &mut self,
        field: &Field,
        message: impl FnOnce(&mut MessageVisitor<'_>),
        fields: impl FnOnce(&mut FieldVisitor<'a>),
    ) {
        match &mut self.state {
            Pass::Fields(visitor) => fields(visitor),
            Pass::Bail => {}
            Pass::Start(_) => self.start(field, message),
        }
    }

    /// The first value: writes the head if it is the message, else gives
    /// up. Kept out of [`OnePass::visit`] so that the path every other
    /// value takes is a jump to the fields writer, without this path's
    /// stack frame and register saves.
    #[inline(never)]
    fn start(&mut self, field: &Field, message: impl FnOnce(&mut MessageVisitor<'_>)) {
        let Pass::Start(bufs) = std::mem::replace(&mut self.state, Pass::Bail) else {
            return;
        };
        if field.name() != "message" {
            return;
        }
        let (sink, at, level, meta, kind) = self.head;
        let site = Some((meta, sink));
        let target = meta.target();
        record::head(bufs, sink, at, level, target, kind, site, |out, budget| {
            let limit = out.len() + budget;
            message(&mut MessageVisitor {
                out,
                limit,
                found: false,
            });
        });
        self.state = Pass::Fields(FieldVisitor {
            fields: Fields::new(bufs, sink),
            skip_kind: self.skip_kind,
        });
    }
}

impl Visit for OnePass<'_, '_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.visit(
            field,
            |m| m.record_f64(field, value),
            |f| f.record_f64(field, value),
        );
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.visit(
            field,
            |m| m.record_i64(field, value),
            |f| f.record_i64(field, value),
        );
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.visit(
            field,
            |m| m.record_u64(field, value),
            |f| f.record_u64(field, value),
        );
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.visit(
            field,
            |m| m.record_i128(field, value),
            |f| f.record_i128(field, value),
        );
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.visit(
            field,
            |m| m.record_u128(field, value),
            |f| f.record_u128(field, value),
        );
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.visit(
            field,
            |m| m.record_bool(field, value),
            |f| f.record_bool(field, value),
        );
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.visit(
            field,
            |m| m.record_str(field, value),
            |f| f.record_str(field, value),
        );
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.visit(
            field,
            |m| m.record_error(field, value),
            |f| f.record_error(field, value),
        );
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.visit(
            field,
            |m| m.record_debug(field, value),
            |f| f.record_debug(field, value),
        );
    }
}

/// Writes the `message` field as a JSON string into the record's head.
pub(crate) struct MessageVisitor<'a> {
    pub(crate) out: &'a mut Vec<u8>,
    pub(crate) limit: usize,
    pub(crate) found: bool,
}

impl Visit for MessageVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" && !self.found {
            self.found = true;
            // `fn_exit` messages arrive as `&str`. When even the worst-case
            // escaping (6 bytes per byte) fits, nothing can be cut, and the
            // plain string writer gives the same bytes as the cutting one
            // without a trip through `fmt`.
            if self.out.len() + 1 + value.len() * 6 <= self.limit {
                json::string(self.out, value);
            } else {
                json::display_string(self.out, &value, self.limit);
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" && !self.found {
            self.found = true;
            json::debug_string(self.out, value, self.limit);
        }
    }
}

/// Writes an event's fields (all but `message`) or a span's fields as JSON
/// members.
pub(crate) struct FieldVisitor<'a> {
    pub(crate) fields: Fields<'a>,
    /// Events of lastwords' macros carry their kind as a field too (for other
    /// layers); it is already in the record's head.
    pub(crate) skip_kind: bool,
}

impl FieldVisitor<'_> {
    fn skip(&self, field: &Field) -> bool {
        let name = field.name();
        // An event's message is in the head; a span's is one of its fields.
        (name == "message" && self.fields.reserved == Reserved::Record)
            || (self.skip_kind && name == "kind")
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if !self.skip(field) && self.fields.key(field.name()) {
            json::float(self.fields.out, value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if !self.skip(field) {
            self.fields.int(field.name(), value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if !self.skip(field) {
            self.fields.int(field.name(), value);
        }
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        if !self.skip(field) {
            self.fields.int(field.name(), value);
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        if !self.skip(field) {
            self.fields.int(field.name(), value);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if !self.skip(field) {
            self.fields.bool(field.name(), value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.skip(field) {
            self.fields.str(field.name(), value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if !self.skip(field) && self.fields.key(field.name()) {
            json::error_string(self.fields.out, value, self.fields.limit);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.skip(field) {
            self.fields.debug(field.name(), value);
        }
    }
}

/// The values of one `new_span` or `record` call, formatted: the span's
/// storage ([`SpanJson`](crate::spans::SpanJson)) takes them in under the
/// span's lock, after the user's `Debug` impls have run.
pub(crate) struct SpanValues {
    /// The values' JSON, with keys in between (not used).
    pub(crate) bytes: Vec<u8>,
    /// Each value: its field's index in the callsite's field set, its name
    /// and its JSON in `bytes`.
    pub(crate) values: Vec<(usize, &'static str, Range<usize>)>,
}

impl SpanValues {
    /// Formats the values `record` visits, all of them together cut at
    /// `limit` bytes.
    pub(crate) fn format(record: impl FnOnce(&mut dyn Visit), limit: usize) -> SpanValues {
        let mut bytes = Vec::new();
        let mut written = Written::default();
        let mut values = Vec::new();
        let mut visitor = SpanVisitor {
            inner: FieldVisitor {
                fields: Fields {
                    out: &mut bytes,
                    limit,
                    keys: None,
                    written: &mut written,
                    reserved: Reserved::Span,
                    dropped: 0,
                    value_start: 0,
                },
                skip_kind: false,
            },
            values: &mut values,
        };
        record(&mut visitor);
        SpanValues { bytes, values }
    }
}

/// A [`FieldVisitor`] that also notes where each value went.
struct SpanVisitor<'a, 'v> {
    inner: FieldVisitor<'a>,
    values: &'v mut Vec<(usize, &'static str, Range<usize>)>,
}

impl SpanVisitor<'_, '_> {
    fn visit(&mut self, field: &Field, write: impl FnOnce(&mut FieldVisitor<'_>)) {
        let before = self.inner.fields.out.len();
        write(&mut self.inner);
        let end = self.inner.fields.out.len();
        if end > before {
            let value = self.inner.fields.value_start..end;
            self.values.push((field.index(), field.name(), value));
        }
    }
}

impl Visit for SpanVisitor<'_, '_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.visit(field, |v| v.record_f64(field, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.visit(field, |v| v.record_i64(field, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.visit(field, |v| v.record_u64(field, value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.visit(field, |v| v.record_i128(field, value));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.visit(field, |v| v.record_u128(field, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.visit(field, |v| v.record_bool(field, value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.visit(field, |v| v.record_str(field, value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.visit(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.visit(field, |v| v.record_debug(field, value));
    }
}
