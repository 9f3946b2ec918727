//! The `panic` record lists the panicking thread's spans, `span` (the
//! innermost) and `spans` (from the root), exactly as an ordinary event
//! logged at the panic's location lists them.
//!
//! This file is its own process: it installs lastwords once (the global
//! subscriber and the hooks) writing to a file of its own, then each test
//! logs an event and panics at the same point, with a message of its own
//! to find both records by, and compares them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Map, Value};

/// Installs lastwords once for the whole process and returns its file.
fn log_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("lastwords-panic-spans-{}", std::process::id()));
        let path = dir.join("panic_spans.jsonl");
        // A leftover from an earlier run with the same pid.
        let _ = std::fs::remove_file(&path);
        lastwords::init()
            .path(&path)
            .filter("info")
            .mirror(false)
            .install()
            .expect("lastwords installs");
        path
    })
}

/// Every line of the file, each of which must be a JSON object.
fn records() -> Vec<Map<String, Value>> {
    std::fs::read_to_string(log_path())
        .expect("the lastwords file is readable")
        .lines()
        .map(|line| match serde_json::from_str(line) {
            Ok(Value::Object(map)) => map,
            other => panic!("not a JSON object: {line:?}: {other:?}"),
        })
        .collect()
}

/// The one record of `kind` whose message is `message`.
fn record(kind: &str, message: &str) -> Map<String, Value> {
    let mut found: Vec<_> = records()
        .into_iter()
        .filter(|r| r["kind"] == kind && r["message"] == message)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{kind} records saying {message:?}: {found:#?}"
    );
    found.remove(0)
}

/// Logs an event and then panics, both with `message` (the panic is caught).
fn event_then_panic(message: &'static str) {
    tracing::info!("{}", message);
    let caught = std::panic::catch_unwind(|| panic!("{}", message));
    assert!(caught.is_err());
}

#[test]
fn a_panic_in_nested_spans_lists_them_as_an_event_there_does() {
    log_path();
    let conn = tracing::info_span!("conn", peer = "10.0.0.7");
    let _conn = conn.enter();
    let request = tracing::info_span!("request", id = 42_u64, path = tracing::field::Empty);
    let _request = request.enter();
    request.record("path", "/ingest");
    event_then_panic("nested spans");

    let event = record("event", "nested spans");
    let panic = record("panic", "nested spans");
    assert_eq!(panic["span"], event["span"]);
    assert_eq!(panic["spans"], event["spans"]);
    assert_eq!(
        panic["span"],
        serde_json::json!({"name": "request", "id": 42, "path": "/ingest"})
    );
    assert_eq!(
        panic["spans"],
        serde_json::json!([
            {"name": "conn", "peer": "10.0.0.7"},
            {"name": "request", "id": 42, "path": "/ingest"}
        ])
    );
    // The span members come last, after the panic's own fields, as in
    // every record (checked on the text: serde_json's map sorts its keys).
    let text = std::fs::read_to_string(log_path()).expect("the lastwords file is readable");
    let line = text
        .lines()
        .find(|l| l.contains("\"kind\":\"panic\"") && l.contains("\"message\":\"nested spans\""))
        .expect("the panic line");
    let at = |key: &str| line.find(&format!("\"{key}\":")).expect(key);
    assert!(at("location") < at("breadcrumbs"), "{line}");
    assert!(
        at("breadcrumbs") < at("span") && at("span") < at("spans"),
        "{line}"
    );
    assert!(line.ends_with("]}"), "{line}");
}

#[test]
fn a_panic_in_a_spawned_thread_lists_that_threads_spans() {
    log_path();
    // Entered on the test's thread: must not show up in the other thread.
    let _elsewhere = tracing::info_span!("elsewhere").entered();
    let worker = std::thread::Builder::new()
        .name("worker".into())
        .spawn(|| {
            let _task = tracing::info_span!("task", n = 3).entered();
            let _step = tracing::info_span!("step", what = "flush").entered();
            tracing::info!("spawned thread");
            panic!("spawned thread");
        })
        .expect("the thread starts");
    assert!(worker.join().is_err(), "the thread panicked");

    let event = record("event", "spawned thread");
    let panic = record("panic", "spawned thread");
    assert_eq!(panic["thread"], "worker");
    assert_eq!(panic["span"], event["span"]);
    assert_eq!(panic["spans"], event["spans"]);
    assert_eq!(
        panic["spans"],
        serde_json::json!([{"name": "task", "n": 3}, {"name": "step", "what": "flush"}])
    );
}

#[test]
fn a_panic_outside_any_span_has_no_span_members() {
    log_path();
    event_then_panic("outside spans");
    for kind in ["event", "panic"] {
        let rec = record(kind, "outside spans");
        assert!(!rec.contains_key("span"), "{rec:#?}");
        assert!(!rec.contains_key("spans"), "{rec:#?}");
    }
}

#[test]
fn a_panic_under_a_scoped_dispatcher_is_still_recorded() {
    log_path();
    // A dispatcher of its own on this thread, without the lastwords layer:
    // its spans mean nothing to lastwords, but the panic is still recorded
    // in the file, with the panic hook's fields and no span members.
    let subscriber = tracing_subscriber::registry();
    tracing::subscriber::with_default(subscriber, || {
        let _span = tracing::info_span!("scoped", k = 1).entered();
        let caught = std::panic::catch_unwind(|| panic!("scoped dispatcher"));
        assert!(caught.is_err());
    });
    let panic = record("panic", "scoped dispatcher");
    assert!(!panic.contains_key("span"), "{panic:#?}");
    assert!(panic["location"]
        .as_str()
        .is_some_and(|l| l.starts_with("tests/panic_spans.rs:")));
}
