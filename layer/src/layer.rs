//! The `tracing` layer that turns events into records.
//!
//! [`LastwordsLayer`] is an ordinary [`Layer`]: put it in any subscriber stack
//! next to `fmt::layer()`, an `EnvFilter` or an OpenTelemetry layer. Events
//! that reach it become one JSON line each in the lastwords file, with the
//! event's fields flattened and its spans listed as `tracing-subscriber`'s
//! JSON formatter does.

use std::fmt;

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::clock::Timestamp;
use crate::json;
use crate::record::{self, Fields};
use crate::sink::Sink;

/// Prefix of the metadata name of events emitted by lastwords' own macros;
/// the rest is the record's `kind` (`lastwords::fn_exit`).
pub const KIND_PREFIX: &str = "lastwords::";

/// The lastwords `tracing` layer: writes every event it sees as one durable
/// JSON line and mirrors the important ones to stderr.
///
/// Build it with [`Builder::layer`](crate::Builder::layer), or let
/// [`Builder::install`](crate::Builder::install) set up the whole stack.
#[derive(Clone, Debug)]
pub struct LastwordsLayer {
    sink: &'static Sink,
    mirror_level: Option<Level>,
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink")
            .field("path", &self.path())
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

impl LastwordsLayer {
    pub(crate) fn new(sink: &'static Sink, mirror_level: Option<Level>) -> LastwordsLayer {
        LastwordsLayer { sink, mirror_level }
    }

    fn mirrors(&self, kind: &str, level: Level) -> bool {
        if !self.sink.mirror.enabled() {
            return false;
        }
        let important = match kind {
            "fn_exit" => level <= Level::WARN,
            "event" | "breadcrumb" => false,
            _ => true,
        };
        important || self.mirror_level.is_some_and(|min| level <= min)
    }
}

/// The fields of a span, already in JSON (`,"k":v…`), kept in the span's
/// extensions.
struct SpanJson(Vec<u8>);

impl<S> Layer<S> for LastwordsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut out = Vec::new();
        attrs.record(&mut FieldVisitor::new(&mut out, self.sink.max_record / 4, false));
        span.extensions_mut().insert(SpanJson(out));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(SpanJson(out)) = ext.get_mut::<SpanJson>() {
            values.record(&mut FieldVisitor::new(out, self.sink.max_record / 4, false));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let kind = meta.name().strip_prefix(KIND_PREFIX).unwrap_or("event");
        let ours = kind != "event";
        let sink = self.sink;
        record::with_bufs(|bufs| {
            let level = *meta.level();
            record::head(bufs, sink, Timestamp::now(), level, meta.target(), kind, |out, budget| {
                let limit = out.len() + budget;
                let mut message = MessageVisitor { out, limit, found: false };
                event.record(&mut message);
                if !message.found {
                    message.out.extend_from_slice(b"\"\"");
                }
            });
            let mut visitor = FieldVisitor {
                fields: Fields::new(bufs, sink),
                skip_kind: ours,
            };
            event.record(&mut visitor);
            let out = visitor.fields.out;
            if let Some(scope) = ctx.event_scope(event) {
                let mut spans = scope.from_root().peekable();
                let mut list = Vec::new();
                while let Some(span) = spans.next() {
                    if !list.is_empty() {
                        list.push(b',');
                    }
                    write_span(&mut list, span.name(), &span.extensions());
                    if spans.peek().is_none() {
                        out.extend_from_slice(b",\"span\":");
                        write_span(out, span.name(), &span.extensions());
                    }
                }
                if !list.is_empty() {
                    out.extend_from_slice(b",\"spans\":[");
                    out.extend_from_slice(&list);
                    out.push(b']');
                }
            }
            out.extend_from_slice(b"}\n");
            sink.commit(&bufs.head, &bufs.tail);
            if self.mirrors(kind, *meta.level()) {
                sink.mirror.line(&human_line(event, kind));
            }
        });
    }
}

fn write_span(out: &mut Vec<u8>, name: &str, ext: &tracing_subscriber::registry::Extensions<'_>) {
    out.extend_from_slice(b"{\"name\":");
    json::string(out, name);
    if let Some(SpanJson(fields)) = ext.get::<SpanJson>() {
        out.extend_from_slice(fields);
    }
    out.push(b'}');
}

/// The stderr line for a mirrored event:
/// `[lastwords] LEVEL kind target: message k=v …`.
fn human_line(event: &Event<'_>, kind: &str) -> Vec<u8> {
    struct Human(String, String);
    impl Visit for Human {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            use fmt::Write;
            // Writing to a String cannot fail.
            let _ = match field.name() {
                "message" => write!(self.0, "{value:?}"),
                "kind" => Ok(()),
                name => write!(self.1, " {name}={value:?}"),
            };
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            match field.name() {
                "message" => self.0.push_str(value),
                "kind" => {}
                name => {
                    self.1.push(' ');
                    self.1.push_str(name);
                    self.1.push('=');
                    self.1.push_str(value);
                }
            }
        }
    }
    let meta = event.metadata();
    let mut human = Human(String::new(), String::new());
    event.record(&mut human);
    let mut line = format!(
        "[lastwords] {} {} {}: {}{}",
        record::level_name(*meta.level()),
        kind,
        meta.target(),
        human.0,
        human.1
    );
    // One record, one line: embedded newlines would split it.
    line = line.replace('\n', "\\n");
    line.push('\n');
    line.into_bytes()
}

/// Writes the `message` field as a JSON string into the record's head.
struct MessageVisitor<'a> {
    out: &'a mut Vec<u8>,
    limit: usize,
    found: bool,
}

impl Visit for MessageVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" && !self.found {
            self.found = true;
            json::display_string(self.out, &value, self.limit);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" && !self.found {
            self.found = true;
            json::debug_string(self.out, value, self.limit);
        }
    }
}

/// Writes an event's or span's fields (all but `message`) as JSON members.
struct FieldVisitor<'a> {
    fields: Fields<'a>,
    /// Events of lastwords' macros carry their kind as a field too (for other
    /// layers); it is already in the record's head.
    skip_kind: bool,
}

impl<'a> FieldVisitor<'a> {
    fn new(out: &'a mut Vec<u8>, limit: usize, skip_kind: bool) -> Self {
        let limit = out.len() + limit;
        FieldVisitor {
            fields: Fields { out, limit },
            skip_kind,
        }
    }

    fn skip(&self, field: &Field) -> bool {
        let name = field.name();
        name == "message" || (self.skip_kind && name == "kind")
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if !self.skip(field) {
            self.fields.key(field.name());
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
        if !self.skip(field) {
            self.fields.key(field.name());
            json::error_string(self.fields.out, value, self.fields.limit);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.skip(field) {
            self.fields.debug(field.name(), value);
        }
    }
}
