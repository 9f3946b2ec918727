//! The `tracing` layer that turns events into records.
//!
//! [`LastwordsLayer`] is an ordinary [`Layer`]: put it in any subscriber stack
//! next to `fmt::layer()`, an `EnvFilter` or an OpenTelemetry layer. Events
//! that reach it become one JSON line each in the lastwords file, with the
//! event's fields flattened and its spans listed as `tracing-subscriber`'s
//! JSON formatter does.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::clock::Timestamp;
use crate::fields::{FieldVisitor, MessageVisitor, OnePass, Pass, SpanValues};
use crate::record::{self, Fields};
use crate::recorder::filter::Route;
use crate::sink::Sink;
/// Read by the panic hook; lives with the span storage it reads.
use crate::spans::{self, SpanJson};

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
    /// The flight recorder and what goes where, when the recorder is on.
    route: Option<Route>,
    #[cfg(feature = "opentelemetry")]
    otel: crate::otel::Otel,
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
        LastwordsLayer {
            sink,
            mirror_level,
            route: None,
            #[cfg(feature = "opentelemetry")]
            otel: crate::otel::Otel::default(),
        }
    }

    /// Sends records to the flight recorder as `route` says.
    pub(crate) fn with_route(mut self, route: Option<Route>) -> LastwordsLayer {
        self.route = route;
        self
    }

    /// Writes the members a record inside `current` ends with: with the
    /// `opentelemetry` feature, the trace and span ids; then the `span`
    /// and `spans` members, in what is left of `room`. `target` is the
    /// record's.
    fn write_spans<'a, R: LookupSpan<'a>>(
        &self,
        out: &mut Vec<u8>,
        current: &SpanRef<'a, R>,
        room: usize,
        target: &str,
    ) {
        let start = out.len();
        #[cfg(feature = "opentelemetry")]
        self.otel.write_ids(out, current, target);
        #[cfg(not(feature = "opentelemetry"))]
        let _ = target;
        let room = room.saturating_sub(out.len() - start);
        spans::write_event_spans(out, current, room);
    }

    /// Tells this layer's spans from another lastwords layer's in the
    /// panic hook's span stacks (span ids are per registry).
    fn owner(&self) -> usize {
        self.sink as *const Sink as usize
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

impl<S> Layer<S> for LastwordsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    #[cfg(feature = "opentelemetry")]
    fn on_register_dispatch(&self, subscriber: &tracing_core::Dispatch) {
        self.otel.register(subscriber);
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        // Before any event can see the span (Relaxed is enough: an event on
        // another thread can only be in the span after the span's creation
        // reached it through the registry's own synchronization).
        if !SPANS_SEEN.load(Ordering::Relaxed) {
            SPANS_SEEN.store(true, Ordering::Relaxed);
        }
        let Some(span) = ctx.span(id) else { return };
        let values = SpanValues::format(|v| attrs.record(v), self.sink.max_record / 4);
        let mut json = SpanJson::default();
        json.record(&values);
        span.extensions_mut().insert(json);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // Formatted before the extensions are locked: a `Debug` impl that
        // panics here must not leave this span's extensions write-locked (or
        // poisoned) for the panic hook, which reads them on this thread.
        let values = SpanValues::format(|v| values.record(v), self.sink.max_record / 4);
        let mut ext = span.extensions_mut();
        if let Some(json) = ext.get_mut::<SpanJson>() {
            json.record(&values);
        }
        drop(ext);
        crate::hooks::panic_spans::changed();
        if crate::hooks::panic_spans::in_any() {
            crate::hooks::panic_spans::recorded(self.owner(), |id, out| {
                if let Some(span) = ctx.span(&Id::from_u64(id)) {
                    self.write_spans(out, &span, self.sink.max_record / 2, "");
                }
            });
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        crate::hooks::panic_spans::entered(self.owner(), id.into_u64(), |out| {
            if let Some(span) = ctx.span(id) {
                self.write_spans(out, &span, self.sink.max_record / 2, "");
            }
        });
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        crate::hooks::panic_spans::exited(self.owner(), id.into_u64());
    }

    fn on_close(&self, _id: Id, _ctx: Context<'_, S>) {
        // Its id may be given to a new span.
        crate::hooks::panic_spans::changed();
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        // The file gets what `.filter()` passes, the flight recorder what
        // the recorder filter passes; the layer sees what either wants.
        let (to_file, to_ring) = match &self.route {
            Some(route) => route.decide(meta, &ctx),
            None => (true, None),
        };
        if !to_file && to_ring.is_none() {
            return;
        }
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
            let one_pass = match &mut one.state {
                Pass::Fields(visitor) => {
                    visitor.fields.close();
                    true
                }
                _ => false,
            };
            if !one_pass {
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
                visitor.fields.close();
            }
            let fields_end = bufs.tail.len();
            let current = if SPANS_SEEN.load(Ordering::Relaxed) {
                ctx.event_span(event)
            } else {
                None
            };
            if let Some(current) = current {
                let room = record::tail_room(bufs, sink);
                self.write_spans(&mut bufs.tail, &current, room, target);
            }
            record::finish(bufs, sink, Some(fields_end));
            if to_file {
                sink.commit_vec(&mut bufs.head, &bufs.tail);
                if let Some(recorder) = to_ring {
                    // `commit_vec` left the whole line, `seq` included, in
                    // the head.
                    recorder.record(&[&bufs.head]);
                }
                if self.mirrors(kind, *meta.level()) {
                    sink.mirror
                        .line(&crate::mirror::human_line(event, kind, ours));
                }
            } else if let Some(recorder) = to_ring {
                // Only for the ring: no `seq`, which numbers the file's
                // records (see the recorder's docs).
                recorder.record(&[&bufs.head, &bufs.tail]);
            }
        });
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

    /// The panic hook's spans as an object, `{}` when it wrote nothing.
    fn current_spans() -> serde_json::Map<String, Value> {
        let mut out = b"{\"x\":0".to_vec();
        crate::hooks::panic_spans::write_current(&mut out);
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
    fn a_span_locked_by_this_thread_is_still_listed_without_waiting() {
        use tracing_subscriber::registry::Registry;
        let (layer, _path) = layer("locked-span", 64 * 1024);
        let subscriber = tracing_subscriber::registry().with(layer);
        let locked = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("conn", peer = "10.0.0.7");
            let _entered = span.enter();
            // Outside `get_default`: a nested call sees no dispatcher.
            let dispatch = tracing::dispatcher::get_default(Clone::clone);
            let registry = dispatch.downcast_ref::<Registry>().unwrap();
            let data = registry.span(&span.id().unwrap()).unwrap();
            // What the `fmt` layer holds while it formats a field: reading
            // the span from the registry now would wait forever.
            let _held = data.extensions_mut();
            current_spans()
        });
        assert_eq!(
            locked["span"],
            serde_json::json!({"name": "conn", "peer": "10.0.0.7"})
        );
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
