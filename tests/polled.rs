//! An async fn whose body invokes a macro that may hide a `return`
//! (`bail!`, `tokio::select!`, a user's macro) runs its body as an inner
//! block whose value is seen: each way it leaves is recorded once, with its
//! value, at its own site, however such calls nest.

#![deny(warnings)]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use lastwords::exit_path;
use support::{capture, Rec};

/// The line of this file whose comment ends with `MARKER`.
fn line_of(marker: &str) -> u32 {
    support::marked_line(include_str!("polled.rs"), marker)
}

fn check(rec: &Rec, fn_name: &str, site: &str, marker: &str, outcome: &str) {
    assert_eq!(rec.field("fn"), format!("polled::{fn_name}"), "{rec:#?}");
    assert_eq!(rec.field("site"), site, "{rec:#?}");
    assert_eq!(rec.field("line"), line_of(marker).to_string(), "{rec:#?}");
    assert_eq!(rec.field("outcome"), outcome, "{rec:#?}");
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

macro_rules! fail {
    ($msg:expr) => {
        return Err(String::from($msg))
    };
}

#[exit_path]
async fn select_or_fail(mode: u32) -> Result<u32, String> {
    tokio::select! { // @select
        () = tokio::task::yield_now() => {
            if mode == 0 {
                return Err(format!("lost {mode}"));
            }
        }
        () = tokio::time::sleep(Duration::from_secs(60)) => {}
    }
    if mode == 1 {
        fail!("one"); // @fail
    }
    let n: u32 = "x"
        .parse()
        .map_err(|_| "parse".to_string())
        .and_then(|n: u32| {
            if mode == 2 {
                Err(format!("two {n}"))
            } else {
                Ok(n)
            }
        })?; // @question
    if mode == 3 {
        return Ok(n); // @return
    }
    Ok(n + 1) // @tail
}

#[test]
fn each_exit_of_a_polled_body_is_recorded_with_its_value() {
    let rt = rt();
    let (r, recs) = capture(|| rt.block_on(select_or_fail(0)));
    assert_eq!(r, Err("lost 0".to_string()));
    let exits = support::exits(&recs);
    assert_eq!(exits.len(), 1, "{exits:#?}");
    check(&exits[0], "select_or_fail", "macro", "@select", "err");
    assert_eq!(exits[0].field("error"), "lost 0");

    let (r, recs) = capture(|| rt.block_on(select_or_fail(1)));
    assert_eq!(r, Err("one".to_string()));
    let exits = support::exits(&recs);
    assert_eq!(exits.len(), 1, "{exits:#?}");
    check(&exits[0], "select_or_fail", "macro", "@fail", "err");
    assert_eq!(exits[0].field("error"), "one");

    let (r, recs) = capture(|| rt.block_on(select_or_fail(2)));
    assert_eq!(r, Err("parse".to_string()));
    let exits = support::exits(&recs);
    assert_eq!(exits.len(), 1, "{exits:#?}");
    check(&exits[0], "select_or_fail", "?", "@question", "err");
    assert_eq!(exits[0].field("error"), "parse");
}

#[exit_path]
async fn sleeps_after_a_macro(fail_first: bool) -> Result<u32, String> {
    if fail_first {
        fail!("first");
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(1)
}

#[exit_path]
async fn waits_in_select(late: bool) -> Result<u32, String> {
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(60)) => {
            if late {
                return Err("late".into());
            }
        }
    }
    Ok(1)
}

/// Dropped while it waits, inside a macro's statement or after one: a
/// cancellation, never the macro's exit.
#[test]
fn a_polled_future_dropped_while_it_waits_is_cancelled() {
    let rt = rt();
    let (r, recs) = capture(|| {
        rt.block_on(async {
            tokio::select! {
                r = sleeps_after_a_macro(false) => r,
                r = waits_in_select(true) => r,
                () = tokio::task::yield_now() => Ok(0),
            }
        })
    });
    assert_eq!(r, Ok(0));
    let exits = support::exits(&recs);
    assert_eq!(exits.len(), 2, "{exits:#?}");
    for rec in &exits {
        assert_eq!(rec.field("site"), "cancelled", "{rec:#?}");
        assert_eq!(rec.field("outcome"), "cancelled", "{rec:#?}");
        assert_eq!(rec.level, tracing::Level::WARN);
    }
}

#[exit_path]
async fn panics_inside(n: u32) -> Result<u32, String> {
    tokio::task::yield_now().await;
    if n == 0 {
        fail!("zero");
    }
    assert!(n > 1, "too small: {n}");
    Ok(n)
}

#[test]
fn a_panic_in_a_polled_body_is_an_unwind_and_still_panics() {
    let rt = rt();
    let (r, recs) = capture(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(panics_inside(1))
        }))
    });
    assert!(r.is_err());
    let exits = support::exits(&recs);
    assert_eq!(exits.len(), 1, "{exits:#?}");
    assert_eq!(exits[0].field("site"), "unwind");
    assert_eq!(exits[0].field("outcome"), "panic");
}

#[exit_path]
async fn inner(n: u32) -> Result<u32, String> {
    tokio::task::yield_now().await;
    if n == 0 {
        fail!("inner zero"); // @inner_fail
    }
    Ok(n) // @inner_tail
}

#[exit_path]
async fn outer(n: u32) -> Result<u32, String> {
    if n > 10 {
        fail!("too big");
    }
    let m = inner(n).await?; // @outer_question
    let k = inner(m + 1).await?;
    Ok(k) // @outer_tail
}

/// Each call's exits go to its own guard: the inner call's, recorded while
/// the outer one is polled, and the outer's after it.
#[test]
fn nested_polled_calls_each_record_their_own_exit() {
    let rt = rt();
    let (r, recs) = capture(|| rt.block_on(outer(0)));
    assert_eq!(r, Err("inner zero".to_string()));
    let exits = support::exits(&recs);
    assert_eq!(exits.len(), 2, "{exits:#?}");
    check(&exits[0], "inner", "macro", "@inner_fail", "err");
    check(&exits[1], "outer", "?", "@outer_question", "err");
    assert_eq!(exits[1].field("error"), "inner zero");

    let (r, recs) = capture(|| rt.block_on(outer(1)));
    assert_eq!(r, Ok(2));
    let exits = support::exits(&recs);
    assert_eq!(exits.len(), 3, "{exits:#?}");
    check(&exits[0], "inner", "tail", "@inner_tail", "ok");
    check(&exits[1], "inner", "tail", "@inner_tail", "ok");
    check(&exits[2], "outer", "tail", "@outer_tail", "ok");
}

#[exit_path]
fn countdown(n: u32) -> Pin<Box<dyn Future<Output = Result<u32, String>>>> {
    Box::pin(countdown_async(n))
}

#[exit_path]
async fn countdown_async(n: u32) -> Result<u32, String> {
    tokio::task::yield_now().await;
    if n == 0 {
        fail!("bottom"); // @bottom
    }
    let below = countdown(n - 1).await;
    below.map(|b| b + 1) // @countdown_tail
}

/// A recursive polled fn: every level records its own exit.
#[test]
fn a_recursive_polled_fn_records_each_level() {
    let rt = rt();
    let (r, recs) = capture(|| rt.block_on(countdown_async(2)));
    assert_eq!(r, Err("bottom".to_string()));
    let exits: Vec<Rec> = support::exits(&recs)
        .into_iter()
        .filter(|r| r.field("fn") == "polled::countdown_async")
        .collect();
    assert_eq!(exits.len(), 3, "{exits:#?}");
    check(&exits[0], "countdown_async", "macro", "@bottom", "err");
    check(
        &exits[1],
        "countdown_async",
        "tail",
        "@countdown_tail",
        "err",
    );
    check(
        &exits[2],
        "countdown_async",
        "tail",
        "@countdown_tail",
        "err",
    );
}

struct NoopWake;

impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

/// Polls `fut` to completion on this thread, from inside whatever is being
/// polled now.
fn block_on_here<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(NoopWake));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn sync_bridge(n: u32) -> Result<u32, String> {
    block_on_here(inner(n))
}

#[exit_path]
async fn calls_a_sync_bridge(n: u32) -> Result<u32, String> {
    if n > 10 {
        fail!("too big");
    }
    let m = sync_bridge(n)?; // @bridge_question
    Ok(m) // @bridge_tail
}

/// A polled body that runs another polled call to completion in a nested
/// executor, within its own poll: the nested call's exits are its own, and
/// the outer call's `?` after it is the outer's.
#[test]
fn a_polled_call_run_inside_another_ones_poll_keeps_its_own_guard() {
    let (r, recs) = capture(|| block_on_here(calls_a_sync_bridge(0)));
    assert_eq!(r, Err("inner zero".to_string()));
    let exits = support::exits(&recs);
    assert_eq!(exits.len(), 2, "{exits:#?}");
    check(&exits[0], "inner", "macro", "@inner_fail", "err");
    check(
        &exits[1],
        "calls_a_sync_bridge",
        "?",
        "@bridge_question",
        "err",
    );
}

#[exit_path(ret)]
async fn with_ret(n: u32) -> Option<Vec<u32>> {
    tokio::task::yield_now().await;
    if n == 0 {
        none!(); // @ret_none
    }
    Some(vec![n])
}

macro_rules! none {
    () => {
        return None
    };
}
use none;

#[exit_path]
async fn opaque(n: u32) -> impl std::fmt::Display {
    tokio::task::yield_now().await;
    if n == 0 {
        return_text!(); // @opaque_macro
    }
    String::from("tail")
}

macro_rules! return_text {
    () => {
        return String::from("hidden")
    };
}
use return_text;

#[test]
fn ret_and_opaque_return_types_in_a_polled_body() {
    let rt = rt();
    let (r, recs) = capture(|| rt.block_on(with_ret(0)));
    assert_eq!(r, None);
    let exits = support::exits(&recs);
    assert_eq!(exits.len(), 1, "{exits:#?}");
    check(&exits[0], "with_ret", "macro", "@ret_none", "none");
    assert_eq!(exits[0].field("value"), "None");

    let (r, recs) = capture(|| rt.block_on(opaque(0)));
    assert_eq!(r.to_string(), "hidden");
    let exits = support::exits(&recs);
    assert_eq!(exits.len(), 1, "{exits:#?}");
    check(&exits[0], "opaque", "macro", "@opaque_macro", "returned");
}
