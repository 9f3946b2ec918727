//! Record-format promises: every line is valid JSON with every key once,
//! `max_record_bytes` caps the whole line, recording a span field replaces
//! its value, and the breadcrumb ring never reports a torn entry.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lastwords_layer::ring::{self, Crumb, CrumbSite};

// ---------------------------------------------------------------------------
// The breadcrumb ring under contention.

const WRITERS: usize = 8;

/// One site per writer thread: the site an entry points at says which
/// thread left it, so an entry whose thread id is another writer's is torn.
static SITES: [CrumbSite; WRITERS] = {
    const fn site(name: &'static str) -> CrumbSite {
        CrumbSite {
            name,
            file: "tests/records.rs",
            line: 1,
        }
    }
    [
        site("ring-writer-0"),
        site("ring-writer-1"),
        site("ring-writer-2"),
        site("ring-writer-3"),
        site("ring-writer-4"),
        site("ring-writer-5"),
        site("ring-writer-6"),
        site("ring-writer-7"),
    ]
};

/// The kernel thread id of the calling thread, as the ring records it.
fn kernel_tid() -> i64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i64 }
}

/// Which writer `crumb` claims to come from, if it is one of [`SITES`]
/// (other tests of this binary may push breadcrumbs of their own).
fn writer_of(crumb: &Crumb) -> Option<usize> {
    SITES.iter().position(|site| std::ptr::eq(site, crumb.site))
}

#[test]
fn the_ring_never_reports_a_torn_entry_under_eight_writers() {
    // Eight writers push their own site as fast as they can while two
    // readers check every entry they are given: its site and its thread id
    // must be the same writer's. Runs until a tear is seen or for a few
    // seconds; the race this guards against (two pushes a lap apart sharing
    // a slot) showed up several times a second on 2 cores.
    let stop = Arc::new(AtomicBool::new(false));
    let tids: Arc<[AtomicI64; WRITERS]> = Arc::new(std::array::from_fn(|_| AtomicI64::new(0)));
    let pushes = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (stop, tids, pushes) = (stop.clone(), tids.clone(), pushes.clone());
            std::thread::spawn(move || {
                tids[w].store(kernel_tid(), Ordering::SeqCst);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        ring::push(&SITES[w]);
                    }
                    n += 256;
                }
                pushes.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    while tids.iter().any(|t| t.load(Ordering::SeqCst) == 0) {
        std::thread::yield_now();
    }
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, tids) = (stop.clone(), tids.clone());
            std::thread::spawn(move || {
                let mut torn = Vec::new();
                let mut checked = 0u64;
                let mut buf = [None; ring::CAPACITY];
                while !stop.load(Ordering::Relaxed) {
                    let got = ring::recent(&mut buf);
                    let mut last = None;
                    for crumb in buf[..got].iter().flatten() {
                        assert!(last < Some(crumb.index), "entries out of order");
                        last = Some(crumb.index);
                        let Some(w) = writer_of(crumb) else { continue };
                        checked += 1;
                        if crumb.tid != tids[w].load(Ordering::Relaxed) {
                            torn.push(*crumb);
                        }
                    }
                    if !torn.is_empty() {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
                (torn, checked)
            })
        })
        .collect();
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(7) {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let mut torn = Vec::new();
    let mut checked = 0;
    for r in readers {
        let (t, c) = r.join().unwrap();
        torn.extend(t);
        checked += c;
    }
    let tids: Vec<i64> = tids.iter().map(|t| t.load(Ordering::SeqCst)).collect();
    assert!(
        torn.is_empty(),
        "{} torn entries among {checked} checked ({} pushes), writers' tids {tids:?}: {:?}",
        torn.len(),
        pushes.load(Ordering::Relaxed),
        &torn[..torn.len().min(5)]
    );
    assert!(
        checked > 10_000,
        "the readers checked only {checked} entries"
    );
}

// ---------------------------------------------------------------------------
// Record lines, written through one lastwords layer shared by the tests of
// this binary (a process has one lastwords file); each test logs under a
// target of its own and reads back only its lines.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use tracing::callsite::{Callsite, Identifier};
use tracing::field::FieldSet;
use tracing::metadata::Kind;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata};
use tracing_subscriber::prelude::*;

/// The cap the shared layer enforces.
const CAP: usize = 4096;

/// The schema's keys that every record has, in order.
const HEAD: [&str; 10] = [
    "timestamp",
    "level",
    "message",
    "target",
    "kind",
    "pid",
    "run_id",
    "seq",
    "thread",
    "thread_id",
];

/// The shared layer's dispatcher and file. Before the file is opened, a
/// made-up previous run is left in it whose report is far larger than the
/// cap (16 breadcrumbs of 3 KB each), for
/// `the_previous_run_report_fits_the_cap_too`.
fn shared() -> &'static (tracing::Dispatch, PathBuf) {
    static SHARED: OnceLock<(tracing::Dispatch, PathBuf)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("lastwords-records-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("records.jsonl");
        let mut old = String::new();
        for seq in 1..=20u64 {
            let rec = serde_json::json!({
                "timestamp": "2026-01-01T00:00:00.000000Z", "level": "INFO",
                "message": format!("crumb {seq} {}", "y".repeat(3000)),
                "target": "old", "kind": "breadcrumb", "pid": 1, "run_id": "old-run",
                "seq": seq, "thread": "main", "thread_id": 1, "fn": "old::f",
                "file": "src/old.rs", "line": 3,
            });
            old.push_str(&format!("{rec}\n"));
        }
        std::fs::write(&path, old).unwrap();
        let layer = lastwords_layer::init()
            .path(&path)
            .max_record_bytes(CAP)
            .layer()
            .unwrap();
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        (dispatch, path)
    })
}

/// Runs `f` with the shared layer as the default subscriber.
fn logged<R>(f: impl FnOnce() -> R) -> R {
    tracing::dispatcher::with_default(&shared().0, f)
}

/// Every line of this run written under `target`, checked: at most [`CAP`]
/// bytes, JSON with no key twice at any depth, the [`HEAD`] keys first.
fn lines_of(target: &str) -> Vec<(String, BTreeMap<String, Value>)> {
    let text = std::fs::read_to_string(&shared().1).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let Ok(Value::Object(loose)) = serde_json::from_str::<Value>(line) else {
            continue; // the made-up old run is checked by serde only
        };
        if loose.get("target").and_then(Value::as_str) != Some(target) {
            continue;
        }
        out.push((line.to_owned(), strict_object(line)));
    }
    out
}

/// Parses `line` as a JSON object, failing on a duplicate key at any depth
/// (serde_json's own maps keep the last one silently), and checks the
/// cap and the head keys.
fn strict_object(line: &str) -> BTreeMap<String, Value> {
    assert!(
        line.len() < CAP,
        "{} bytes: {}",
        line.len(),
        &line[..300.min(line.len())]
    );
    let value = match serde_json::from_str::<Strict>(line) {
        Ok(Strict(value)) => value,
        Err(e) => panic!("{e}: {line}"),
    };
    let Value::Object(map) = value else {
        panic!("not an object: {line}")
    };
    // Key order, from the raw text: serde_json's map sorts keys.
    let mut at = 0;
    for key in HEAD {
        let found = line[at..]
            .find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("{key} missing or out of order: {line}"));
        at += found;
    }
    map.into_iter().collect()
}

/// A JSON value that refuses duplicate keys.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(v.into()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
        Ok(Strict(v.into()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(v.into()))
    }
    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(v.into()))
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Strict(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if out.insert(key.clone(), value).is_some() {
                return Err(A::Error::custom(format!("duplicate key {key:?}")));
            }
        }
        Ok(Strict(Value::Object(out)))
    }
}

#[test]
fn the_strict_parser_rejects_a_duplicate_key() {
    assert!(serde_json::from_str::<Strict>(r#"{"a":1,"b":{"c":1,"c":2}}"#).is_err());
    assert!(serde_json::from_str::<Strict>(r#"{"a":1,"a":1}"#).is_err());
    assert!(serde_json::from_str::<Strict>(r#"{"a":1,"b":[{"a":1}]}"#).is_ok());
}

/// A callsite made at run time, so that field names can be random.
struct DynCallsite(OnceLock<&'static Metadata<'static>>);

impl Callsite for DynCallsite {
    fn set_interest(&self, _: Interest) {}
    fn metadata(&self) -> &Metadata<'_> {
        self.0.get().expect("set right after creation")
    }
}

/// Leaks a callsite of `kind` named `name` under `target` with these field
/// names (the tests make a bounded number of them).
fn callsite(
    target: &'static str,
    name: &'static str,
    kind: Kind,
    fields: &[String],
) -> &'static Metadata<'static> {
    let site: &'static DynCallsite = Box::leak(Box::new(DynCallsite(OnceLock::new())));
    let names: Vec<&'static str> = fields
        .iter()
        .map(|f| &*Box::leak(f.clone().into_boxed_str()))
        .collect();
    let names: &'static [&'static str] = Box::leak(names.into_boxed_slice());
    let meta: &'static Metadata<'static> = Box::leak(Box::new(Metadata::new(
        name,
        target,
        Level::INFO,
        Some(file!()),
        Some(line!()),
        Some(module_path!()),
        FieldSet::new(names, Identifier(site)),
        kind,
    )));
    site.0.set(meta).unwrap();
    tracing::callsite::register(site);
    meta
}

/// Logs an event of `meta` whose values are `values`, in field order.
fn event_of(meta: &'static Metadata<'static>, values: &[&dyn tracing::Value]) {
    let values: Vec<Option<&dyn tracing::Value>> = values.iter().map(|v| Some(*v)).collect();
    tracing::Event::dispatch(meta, &meta.fields().value_set_all(&values));
}

/// Opens a span of `meta` with `values`, in field order.
fn span_of(meta: &'static Metadata<'static>, values: &[&dyn tracing::Value]) -> tracing::Span {
    let values: Vec<Option<&dyn tracing::Value>> = values.iter().map(|v| Some(*v)).collect();
    tracing::Span::new(meta, &meta.fields().value_set_all(&values))
}

/// A tiny deterministic generator (xorshift), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// A field name: a schema key, the kind-specific keys, `field.`
    /// variants of them (with and without a `.N` suffix), or a short random
    /// string.
    fn name(&mut self) -> String {
        const KNOWN: &[&str] = &[
            "timestamp",
            "level",
            "message",
            "target",
            "kind",
            "pid",
            "run_id",
            "seq",
            "thread",
            "thread_id",
            "span",
            "spans",
            "name",
            "fn",
            "site",
            "file",
            "line",
            "col",
            "outcome",
            "error",
            "value",
            "elapsed_us",
            "label",
            "unexpected",
            "breadcrumbs",
            "location",
            "backtrace",
            "signal",
            "exit_code",
            "truncated_fields",
            "a",
            "",
        ];
        const PIECES: &[&str] = &["a", "b", ".", "field", "\"", "\\", "é", "2", " ", "\n"];
        let base = match self.below(4) {
            0 | 1 => KNOWN[self.below(KNOWN.len())].to_owned(),
            _ => (0..self.below(5))
                .map(|_| PIECES[self.below(PIECES.len())])
                .collect(),
        };
        match self.below(6) {
            0 => format!("field.{base}"),
            1 => format!("field.{base}.{}", 2 + self.below(2)),
            _ => base,
        }
    }
}

#[test]
fn no_line_has_a_key_twice_whatever_the_field_names() {
    // Random field names for events and for the spans around them: every
    // line must parse with no key twice at any depth, keep every field
    // (each value is unique, so each must be found once), and keep every
    // span field's latest value.
    const TARGET: &str = "records::no_key_twice";
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut expected = Vec::new();
    logged(|| {
        for round in 0..300u64 {
            // Spans, outermost first, each with its fields' latest values.
            let mut spans = Vec::new();
            let mut guards = Vec::new();
            let mut span_values = Vec::new();
            for depth in 0..rng.below(4) {
                let names: Vec<String> = (0..rng.below(6)).map(|_| rng.name()).collect();
                let meta = callsite(TARGET, "s", Kind::SPAN, &names);
                let values: Vec<u64> = (0..names.len() as u64)
                    .map(|i| round * 1_000_000 + 100_000 * (depth as u64 + 1) + i)
                    .collect();
                let dyn_values: Vec<&dyn tracing::Value> =
                    values.iter().map(|v| v as &dyn tracing::Value).collect();
                let span = span_of(meta, &dyn_values);
                let mut latest = values.clone();
                // Record some fields again: the value must be replaced.
                for (i, name) in names.iter().enumerate() {
                    if rng.below(3) == 0 && names.iter().position(|n| n == name) == Some(i) {
                        latest[i] += 50_000;
                        span.record(name.as_str(), latest[i]);
                    }
                }
                guards.push(span.clone().entered());
                spans.push(span);
                span_values.push(latest);
            }
            let names: Vec<String> = (0..1 + rng.below(12)).map(|_| rng.name()).collect();
            let meta = callsite(TARGET, "e", Kind::EVENT, &names);
            let values: Vec<u64> = (0..names.len() as u64).map(|i| round * 1_000 + i).collect();
            let dyn_values: Vec<&dyn tracing::Value> =
                values.iter().map(|v| v as &dyn tracing::Value).collect();
            event_of(meta, &dyn_values);
            drop(guards);
            expected.push((names, values, span_values));
        }
    });
    let lines = lines_of(TARGET);
    assert_eq!(lines.len(), expected.len());
    for ((line, rec), (names, values, span_values)) in lines.iter().zip(&expected) {
        // A field named `message` is the message, not a field.
        let fields: Vec<u64> = names
            .iter()
            .zip(values)
            .filter(|(n, _)| *n != "message")
            .map(|(_, v)| *v)
            .collect();
        let mut found: Vec<u64> = rec
            .iter()
            .filter(|(k, _)| !HEAD.contains(&k.as_str()) && *k != "span" && *k != "spans")
            .filter_map(|(_, v)| v.as_u64())
            .collect();
        found.sort_unstable();
        let mut want = fields.clone();
        want.sort_unstable();
        assert_eq!(found, want, "{names:?}: {line}");
        if span_values.is_empty() {
            assert!(!rec.contains_key("spans"), "{line}");
            continue;
        }
        let spans = rec["spans"].as_array().unwrap();
        assert_eq!(spans.len(), span_values.len(), "{line}");
        assert_eq!(rec["span"], *spans.last().unwrap(), "{line}");
        for (span, latest) in spans.iter().zip(span_values) {
            let span = span.as_object().unwrap();
            assert_eq!(span["name"], "s", "{line}");
            let mut found: Vec<u64> = span.values().filter_map(Value::as_u64).collect();
            found.sort_unstable();
            let mut want = latest.clone();
            want.sort_unstable();
            assert_eq!(found, want, "{line}");
        }
    }
}

#[test]
fn colliding_names_get_field_keys_in_a_fixed_order() {
    const TARGET: &str = "records::collisions";
    let names: Vec<String> = ["seq", "field.seq", "a", "a", "field.a", "span", "name"]
        .map(String::from)
        .to_vec();
    let span_names: Vec<String> = ["name", "field.name", "name", "n"]
        .map(String::from)
        .to_vec();
    logged(|| {
        let span_meta = callsite(TARGET, "conn", Kind::SPAN, &span_names);
        let span = span_of(span_meta, &[&1u64, &2u64, &3u64, &4u64]);
        let _entered = span.enter();
        let meta = callsite(TARGET, "e", Kind::EVENT, &names);
        event_of(meta, &[&1u64, &2u64, &3u64, &4u64, &5u64, &6u64, &7u64]);
    });
    let lines = lines_of(TARGET);
    let (line, rec) = &lines[0];
    let fields: Vec<(&str, u64)> = rec
        .iter()
        .filter(|(k, _)| !HEAD.contains(&k.as_str()) && *k != "span" && *k != "spans")
        .map(|(k, v)| (k.as_str(), v.as_u64().unwrap()))
        .collect();
    // `field.seq` is taken when the user's `field.seq` comes: it becomes
    // `field.field.seq`, by the same rule.
    let mut want = vec![
        ("field.seq", 1),
        ("field.field.seq", 2),
        ("a", 3),
        ("field.a", 4),
        ("field.field.a", 5),
        ("field.span", 6),
        ("name", 7),
    ];
    want.sort_unstable();
    assert_eq!(fields, want, "{line}");
    assert_eq!(
        rec["span"],
        serde_json::json!({"name": "conn", "field.name": 1, "field.field.name": 2, "field.name.2": 3, "n": 4}),
        "{line}"
    );
}

#[test]
fn recording_a_span_field_replaces_its_value() {
    const TARGET: &str = "records::span_record";
    logged(|| {
        let span =
            tracing::info_span!(target: TARGET, "conn", n = tracing::field::Empty, peer = "a");
        let _entered = span.enter();
        for n in 0..2_000 {
            span.record("n", n);
        }
        span.record("peer", "b");
        tracing::info!(target: TARGET, "done");
    });
    let lines = lines_of(TARGET);
    let (line, rec) = &lines[0];
    assert_eq!(
        rec["span"],
        serde_json::json!({"name": "conn", "n": 1999, "peer": "b"})
    );
    assert_eq!(line.matches("\"n\":").count(), 2, "{line}");
    assert!(line.len() < 600, "{} bytes", line.len());
}

#[test]
fn max_record_bytes_caps_the_whole_line() {
    // Huge span fields in nested spans, huge event fields and hundreds of
    // fields: every line stays under the cap and valid, with its head keys.
    const TARGET: &str = "records::cap";
    let huge = "x".repeat(20_000);
    let many: Vec<String> = (0..600).map(|i| format!("f{i}")).collect();
    let many_meta = callsite(TARGET, "e", Kind::EVENT, &many);
    logged(|| {
        let a = tracing::info_span!(target: TARGET, "a", big = huge.as_str(), id = 7);
        let _a = a.enter();
        let b = tracing::info_span!(target: TARGET, "b", big = huge.as_str(), more = ?huge);
        let _b = b.enter();
        let c = tracing::info_span!(target: TARGET, "c", big = huge.as_str(), after = 3);
        let _c = c.enter();
        let d = tracing::info_span!(target: TARGET, "d", big = huge.as_str());
        let _d = d.enter();
        tracing::info!(target: TARGET, x = huge.as_str(), y = huge.as_str(), "{huge}");
        let values: Vec<u64> = (0..600).collect();
        let dyn_values: Vec<&dyn tracing::Value> =
            values.iter().map(|v| v as &dyn tracing::Value).collect();
        event_of(many_meta, &dyn_values);
        tracing::info!(target: TARGET, small = 1, "small");
    });
    let lines = lines_of(TARGET);
    assert_eq!(lines.len(), 3);
    let (line, huge_rec) = &lines[0];
    assert!(huge_rec["message"]
        .as_str()
        .unwrap()
        .contains("...[truncated "));
    assert!(
        huge_rec["x"].as_str().unwrap().contains("...[truncated "),
        "{line}"
    );
    let (line, many_rec) = &lines[1];
    let dropped = many_rec["truncated_fields"].as_u64().unwrap();
    let kept = many_rec.keys().filter(|k| k.starts_with('f')).count();
    assert_eq!(kept as u64 + dropped, 600, "{line}");
    assert_eq!(many_rec["f0"], 0, "{line}");
    // The small record in the same spans: the spans are shortened (the
    // big fields do not fit), but their names and small fields are kept,
    // and the big ones are cut, not dropped.
    let (line, small) = &lines[2];
    assert_eq!(small["small"], 1);
    assert_eq!(small["span"]["name"], "d", "{line}");
    let names: Vec<&Value> = small["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["name"])
        .collect();
    assert_eq!(names, ["a", "b", "c", "d"], "{line}");
    assert_eq!(small["spans"][0]["id"], 7, "{line}");
    assert_eq!(small["spans"][2]["after"], 3, "{line}");
    for span in small["spans"].as_array().unwrap() {
        let big = span["big"].as_str().unwrap();
        // Shorter than the span keeps it (a quarter of the cap), and
        // counting all 20,000 bytes it lost.
        assert!(
            big.starts_with("xxxx") && big.len() < CAP / 4 - 100,
            "{line}"
        );
        let kept = big.matches('x').count();
        assert!(big.ends_with(&format!("...[truncated {} bytes]", 20_000 - kept)));
    }
}

#[test]
fn the_previous_run_report_fits_the_cap_too() {
    shared();
    let text = std::fs::read_to_string(&shared().1).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("\"kind\":\"process_start\""))
        .unwrap();
    let rec = strict_object(line);
    let previous = rec["previous_run"].as_object().unwrap();
    assert_eq!(previous["run_id"], "old-run", "{line}");
    let crumbs = previous["last_breadcrumbs"].as_array().unwrap();
    assert!(!crumbs.is_empty(), "{line}");
    // The newest breadcrumbs are the ones kept.
    let newest = crumbs.last().unwrap()["name"].as_str().unwrap();
    assert!(newest.starts_with("crumb 20 "), "{line}");
}
