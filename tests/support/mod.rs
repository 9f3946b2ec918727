//! A capturing subscriber for the macro tests: every event's metadata name,
//! level, target and fields (as strings), in order.

#![allow(dead_code)] // each test binary uses its own subset

use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// One captured event.
#[derive(Clone, Debug)]
pub struct Rec {
    pub name: &'static str,
    pub level: Level,
    pub target: String,
    pub fields: Vec<(String, String)>,
}

impl Rec {
    /// The field's value, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The field's value; panics (failing the test) if absent.
    pub fn field(&self, key: &str) -> &str {
        self.get(key)
            .unwrap_or_else(|| panic!("no field `{key}` in {self:#?}"))
    }

    /// The field names, in order.
    pub fn keys(&self) -> Vec<&str> {
        self.fields.iter().map(|(k, _)| k.as_str()).collect()
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Rec>>>);

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .push((field.name().to_string(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_string(), value.to_string()));
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Vec::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Rec {
            name: meta.name(),
            level: *meta.level(),
            target: meta.target().to_string(),
            fields,
        });
    }
}

/// Runs `f` with a capturing subscriber (everything enabled) as the
/// thread's default; returns its result and the captured events.
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<Rec>) {
    let cap = Capture::default();
    let subscriber = tracing_subscriber::registry().with(cap.clone());
    let r = tracing::subscriber::with_default(subscriber, || fresh_interest(f));
    let recs = cap.0.lock().unwrap().clone();
    (r, recs)
}

/// Like [`capture`], with a level filter in front of the capture layer.
pub fn capture_at<R>(max: Level, f: impl FnOnce() -> R) -> (R, Vec<Rec>) {
    let cap = Capture::default();
    let filter = tracing_subscriber::filter::LevelFilter::from_level(max);
    let subscriber = tracing_subscriber::registry().with(cap.clone().with_filter(filter));
    let r = tracing::subscriber::with_default(subscriber, || fresh_interest(f));
    let recs = cap.0.lock().unwrap().clone();
    (r, recs)
}

/// Runs `f` after asking every callsite's interest again, now that this
/// thread's capturing subscriber exists. Tests run on parallel threads,
/// each with a scoped subscriber of its own (or none): a callsite first hit
/// on a thread without one, while another thread's subscriber was being
/// set up or torn down, can keep a cached "never" that hides this test's
/// records.
fn fresh_interest<R>(f: impl FnOnce() -> R) -> R {
    tracing::callsite::rebuild_interest_cache();
    f()
}

/// Only the `fn_exit` records.
pub fn exits(recs: &[Rec]) -> Vec<Rec> {
    recs.iter()
        .filter(|r| r.name == "lastwords::fn_exit")
        .cloned()
        .collect()
}

/// The 1-based line of `source` (a test file's own text, from
/// `include_str!`) whose `// ` comment ends with `marker`, so that
/// expectations survive reformatting.
pub fn marked_line(source: &str, marker: &str) -> u32 {
    let found = source
        .lines()
        .position(|l| l.contains("// ") && l.ends_with(marker) && !l.contains("line_of"))
        .unwrap_or_else(|| panic!("no line marked {marker}"));
    u32::try_from(found).unwrap() + 1
}
