//! Records from the `log` crate, with their key-value pairs.
//!
//! Much of a service's dependency tree logs through `log` rather than
//! `tracing`. tracing-log's bridge turns those records into `tracing`
//! events, but an event's field names must be known when its callsite is
//! compiled, so the bridge keeps the target, level and location and drops
//! the record's key-value pairs (`log::info!(user = 42; "login")`), where
//! the useful detail often is.
//!
//! So [`Builder::install`](crate::Builder::install) sets a `log::Log` of its
//! own that writes each record with the same record writer as `tracing`
//! events: the same schema (`kind` `event`, the record's target and level),
//! `file`, `line` and `module_path` where the record has them, then every
//! key-value pair as a field under the same key rule (a pair named like a
//! schema key or like an earlier field is written as `field.<name>`), one
//! `write(2)` per record, numbered in the same `seq`. The spans the thread
//! is in are listed as for an event logged at the same point.
//!
//! The builder's filter decides here too: its directives are evaluated for
//! the record's target and level as for an event with that target (span-
//! and field-based directives never match a `log` record, which has neither).
//!
//! The flight recorder's filter is evaluated the same way, and a record it
//! passes goes to the ring as an event's does (see the
//! [`recorder`](crate::recorder) docs): with its `seq` when it went to the
//! file too, without one when only the ring keeps it.

use std::fmt;

use log::kv::{self, VisitSource, VisitValue};
use tracing_core::callsite::{Callsite, Identifier};
use tracing_core::field::FieldSet;
use tracing_core::metadata::Kind;
use tracing_core::subscriber::{Interest, Subscriber};
use tracing_core::{Level, Metadata};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::Registry;

use crate::clock::Timestamp;
use crate::json;
use crate::record::{self, Fields};
use crate::recorder::Recorder;
use crate::sink::Sink;

/// The `log::Log` that writes `log` records to the lastwords file.
struct Logger {
    sink: &'static Sink,
    mirror_level: Option<Level>,
    /// The builder's filter, alone over a registry of its own: `EnvFilter`
    /// answers for a metadata only through a subscriber's context.
    filter: Layered<EnvFilter, Registry>,
    /// The flight recorder's filter, the same way; `None` when the recorder
    /// is off.
    ring: Option<Layered<EnvFilter, Registry>>,
}

/// The callsite named by the metadata a `log` record is filtered as.
/// `EnvFilter`'s target-and-level directives look only at the metadata's
/// target and level; a callsite is needed because every metadata names one.
struct LogCallsite;

static LOG_CALLSITE: LogCallsite = LogCallsite;

static LOG_METADATA: Metadata<'static> = Metadata::new(
    "log record",
    "log",
    Level::INFO,
    None,
    None,
    None,
    FieldSet::new(&[], Identifier(&LOG_CALLSITE)),
    Kind::EVENT,
);

impl Callsite for LogCallsite {
    fn set_interest(&self, _: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        &LOG_METADATA
    }
}

/// Sets the `log` logger to one writing to `sink`, filtered by
/// `directives` (the builder's, already checked), mirroring to stderr as
/// events are at `mirror_level`, and copying to the flight recorder what
/// `ring` (the recorder filter's directives, `None` when the recorder is
/// off) passes. When the program has set a `log` logger already, leaves it
/// in place: `log` records keep going to it.
pub(crate) fn install(
    sink: &'static Sink,
    mirror_level: Option<Level>,
    directives: &str,
    ring: Option<&str>,
) {
    let Ok(filter) = EnvFilter::try_new(directives) else {
        return;
    };
    let ring = ring.and_then(|d| EnvFilter::try_new(d).ok());
    // The most detailed level either filter wants (`None`: any).
    let hint = match &ring {
        Some(ring) => filter
            .max_level_hint()
            .zip(ring.max_level_hint())
            .map(|(a, b)| a.max(b)),
        None => filter.max_level_hint(),
    };
    let max = match hint {
        Some(LevelFilter::OFF) => log::LevelFilter::Off,
        Some(LevelFilter::ERROR) => log::LevelFilter::Error,
        Some(LevelFilter::WARN) => log::LevelFilter::Warn,
        Some(LevelFilter::INFO) => log::LevelFilter::Info,
        Some(LevelFilter::DEBUG) => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let logger = Logger {
        sink,
        mirror_level,
        filter: Registry::default().with(filter),
        ring: ring.map(|ring| Registry::default().with(ring)),
    };
    // Another logger already set is the program's choice: keep it, and do
    // not touch the maximum level it set.
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
}

/// The metadata a `log` record is filtered as: its target and level.
fn metadata<'a>(metadata: &log::Metadata<'a>) -> Metadata<'a> {
    Metadata::new(
        "log record",
        metadata.target(),
        level(metadata.level()),
        None,
        None,
        None,
        FieldSet::new(&[], Identifier(&LOG_CALLSITE)),
        Kind::EVENT,
    )
}

/// The `tracing` level of a `log` level.
fn level(level: log::Level) -> Level {
    match level {
        log::Level::Error => Level::ERROR,
        log::Level::Warn => Level::WARN,
        log::Level::Info => Level::INFO,
        log::Level::Debug => Level::DEBUG,
        log::Level::Trace => Level::TRACE,
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        let meta = self::metadata(metadata);
        self.filter.enabled(&meta) || self.ring.as_ref().is_some_and(|r| r.enabled(&meta))
    }

    fn log(&self, rec: &log::Record<'_>) {
        let meta = metadata(rec.metadata());
        let to_file = self.filter.enabled(&meta);
        let to_ring = Recorder::global()
            .filter(|_| self.ring.as_ref().is_some_and(|ring| ring.enabled(&meta)));
        if !to_file && to_ring.is_none() {
            return;
        }
        write(self.sink, rec, to_file, to_ring);
        let lvl = level(rec.level());
        if to_file && self.sink.mirror.enabled() && self.mirror_level.is_some_and(|min| lvl <= min)
        {
            self.sink.mirror.line(&human_line(rec));
        }
    }

    fn flush(&self) {}
}

/// Writes `rec` as one record: to the file when `to_file`, and to the
/// flight recorder `to_ring`, if any, as the layer does with an event.
fn write(sink: &Sink, rec: &log::Record<'_>, to_file: bool, to_ring: Option<&Recorder>) {
    record::with_bufs(|bufs| {
        let args = rec.args();
        record::head(
            bufs,
            sink,
            Timestamp::now(),
            level(rec.level()),
            rec.target(),
            "event",
            None,
            |out, limit| json::display_string(out, args, out.len() + limit),
        );
        let mut fields = Fields::new(bufs, sink);
        if let Some(file) = rec.file() {
            fields.str("file", file);
        }
        if let Some(line) = rec.line() {
            fields.int("line", line);
        }
        if let Some(module_path) = rec.module_path() {
            fields.str("module_path", module_path);
        }
        // Ignored: `Pairs` never fails, and a source that stops early has
        // had its pairs so far written.
        let _ = rec.key_values().visit(&mut Pairs(&mut fields));
        fields.close();
        let fields_end = bufs.tail.len();
        // The spans this thread is in, as the `tracing` layer rendered them
        // for the panic hook; left out when they do not fit.
        let room = record::tail_room(bufs, sink);
        let start = bufs.tail.len();
        crate::hooks::panic_spans::write_current(&mut bufs.tail);
        if bufs.tail.len() - start > room {
            bufs.tail.truncate(start);
        }
        record::finish(bufs, sink, Some(fields_end));
        if to_file {
            sink.commit_vec(&mut bufs.head, &bufs.tail);
            if let Some(recorder) = to_ring {
                // `commit_vec` left the whole line, `seq` included, in the
                // head.
                recorder.record(&[&bufs.head]);
            }
        } else if let Some(recorder) = to_ring {
            // Only for the ring: no `seq`, which numbers the file's records.
            recorder.record(&[&bufs.head, &bufs.tail]);
        }
    });
}

/// Writes each key-value pair as a field.
struct Pairs<'f, 'a>(&'f mut Fields<'a>);

impl<'kvs> VisitSource<'kvs> for Pairs<'_, '_> {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        if self.0.key_transient(key.as_str()) {
            // Ignored: `OneValue` never fails.
            let _ = value.visit(OneValue(self.0));
        }
        Ok(())
    }
}

/// Writes one value after its key, as the `tracing` layer writes a field of
/// the same type: numbers and booleans as JSON numbers and booleans, text
/// and anything captured with `Display` or `Debug` as a string.
struct OneValue<'f, 'a>(&'f mut Fields<'a>);

impl<'v> VisitValue<'v> for OneValue<'_, '_> {
    fn visit_any(&mut self, value: kv::Value<'_>) -> Result<(), kv::Error> {
        json::display_string(self.0.out, &value, self.0.limit);
        Ok(())
    }

    fn visit_null(&mut self) -> Result<(), kv::Error> {
        self.0.out.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_u64(&mut self, value: u64) -> Result<(), kv::Error> {
        json::int(self.0.out, value);
        Ok(())
    }

    fn visit_i64(&mut self, value: i64) -> Result<(), kv::Error> {
        json::int(self.0.out, value);
        Ok(())
    }

    fn visit_u128(&mut self, value: u128) -> Result<(), kv::Error> {
        json::int(self.0.out, value);
        Ok(())
    }

    fn visit_i128(&mut self, value: i128) -> Result<(), kv::Error> {
        json::int(self.0.out, value);
        Ok(())
    }

    fn visit_f64(&mut self, value: f64) -> Result<(), kv::Error> {
        json::float(self.0.out, value);
        Ok(())
    }

    fn visit_bool(&mut self, value: bool) -> Result<(), kv::Error> {
        json::boolean(self.0.out, value);
        Ok(())
    }

    fn visit_str(&mut self, value: &str) -> Result<(), kv::Error> {
        json::display_string(self.0.out, &value, self.0.limit);
        Ok(())
    }

    fn visit_char(&mut self, value: char) -> Result<(), kv::Error> {
        json::display_string(self.0.out, &value, self.0.limit);
        Ok(())
    }
}

/// The stderr line for a mirrored record, as for an event:
/// `[lastwords] LEVEL event target: message k=v …`.
fn human_line(rec: &log::Record<'_>) -> Vec<u8> {
    struct Human(String);
    impl<'kvs> VisitSource<'kvs> for Human {
        fn visit_pair(
            &mut self,
            key: kv::Key<'kvs>,
            value: kv::Value<'kvs>,
        ) -> Result<(), kv::Error> {
            use fmt::Write;
            // Writing to a String cannot fail.
            let _ = write!(self.0, " {key}={value}");
            Ok(())
        }
    }
    let mut human = Human(format!(
        "[lastwords] {} event {}: {}",
        record::level_name(level(rec.level())),
        rec.target(),
        rec.args()
    ));
    // Ignored: `Human` never fails.
    let _ = rec.key_values().visit(&mut human);
    // One record, one line: embedded newlines would split it.
    let mut line = human.0.replace('\n', "\\n");
    line.push('\n');
    line.into_bytes()
}
