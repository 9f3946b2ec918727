//! `#[breadcrumb]` and `crumb!` emit a `breadcrumb` event with `fn`, `file`,
//! `line` and the user's fields, and always push into the ring, even when
//! the event is filtered out.

mod support;

use lastwords::{breadcrumb, crumb};
use support::{capture, capture_at, Rec};

fn crumbs(recs: &[Rec]) -> Vec<Rec> {
    recs.iter()
        .filter(|r| r.name == "lastwords::breadcrumb")
        .cloned()
        .collect()
}

/// The ring is process-wide and tests run in parallel: look for the entry
/// by its (unique) name among the latest ones.
fn in_ring(name: &str) -> Option<lastwords_layer::ring::Crumb> {
    lastwords_layer::ring::last(lastwords_layer::ring::CAPACITY)
        .into_iter()
        .rev()
        .find(|c| c.site.name == name)
}

#[breadcrumb]
fn spawn_tasks() -> u32 {
    7
}

#[breadcrumb(level = "debug", message = "opening the gate")]
fn gate(open: bool) -> bool {
    !open
}

#[test]
fn breadcrumb_attribute_emits_an_event_and_pushes_the_ring() {
    let line = line!() - 11;
    let (r, recs) = capture(spawn_tasks);
    assert_eq!(r, 7);
    let recs = crumbs(&recs);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let rec = &recs[0];
    assert_eq!(rec.level, tracing::Level::INFO);
    assert_eq!(rec.target, "breadcrumb");
    assert_eq!(
        rec.keys(),
        ["message", "kind", "fn", "file", "line"],
        "{rec:#?}"
    );
    assert_eq!(rec.field("message"), "breadcrumb::spawn_tasks");
    assert_eq!(rec.field("kind"), "breadcrumb");
    assert_eq!(rec.field("fn"), "breadcrumb::spawn_tasks");
    assert_eq!(rec.field("file"), file!());
    assert_eq!(rec.field("line"), line.to_string());
    let crumb = in_ring("breadcrumb::spawn_tasks").expect("pushed into the ring");
    assert_eq!(crumb.site.file, file!());
    assert_eq!(crumb.site.line, line);
}

#[test]
fn a_filtered_out_breadcrumb_still_reaches_the_ring() {
    let (r, recs) = capture_at(tracing::Level::INFO, || gate(false));
    assert!(r);
    assert!(crumbs(&recs).is_empty(), "{recs:#?}");
    assert!(in_ring("opening the gate").is_some());

    let (_, recs) = capture(|| gate(true));
    let recs = crumbs(&recs);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].level, tracing::Level::DEBUG);
    assert_eq!(recs[0].field("message"), "opening the gate");
    assert_eq!(recs[0].field("fn"), "breadcrumb::gate");
}

#[test]
fn crumb_with_a_message_then_fields() {
    let ((), recs) = capture(|| {
        crumb!("entering select with all three tasks", task_count = 3, mode = ?"fast");
    });
    let line = line!() - 2;
    let recs = crumbs(&recs);
    assert_eq!(recs.len(), 1);
    let rec = &recs[0];
    assert_eq!(rec.field("message"), "entering select with all three tasks");
    assert_eq!(rec.field("task_count"), "3");
    assert_eq!(rec.field("mode"), "\"fast\"");
    // The enclosing fn, not the closure the crumb sits in.
    assert_eq!(
        rec.field("fn"),
        "breadcrumb::crumb_with_a_message_then_fields"
    );
    assert_eq!(rec.field("line"), line.to_string());
    assert_eq!(
        rec.keys(),
        [
            "message",
            "kind",
            "fn",
            "file",
            "line",
            "task_count",
            "mode"
        ]
    );
    let crumb = in_ring("entering select with all three tasks").expect("in the ring");
    assert_eq!(crumb.site.line, line);
}

#[test]
fn crumb_in_tracing_syntax_and_without_subscriber() {
    let host = "db1";
    let ((), recs) = capture(|| crumb!(attempt = 2, "retrying {}", host));
    let recs = crumbs(&recs);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].field("message"), "retrying db1");
    assert_eq!(recs[0].field("attempt"), "2");
    assert!(in_ring("retrying {}").is_some());

    // No subscriber at all: nothing to see, but the ring still remembers.
    crumb!("no subscriber here");
    assert!(in_ring("no subscriber here").is_some());
}

struct Conn;

impl Conn {
    fn run(&self) {
        crumb!("crumb in a method");
    }
}

async fn fetch() {
    tokio::task::yield_now().await;
    crumb!("crumb in an async fn");
}

#[test]
fn crumb_names_the_enclosing_function() {
    let ((), recs) = capture(|| {
        Conn.run();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(fetch());
    });
    let recs = crumbs(&recs);
    let fns: Vec<&str> = recs.iter().map(|r| r.field("fn")).collect();
    assert_eq!(fns, ["breadcrumb::Conn::run", "breadcrumb::fetch"]);
}

impl Conn {
    #[breadcrumb]
    fn handshake(&self) -> u8 {
        1
    }
}

#[test]
fn breadcrumb_on_a_method_names_its_type() {
    let (r, recs) = capture(|| Conn.handshake());
    assert_eq!(r, 1);
    let recs = crumbs(&recs);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0].field("fn"), "breadcrumb::Conn::handshake");
    assert_eq!(recs[0].field("message"), "breadcrumb::Conn::handshake");
    // The ring's entry is static: the module and the fn's name.
    assert!(in_ring("breadcrumb::handshake").is_some());
}
