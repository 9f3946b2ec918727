//! The `tracing` layer that turns events into records.
//!
//! [`LastwordsLayer`] is an ordinary [`Layer`]: put it in any subscriber stack
//! next to `fmt::layer()`, an `EnvFilter` or an OpenTelemetry layer. Events
//! that reach it become one JSON line each in the lastwords file, with the
//! event's fields flattened and its spans listed as `tracing-subscriber`'s
//! JSON formatter does.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, Registry};

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
            .field("run_id", &self.run_id())
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

/// Whether any lastwords layer has been told of a new span. Until one has,
/// no event can have a span to list: `Context::event_span` only returns
/// spans enabled for this layer (its per-layer filter, if any, included),
/// and every such span went through `on_new_span` first. Lets events
/// skip the registry's current-span lookup in programs that use no spans.
static SPANS_SEEN: AtomicBool = AtomicBool::new(false);

/// The fields of a span, already in JSON (`,"k":v…`), kept in the span's
/// extensions.
struct SpanJson(Vec<u8>);

impl<S> Layer<S> for LastwordsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        // Before any event can see the span (Relaxed is enough: an event on
        // another thread can only be in the span after the span's creation
        // reached it through the registry's own synchronization).
        if !SPANS_SEEN.load(Ordering::Relaxed) {
            SPANS_SEEN.store(true, Ordering::Relaxed);
        }
        let Some(span) = ctx.span(id) else { return };
        let mut out = Vec::new();
        attrs.record(&mut FieldVisitor::new(
            &mut out,
            self.sink.max_record / 4,
            false,
        ));
        span.extensions_mut().insert(SpanJson(out));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // Formatted before the extensions are locked: a `Debug` impl that
        // panics here must not leave this span's extensions write-locked (or
        // poisoned) for the panic hook, which reads them on this thread.
        // The cap is relative to the start of the new fields, so the bytes
        // are the same as if they were formatted in place.
        let mut more = Vec::new();
        values.record(&mut FieldVisitor::new(
            &mut more,
            self.sink.max_record / 4,
            false,
        ));
        let mut ext = span.extensions_mut();
        if let Some(SpanJson(out)) = ext.get_mut::<SpanJson>() {
            out.extend_from_slice(&more);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let kind = meta.name().strip_prefix(KIND_PREFIX).unwrap_or("event");
        let ours = kind != "event";
        let sink = self.sink;
        record::with_bufs(|bufs| {
            let level = *meta.level();
            let at = Timestamp::now();
            let target = meta.target();
            // One pass over the values when the message comes first (as the
            // `tracing` macros and `#[exit_path]` put it); two passes, the
            // message then the fields, for any other event. Both write the
            // same bytes.
            let mut one = OnePass {
                state: Pass::Start(bufs),
                head: (sink, at, level, meta, kind),
                skip_kind: ours,
            };
            event.record(&mut one);
            if !matches!(one.state, Pass::Fields(_)) {
                bufs.reset();
                let site = Some((meta, sink));
                record::head(bufs, sink, at, level, target, kind, site, |out, budget| {
                    let limit = out.len() + budget;
                    let mut message = MessageVisitor {
                        out,
                        limit,
                        found: false,
                    };
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
            }
            let out = &mut bufs.tail;
            // `span` is the innermost span, `spans` all of them from the root,
            // as tracing-subscriber's JSON formatter writes them.
            let current = if SPANS_SEEN.load(Ordering::Relaxed) {
                ctx.event_span(event)
            } else {
                None
            };
            if let Some(current) = current {
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
            out.extend_from_slice(b"}\n");
            sink.commit_vec(&mut bufs.head, &bufs.tail);
            if self.mirrors(kind, *meta.level()) {
                sink.mirror
                    .line(&crate::mirror::human_line(event, kind, ours));
            }
        });
    }
}

/// How long the panic hook waits for the spans to be read (see
/// [`write_current_spans`]).
const SPANS_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

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

/// Where [`OnePass`] stands.
enum Pass<'a> {
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
struct OnePass<'a, 'e> {
    state: Pass<'a>,
    /// What `record::head` needs besides the message.
    head: (
        &'static Sink,
        Timestamp,
        Level,
        &'static tracing_core::Metadata<'static>,
        &'e str,
    ),
    skip_kind: bool,
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
struct MessageVisitor<'a> {
    out: &'a mut Vec<u8>,
    limit: usize,
    found: bool,
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
            fields: Fields {
                out,
                limit,
                keys: None,
            },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::Mirror;
    use serde_json::Value;
    use std::path::PathBuf;
    use tracing_subscriber::prelude::*;

    /// A layer writing to a fresh file of its own (not the process-wide
    /// sink), and the path of that file.
    fn layer(name: &str, max_record: usize) -> (LastwordsLayer, PathBuf) {
        let dir = std::env::temp_dir().join(format!("lastwords-layer-{}", std::process::id()));
        let path = dir.join(format!("{name}.jsonl"));
        let _ = std::fs::remove_file(&path); // a leftover from an earlier run
        let (sink, _) = Sink::open(&path, 0o600, max_record, Mirror::new(false)).unwrap();
        (LastwordsLayer::new(Box::leak(Box::new(sink)), None), path)
    }

    fn lines(path: &PathBuf) -> Vec<serde_json::Map<String, Value>> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|line| match serde_json::from_str(line) {
                Ok(Value::Object(map)) => map,
                other => panic!("not a JSON object: {line:?}: {other:?}"),
            })
            .collect()
    }

    use crate::test_support::{Rng, Wrapped};

    trait RandomString {
        fn string(&mut self) -> String;
    }

    impl RandomString for Rng {
        fn string(&mut self) -> String {
            const PIECES: &[&str] = &[
                "a", "Z", " ", "\"", "\\", "/", "\n", "\r", "\t", "\u{0}", "\u{1f}", "\u{7f}", "é",
                "漢", "🦀", "\u{2028}", "\u{feff}", "{", "}", ",", ":", "null",
            ];
            let len = self.next() % 40;
            (0..len)
                .map(|_| PIECES[(self.next() % PIECES.len() as u64) as usize])
                .collect()
        }
    }

    #[test]
    fn every_value_round_trips_through_the_json_line() {
        let (layer, path) = layer("values", 64 * 1024);
        let subscriber = tracing_subscriber::registry().with(layer);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut expected = Vec::new();
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..2_000 {
                let s = rng.string();
                let i = rng.next() as i64;
                let u = rng.next();
                let wide = (i128::from(rng.next() as i64) << 64) | i128::from(rng.next());
                let uwide = u128::MAX - u128::from(rng.next());
                let f = f64::from_bits(rng.next());
                let b = rng.next() % 2 == 0;
                let dbg = vec![rng.string()];
                tracing::info!(s = s.as_str(), i, u, wide, uwide, f, b, dbg = ?dbg, "{}", s);
                expected.push((s, i, u, wide, uwide, f, b, format!("{dbg:?}")));
            }
        });
        let records = lines(&path);
        let raw = std::fs::read_to_string(&path).unwrap();
        assert_eq!(records.len(), expected.len());
        for ((rec, line), (s, i, u, wide, uwide, f, b, dbg)) in
            records.iter().zip(raw.lines()).zip(&expected)
        {
            assert_eq!(rec["message"], Value::from(s.as_str()));
            assert_eq!(rec["s"], Value::from(s.as_str()));
            assert_eq!(rec["i"], Value::from(*i));
            assert_eq!(rec["u"], Value::from(*u));
            // serde_json without arbitrary_precision cannot hold 128-bit
            // integers; check the digits instead.
            let line_has = |n: String| assert!(line.contains(&n), "{n} missing from {line}");
            line_has(format!("\"wide\":{wide}"));
            line_has(format!("\"uwide\":{uwide}"));
            match rec["f"].as_f64() {
                Some(got) => assert_eq!(got, *f),
                None => {
                    let want = if f.is_nan() {
                        "NaN"
                    } else if *f > 0.0 {
                        "inf"
                    } else {
                        "-inf"
                    };
                    assert_eq!(rec["f"], Value::from(want));
                }
            }
            assert_eq!(rec["b"], Value::from(*b));
            assert_eq!(rec["dbg"], Value::from(dbg.as_str()));
        }
    }

    #[test]
    fn keys_follow_the_schema_order_and_never_repeat() {
        let (layer, path) = layer("schema", 64 * 1024);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("outer", conn = 7);
            let _outer = span.enter();
            let inner = tracing::info_span!("inner", step = "parse");
            let _inner = inner.enter();
            tracing::warn!(pid = 1, seq = "x", kind = "mine", user = 3, "collides");
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let rec: serde_json::Map<String, Value> = serde_json::from_str(text.trim_end()).unwrap();
        let keys: Vec<&str> = rec.keys().map(String::as_str).collect();
        // serde_json's Map keeps keys sorted, so check order on the raw text.
        let order = [
            "\"timestamp\"",
            "\"level\"",
            "\"message\"",
            "\"target\"",
            "\"kind\"",
            "\"pid\"",
            "\"run_id\"",
            "\"seq\"",
            "\"thread\"",
            "\"thread_id\"",
            "\"field.pid\"",
            "\"field.seq\"",
            "\"field.kind\"",
            "\"user\"",
            "\"span\"",
            "\"spans\"",
        ];
        let positions: Vec<usize> = order.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(keys.len(), order.len(), "{text}");
        assert_eq!(rec["kind"], "event");
        assert_eq!(rec["level"], "WARN");
        assert_eq!(rec["field.kind"], "mine");
        assert_eq!(
            rec["span"],
            serde_json::json!({"name": "inner", "step": "parse"})
        );
        assert_eq!(
            rec["spans"],
            serde_json::json!([{"name": "outer", "conn": 7}, {"name": "inner", "step": "parse"}])
        );
        let ts = rec["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), 27, "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
    }

    #[test]
    fn cached_site_pieces_follow_the_callsite_and_the_sink() {
        // More callsites than the per-thread cache has entries, each logged
        // to two sinks (two run ids) in turn, three times over: every line
        // must carry its own callsite's target and kind and its own sink's
        // run id.
        let (a, path_a) = layer("sites-a", 64 * 1024);
        let (b, path_b) = layer("sites-b", 64 * 1024);
        let run_ids = [a.sink.run_id().to_owned(), b.sink.run_id().to_owned()];
        assert_ne!(run_ids[0], run_ids[1]);
        let subscriber = tracing_subscriber::registry().with(a).with(b);
        macro_rules! sites {
            ($($target:literal)*) => {{
                $(tracing::info!(target: $target, n = 1, "m");)*
                vec![$($target),*]
            }};
        }
        let mut expected = Vec::new();
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..3 {
                let targets = sites!(
                    "t00" "t01" "t02" "t03" "t04" "t05" "t06" "t07" "t08" "t09"
                    "t10" "t11" "t12" "t13" "t14" "t15" "t16" "t17" "t18" "t19"
                    "a::long::module::path::that::is::longer::than::most"
                );
                expected.extend(targets.into_iter().map(|t| (t, "event")));
                tracing::event!(name: "lastwords::custom", tracing::Level::INFO, "m");
                expected.push((module_path!(), "custom"));
            }
        });
        for (path, run_id) in [&path_a, &path_b].into_iter().zip(&run_ids) {
            let recs = lines(path);
            assert_eq!(recs.len(), expected.len());
            for (rec, (target, kind)) in recs.iter().zip(&expected) {
                assert_eq!(rec["target"], *target, "{rec:?}");
                assert_eq!(rec["kind"], *kind, "{rec:?}");
                assert_eq!(rec["run_id"], *run_id.as_str(), "{rec:?}");
                assert_eq!(rec["pid"], std::process::id(), "{rec:?}");
            }
        }
    }

    #[test]
    fn records_after_a_huge_one_keep_their_thread_members() {
        // A record over 1 MiB makes the thread's buffers be replaced by
        // small ones afterwards; the tail must still begin with the
        // thread's members.
        let (layer, path) = layer("after-huge", 4 << 20);
        let subscriber = tracing_subscriber::registry().with(layer);
        let huge = "x".repeat(2 << 20);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(n = 1, "before");
            tracing::info!(big = huge.as_str(), "huge");
            tracing::info!(n = 2, "after");
            tracing::info!(n = 3, "after again");
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let recs = lines(&path);
        assert_eq!(recs.len(), 4);
        for (line, rec) in text.lines().zip(&recs) {
            assert_eq!(rec["thread_id"], crate::thread::tid(), "{rec:?}");
            assert!(
                line.contains(",\"thread\":") && line.matches("\"thread_id\"").count() == 1,
                "{}",
                &line[..200.min(line.len())]
            );
        }
        assert_eq!(recs[1]["big"].as_str().map(str::len), Some(2 << 20));
        assert_eq!(recs[3]["n"], 3);
    }

    #[test]
    fn a_huge_value_is_cut_with_a_marker_and_stays_on_one_line() {
        let (layer, path) = layer("cap", 4096);
        let subscriber = tracing_subscriber::registry().with(layer);
        let huge = "x\n".repeat(100_000);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(huge = huge.as_str(), dbg = ?huge, after = 1, "{huge}");
        });
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches('\n').count(), 1);
        assert!(text.len() < 4096 + 1024, "{}", text.len());
        let rec = &lines(&path)[0];
        for key in ["message", "huge", "dbg"] {
            let value = rec[key].as_str().unwrap();
            assert!(value.contains("...[truncated "), "{key}: {value}");
        }
        assert_eq!(rec["after"], 1);
    }

    #[test]
    fn a_str_message_is_written_as_a_formatted_one_at_every_length() {
        // `&str` messages take a shortcut past `fmt`; around the cap, where
        // the cutting writer takes over, both must give the same line.
        let (layer, path) = layer("str-message", 4096);
        let subscriber = tracing_subscriber::registry().with(layer);
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        tracing::subscriber::with_default(subscriber, || {
            for len in (0..900).chain(1_900..2_300) {
                let text: String = (0..len)
                    .map(|_| ['a', '"', '\n', 'é', '\u{1}'][(rng.next() % 5) as usize])
                    .collect();
                tracing::info!(message = text.as_str());
                tracing::info!("{}", text);
            }
        });
        let text = std::fs::read_to_string(&path).unwrap();
        // The message's bytes exactly as written, quotes and escapes included.
        let raw: Vec<&str> = text
            .lines()
            .map(|line| {
                let start = line.find("\"message\":").unwrap() + 10;
                let end = line.find(",\"target\":").unwrap();
                &line[start..end]
            })
            .collect();
        assert_eq!(raw.len(), 2 * 1_300);
        for pair in raw.chunks(2) {
            assert_eq!(pair[0], pair[1]);
        }
        assert!(raw.iter().any(|m| m.contains("...[truncated ")));
        assert!(raw
            .iter()
            .any(|m| m.len() > 1_000 && !m.contains("...[truncated ")));
    }

    #[test]
    fn one_pass_and_two_passes_write_the_same_line() {
        // Message first takes the one-pass path, message last the two-pass
        // one; near the cap, where the head's length decides where values
        // are cut, both must write the same bytes.
        let (layer, path) = layer("one-pass", 4096);
        let subscriber = tracing_subscriber::registry().with(layer);
        let mut rng = Rng(0x5851_f42d_4c95_7f2d);
        tracing::subscriber::with_default(subscriber, || {
            for len in (0..4_000).step_by(7) {
                let message = rng.string();
                let value: String = (0..len)
                    .map(|_| ['a', '"', 'é'][(rng.next() % 3) as usize])
                    .collect();
                let half: String = value.chars().take(len / 2).collect();
                let (s, n, dbg) = (value.as_str(), len, half.as_str());
                tracing::info!(message = message.as_str(), s, n, dbg = ?dbg, kind = "k");
                tracing::info!(s, n, dbg = ?dbg, kind = "k", message = message.as_str());
            }
        });
        let text = std::fs::read_to_string(&path).unwrap();
        // Everything but the timestamp and seq, which differ.
        let strip = |line: &str| {
            let t = line.find("\",\"level\"").unwrap();
            let seq = line.find(",\"seq\":").unwrap();
            let thread = line.find(",\"thread\":").unwrap();
            format!("{}{}", &line[t..seq], &line[thread..])
        };
        let lines: Vec<String> = text.lines().map(strip).collect();
        assert_eq!(lines.len(), 2 * 4_000usize.div_ceil(7));
        for pair in lines.chunks(2) {
            assert_eq!(pair[0], pair[1]);
        }
        assert!(text.contains("...[truncated "));
    }

    #[test]
    fn errors_carry_their_source_chain() {
        let (layer, path) = layer("errors", 64 * 1024);
        let subscriber = tracing_subscriber::registry().with(layer);
        let err = Wrapped("backfill failed", std::io::Error::other("connection reset"));
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(
                error = &err as &(dyn std::error::Error + 'static),
                "task ended"
            );
        });
        assert_eq!(
            lines(&path)[0]["error"],
            "backfill failed: connection reset"
        );
    }

    #[test]
    fn seq_has_no_gaps_and_lines_never_interleave_across_threads() {
        let (layer, path) = layer("threads", 64 * 1024);
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let dispatch = dispatch.clone();
                std::thread::spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        for n in 0..5_000 {
                            tracing::info!(t, n, pad = "p".repeat(n % 300).as_str(), "r");
                        }
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let records = lines(&path);
        assert_eq!(records.len(), 20_000);
        let mut seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
        seqs.sort_unstable();
        assert!(seqs.iter().copied().eq(1..=20_000));
        for t in 0..4 {
            let ns: Vec<i64> = records
                .iter()
                .filter(|r| r["t"] == t)
                .map(|r| r["n"].as_i64().unwrap())
                .collect();
            assert!(
                ns.iter().copied().eq(0..5_000),
                "thread {t} lost or reordered records"
            );
        }
    }

    #[test]
    fn composes_with_other_layers_and_filters() {
        use tracing_subscriber::filter::{LevelFilter, Targets};
        let (layer, path) = layer("compose", 64 * 1024);
        let captured = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = {
            let captured = captured.clone();
            move || CaptureWriter(captured.clone())
        };
        let subscriber = tracing_subscriber::registry()
            .with(
                layer.with_filter(
                    Targets::new()
                        .with_target("noisy", LevelFilter::WARN)
                        .with_default(LevelFilter::INFO),
                ),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_ansi(false),
            );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "noisy", "filtered from the file");
            tracing::warn!(target: "noisy", "kept");
            tracing::debug!("below info");
            tracing::info!("plain");
        });
        let messages: Vec<_> = lines(&path).iter().map(|r| r["message"].clone()).collect();
        assert_eq!(messages, ["kept", "plain"]);
        let fmt_out = String::from_utf8(captured.lock().unwrap().clone()).unwrap();
        assert!(fmt_out.contains("filtered from the file"), "{fmt_out}");
    }

    /// `write_current_spans` as an object, `{}` when it wrote nothing.
    fn current_spans() -> serde_json::Map<String, Value> {
        let mut out = b"{\"x\":0".to_vec();
        write_current_spans(&mut out);
        out.push(b'}');
        let mut map: serde_json::Map<String, Value> = serde_json::from_slice(&out).unwrap();
        map.remove("x");
        map
    }

    #[test]
    fn current_spans_are_the_spans_an_event_gets_at_the_same_point() {
        use tracing_subscriber::filter::LevelFilter;
        let (layer, path) = layer("current-spans", 64 * 1024);
        // A user-built stack in which another layer sees a DEBUG span the
        // lastwords layer's own filter hides from it; used as a scoped
        // dispatcher, not the global one.
        let subscriber = tracing_subscriber::registry()
            .with(layer.with_filter(LevelFilter::INFO))
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink));
        let (outside, inside) = tracing::subscriber::with_default(subscriber, || {
            let outside = current_spans();
            let conn = tracing::info_span!("conn", peer = "10.0.0.7");
            let _conn = conn.enter();
            let hidden = tracing::debug_span!("hidden", secret = 1);
            let _hidden = hidden.enter();
            assert!(!hidden.is_disabled(), "the registry must hold the span");
            let inner = tracing::info_span!("inner", step = "parse", n = tracing::field::Empty);
            let _inner = inner.enter();
            inner.record("n", 3);
            tracing::info!("here");
            (outside, current_spans())
        });
        assert!(outside.is_empty(), "{outside:?}");
        let event = &lines(&path)[0];
        assert_eq!(inside.keys().collect::<Vec<_>>(), ["span", "spans"]);
        assert_eq!(inside["span"], event["span"]);
        assert_eq!(inside["spans"], event["spans"]);
        assert_eq!(
            inside["spans"],
            serde_json::json!([
                {"name": "conn", "peer": "10.0.0.7"},
                {"name": "inner", "step": "parse", "n": 3}
            ])
        );
    }

    #[test]
    fn a_span_locked_by_this_thread_leaves_the_spans_out_instead_of_hanging() {
        let (layer, _path) = layer("locked-span", 64 * 1024);
        let subscriber = tracing_subscriber::registry().with(layer);
        let (locked, free) = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("conn", peer = "10.0.0.7");
            let _entered = span.enter();
            // Outside `get_default`: a nested call sees no dispatcher.
            let dispatch = tracing::dispatcher::get_default(Clone::clone);
            let registry = dispatch.downcast_ref::<Registry>().unwrap();
            let data = registry.span(&span.id().unwrap()).unwrap();
            // What the `fmt` layer holds while it formats a field.
            let held = data.extensions_mut();
            let started = std::time::Instant::now();
            let locked = current_spans();
            let waited = started.elapsed();
            assert!(waited >= SPANS_WAIT, "{waited:?}: the reader did not wait");
            assert!(waited < SPANS_WAIT * 10, "{waited:?}");
            drop(held);
            (locked, current_spans())
        });
        assert!(locked.is_empty(), "{locked:?}");
        assert_eq!(free["span"]["name"], "conn", "{free:?}");
    }

    #[test]
    fn current_spans_are_empty_without_a_registry_or_without_the_layer() {
        let none = tracing::subscriber::with_default(
            tracing_core::subscriber::NoSubscriber::default(),
            current_spans,
        );
        assert!(none.is_empty(), "{none:?}");
        // A registry whose spans the lastwords layer never saw.
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink));
        let unseen = tracing::subscriber::with_default(subscriber, || {
            let _span = tracing::info_span!("conn", peer = "10.0.0.7").entered();
            current_spans()
        });
        assert!(unseen.is_empty(), "{unseen:?}");
    }

    #[test]
    fn a_span_field_that_panics_leaves_the_span_readable() {
        struct Panicky;
        impl fmt::Debug for Panicky {
            fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
                panic!("broken Debug")
            }
        }
        let (layer, _path) = layer("panicky-span", 64 * 1024);
        let subscriber = tracing_subscriber::registry().with(layer);
        let spans = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("conn", peer = 7, bad = tracing::field::Empty);
            let _entered = span.enter();
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                span.record("bad", tracing::field::debug(Panicky));
            }));
            assert!(caught.is_err());
            // With the extensions locked while the value was formatted, the
            // unwinding would have poisoned them: reading them would panic.
            current_spans()
        });
        assert_eq!(
            spans["span"],
            serde_json::json!({"name": "conn", "peer": 7})
        );
    }

    struct CaptureWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for CaptureWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
