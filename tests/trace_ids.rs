//! With the `opentelemetry` feature, records written inside a span that
//! tracing-opentelemetry traces carry the ids OpenTelemetry exports for it.
//!
//! The stack is the user's own: the lastwords layer next to
//! tracing-opentelemetry with the SDK's in-memory exporter, and the hooks.
//! A request span is entered on the test's thread and its handler runs in a
//! tokio task on a worker thread; the records written there (an event, a
//! `fn_exit`, a breadcrumb) and a panic in another task must name the
//! exported spans' trace and span ids.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
#[path = "support/top_keys.rs"]
mod top_keys;

use serde_json::{Map, Value};
use tracing::Instrument;
use tracing_subscriber::prelude::*;

#[lastwords::exit_path]
fn parse(input: &str) -> Result<u32, std::num::ParseIntError> {
    lastwords::crumb!("parsing");
    input.parse()
}

fn records(text: &str) -> Vec<Map<String, Value>> {
    text.lines()
        .map(|line| {
            let map: Map<String, Value> = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON object: {line}: {e}"));
            top_keys::assert_no_key_twice(line);
            map
        })
        .collect()
}

#[test]
fn records_in_traced_spans_carry_the_exported_ids() {
    let dir = std::env::temp_dir().join(format!("lastwords-otel-{}", std::process::id()));
    let path = dir.join("app.jsonl");
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let lastwords = lastwords::init()
        .path(&path)
        .mirror(false)
        .layer()
        .expect("lastwords");
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(lastwords)
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test"))),
    )
    .expect("global subscriber");
    lastwords::install_hooks().expect("hooks");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let main_thread = lastwords_tid();
    let request = tracing::info_span!("request", id = 7);
    let handler_thread = {
        let _entered = request.enter();
        tracing::info!("request received");
        let handler = tracing::info_span!("handler");
        rt.block_on(
            rt.spawn(
                async {
                    tracing::info!(trace_id = "mine", "in the handler");
                    parse("12").unwrap();
                    lastwords::crumb!("handled");
                    lastwords_tid()
                }
                .instrument(handler),
            ),
        )
        .unwrap()
    };
    let panicked = rt.block_on(
        rt.spawn(
            async {
                let found: Option<u32> = std::hint::black_box(None);
                found.expect("no such user")
            }
            .instrument(tracing::info_span!("doomed")),
        ),
    );
    assert!(panicked.is_err());
    tracing::info!("outside any span");
    drop(request);
    drop(rt);
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let exported = |name: &str| {
        let span = spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} not exported: {spans:#?}"));
        (
            format!("{:032x}", span.span_context.trace_id()),
            format!("{:016x}", span.span_context.span_id()),
        )
    };
    let (request_trace, request_span) = exported("request");
    let (handler_trace, handler_span) = exported("handler");
    let (_, doomed_span) = exported("doomed");
    assert_eq!(request_trace, handler_trace);

    let text = std::fs::read_to_string(&path).unwrap();
    let recs = records(&text);
    let ids = |rec: &Map<String, Value>| {
        (
            rec.get("trace_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            rec.get("span_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
        )
    };
    let find = |pred: &dyn Fn(&Map<String, Value>) -> bool, what: &str| {
        recs.iter()
            .find(|r| pred(r))
            .unwrap_or_else(|| panic!("no {what} record in {text}"))
            .clone()
    };

    let received = find(&|r| r["message"] == "request received", "event");
    assert_eq!(
        ids(&received),
        (Some(request_trace.clone()), Some(request_span))
    );
    assert_eq!(received["thread_id"], main_thread);

    let in_handler = find(&|r| r["message"] == "in the handler", "handler event");
    assert_eq!(
        ids(&in_handler),
        (Some(handler_trace.clone()), Some(handler_span.clone()))
    );
    // Written on another thread than the one that entered the request.
    assert_eq!(in_handler["thread_id"], handler_thread);
    assert_ne!(handler_thread, main_thread);
    // The user's own field of that name is kept, under another key.
    assert_eq!(in_handler["field.trace_id"], "mine");

    for (kind, what) in [("fn_exit", "fn_exit"), ("breadcrumb", "breadcrumb")] {
        let rec = find(&|r| r["kind"] == kind, what);
        assert_eq!(
            ids(&rec),
            (Some(handler_trace.clone()), Some(handler_span.clone())),
            "{rec:?}"
        );
    }

    let panic = find(&|r| r["kind"] == "panic", "panic");
    assert_eq!(ids(&panic).1, Some(doomed_span), "{panic:?}");
    assert_eq!(ids(&panic).0.map(|t| t.len()), Some(32));

    let outside = find(&|r| r["message"] == "outside any span", "outside");
    assert_eq!(ids(&outside), (None, None));
    for rec in &recs {
        for key in ["trace_id", "span_id"] {
            if let Some(id) = rec.get(key) {
                let id = id.as_str().unwrap();
                assert!(
                    id.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                    "{id}"
                );
            }
        }
    }
}

/// The calling thread's id as records give it.
fn lastwords_tid() -> i64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) }
}
