//! `#[exit_path]` records exactly one `fn_exit` event per call, naming the
//! exit that was taken: site, position, outcome and error.

mod support;

use std::io;

use lastwords::exit_path;
use support::{capture, exits, Rec};

fn one(recs: &[Rec]) -> Rec {
    let exits = exits(recs);
    assert_eq!(exits.len(), 1, "expected exactly one fn_exit: {exits:#?}");
    exits.into_iter().next().unwrap()
}

/// The line of this file whose comment ends with `MARKER`, so that
/// expectations survive reformatting.
fn line_of(marker: &str) -> u32 {
    support::marked_line(include_str!("exit_path.rs"), marker)
}

fn check(rec: &Rec, site: &str, line: u32, outcome: &str) {
    assert_eq!(rec.field("site"), site, "{rec:#?}");
    assert_eq!(rec.field("line"), line.to_string(), "{rec:#?}");
    assert_eq!(rec.field("outcome"), outcome, "{rec:#?}");
    assert_eq!(rec.field("file"), file!(), "{rec:#?}");
}

fn parse(s: &str) -> Result<u32, std::num::ParseIntError> {
    s.parse()
}

#[exit_path]
fn several_q(a: &str, b: &str) -> Result<u32, std::num::ParseIntError> {
    let x = parse(a)?; // @q1
    let y = parse(b)?; // @q2
    Ok(x + y) // @tail_several
}

#[test]
fn each_question_mark_reports_its_own_line() {
    let (r, recs) = capture(|| several_q("x", "1"));
    assert!(r.is_err());
    let rec = one(&recs);
    check(&rec, "?", line_of("@q1"), "err");
    assert_eq!(rec.field("error"), "invalid digit found in string");
    assert_eq!(rec.field("col"), "21");

    let (_, recs) = capture(|| several_q("1", ""));
    let rec = one(&recs);
    check(&rec, "?", line_of("@q2"), "err");
    assert_eq!(rec.field("error"), "cannot parse integer from empty string");

    let (r, recs) = capture(|| several_q("1", "2"));
    assert_eq!(r, Ok(3));
    let rec = one(&recs);
    check(&rec, "tail", line_of("@tail_several"), "ok");
    assert!(rec.get("error").is_none());
    assert_eq!(rec.name, "lastwords::fn_exit");
    assert_eq!(rec.level, tracing::Level::INFO);
    assert_eq!(rec.target, module_path!());
    assert_eq!(rec.field("fn"), "exit_path::several_q");
    assert_eq!(rec.field("kind"), "fn_exit");
    assert_eq!(rec.field("unexpected"), "false");
    assert_eq!(
        rec.keys(),
        [
            "message",
            "kind",
            "fn",
            "site",
            "file",
            "line",
            "col",
            "outcome",
            "elapsed_us",
            "unexpected"
        ]
    );
}

#[exit_path]
fn early(n: i32) -> Option<i32> {
    if n < 0 {
        return None; // @early
    }
    if n == 0 {
        return Some(0); // @early2
    }
    let half = if n % 2 == 0 { Some(n / 2) } else { None };
    let h = half?; // @early_q
    Some(h) // @early_tail
}

#[test]
fn early_returns_option_question_mark_and_tail() {
    let (r, recs) = capture(|| early(-1));
    assert_eq!(r, None);
    let rec = one(&recs);
    check(&rec, "return", line_of("@early"), "none");
    assert_eq!(rec.field("col"), "9");
    let (r, recs) = capture(|| early(0));
    assert_eq!(r, Some(0));
    check(&one(&recs), "return", line_of("@early2"), "returned");
    let (r, recs) = capture(|| early(3));
    assert_eq!(r, None);
    check(&one(&recs), "?", line_of("@early_q"), "none");
    let (r, recs) = capture(|| early(4));
    assert_eq!(r, Some(2));
    check(&one(&recs), "tail", line_of("@early_tail"), "returned");
}

#[exit_path]
fn nested_exits_do_not_count(v: &[&str]) -> Result<u32, std::num::ParseIntError> {
    let parse_all = |v: &[&str]| -> Result<Vec<u32>, std::num::ParseIntError> {
        let mut out = Vec::new();
        for s in v {
            if s.is_empty() {
                return Ok(out);
            }
            out.push(s.parse::<u32>()?);
        }
        Ok(out)
    };
    let fut = async { "7".parse::<u32>() };
    fn helper(s: &str) -> Result<u32, std::num::ParseIntError> {
        Ok(s.parse::<u32>()? + 1)
    }
    let sum = parse_all(v).map(|x| x.iter().sum::<u32>()).unwrap_or(0);
    drop(fut);
    let h = helper("1")?;
    Ok(sum + h) // @nested
}

#[test]
fn returns_in_closures_async_blocks_and_nested_fns_do_not_count() {
    let (r, recs) = capture(|| nested_exits_do_not_count(&["1", "x"]));
    assert_eq!(r, Ok(2));
    check(&one(&recs), "tail", line_of("@nested"), "ok");
    let (r, recs) = capture(|| nested_exits_do_not_count(&["1", ""]));
    assert_eq!(r, Ok(3));
    check(&one(&recs), "tail", line_of("@nested"), "ok");
}

macro_rules! my_bail {
    ($msg:expr) => {
        return Err(io::Error::other($msg))
    };
}

#[exit_path]
fn local_bail(n: u32) -> io::Result<u32> {
    if n == 0 {
        my_bail!("zero"); // @bail
    }
    Ok(n) // @bail_tail
}

#[exit_path]
fn anyhow_exits(n: u32) -> anyhow::Result<u32> {
    anyhow::ensure!(n != 1, "one is not allowed"); // @anyhow
    if n == 2 {
        anyhow::bail!("two: {}", n); // @anyhow_bail
    }
    let v: u32 = "x"
        .parse()
        .map_err(anyhow::Error::from)
        .map_err(|e| e.context("parsing x"))
        .or_else(|e| if n == 3 { Err(e) } else { Ok(n) })?; // @anyhow_q
    Ok(v)
}

#[test]
fn exits_hidden_in_macros_report_the_invocation_and_the_value() {
    let (r, recs) = capture(|| local_bail(0));
    assert!(r.is_err());
    let rec = one(&recs);
    check(&rec, "macro", line_of("@bail"), "err");
    assert_eq!(rec.field("col"), "9");
    assert_eq!(rec.field("error"), "zero");
    assert_eq!(rec.level, tracing::Level::ERROR);
    let (r, recs) = capture(|| local_bail(5));
    assert_eq!(r.unwrap(), 5);
    check(&one(&recs), "tail", line_of("@bail_tail"), "ok");

    let (_, recs) = capture(|| anyhow_exits(1));
    let rec = one(&recs);
    check(&rec, "macro", line_of("@anyhow"), "err");
    assert_eq!(rec.field("col"), "5");
    assert_eq!(rec.field("error"), "one is not allowed");
    let (_, recs) = capture(|| anyhow_exits(2));
    let rec = one(&recs);
    check(&rec, "macro", line_of("@anyhow_bail"), "err");
    assert_eq!(rec.field("error"), "two: 2");
}

struct Config {
    name: String,
    retries: u32,
}

impl Config {
    /// Borrows from `&self` through the closure the macro exit needs.
    #[exit_path]
    fn name_checked(&self) -> anyhow::Result<&str> {
        anyhow::ensure!(!self.name.is_empty(), "no name"); // @ensure_ref
        Ok(&self.name)
    }

    /// A borrow from `&mut self` leaves the closure too: it is `FnOnce`.
    #[exit_path]
    fn retries_mut(&mut self) -> anyhow::Result<&mut u32> {
        anyhow::ensure!(self.retries < 10, "too many"); // @ensure_mut
        Ok(&mut self.retries)
    }

    /// `&mut self` with an owned result runs in the closure.
    #[exit_path]
    fn bump(&mut self) -> anyhow::Result<u32> {
        self.retries += 1;
        anyhow::ensure!(self.retries < 3, "retried {} times", self.retries); // @ensure_bump
        Ok(self.retries)
    }
}

#[test]
fn macro_exits_in_methods() {
    let mut config = Config {
        name: String::new(),
        retries: 10,
    };
    let (r, recs) = capture(|| config.name_checked().map(str::to_owned));
    assert!(r.is_err());
    let rec = one(&recs);
    check(&rec, "macro", line_of("@ensure_ref"), "err");
    assert_eq!(rec.field("error"), "no name");

    let (r, recs) = capture(|| config.retries_mut().map(|r| *r));
    assert!(r.is_err());
    let rec = one(&recs);
    check(&rec, "macro", line_of("@ensure_mut"), "err");
    assert_eq!(rec.field("error"), "too many");

    config.retries = 1;
    let (r, recs) = capture(|| config.bump());
    assert_eq!(r.unwrap(), 2);
    assert_eq!(one(&recs).field("outcome"), "ok");
    let (r, recs) = capture(|| config.bump());
    assert!(r.is_err());
    let rec = one(&recs);
    check(&rec, "macro", line_of("@ensure_bump"), "err");
    assert_eq!(rec.field("error"), "retried 3 times");
    assert_eq!(config.retries, 3, "the closure changed the caller's value");
}

#[test]
fn anyhow_context_chain_and_io_alias() {
    let (r, recs) = capture(|| anyhow_exits(3));
    assert!(r.is_err());
    let rec = one(&recs);
    check(&rec, "?", line_of("@anyhow_q"), "err");
    assert_eq!(
        rec.field("error"),
        "parsing x: invalid digit found in string"
    );
    assert_eq!(rec.level, tracing::Level::ERROR);
    let (_, recs) = capture(|| io_alias("/nonexistent/lastwords"));
    let rec = one(&recs);
    assert_eq!(rec.field("outcome"), "err");
    assert_eq!(rec.field("error"), "No such file or directory (os error 2)");
    assert_eq!(rec.field("site"), "?");
}

#[exit_path]
fn io_alias(path: &str) -> io::Result<String> {
    let s = std::fs::read_to_string(path)?;
    Ok(s)
}

#[exit_path]
fn outer_panics(n: u32) -> u32 {
    // The record of an unwind carries the line of the fn's name: @panic
    inner_panics(n) + 1
}

#[exit_path]
fn inner_panics(n: u32) -> u32 {
    if n > 0 {
        panic!("boom {n}");
    }
    n
}

#[test]
fn a_panic_unwinding_through_two_frames_records_both_inner_first() {
    let (r, recs) = capture(|| std::panic::catch_unwind(|| outer_panics(1)));
    assert!(r.is_err());
    let exits = exits(&recs);
    assert_eq!(exits.len(), 2, "{exits:#?}");
    assert_eq!(exits[0].field("fn"), "exit_path::inner_panics");
    assert_eq!(exits[1].field("fn"), "exit_path::outer_panics");
    for rec in &exits {
        assert_eq!(rec.field("site"), "unwind");
        assert_eq!(rec.field("outcome"), "panic");
        assert_eq!(rec.level, tracing::Level::ERROR);
    }
    assert_eq!(exits[1].field("line"), (line_of("@panic") - 1).to_string());
}

#[exit_path]
async fn slow() -> Result<(), io::Error> {
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    Ok(())
}

#[exit_path]
async fn fast() -> Result<u8, io::Error> {
    tokio::task::yield_now().await;
    Ok(1)
}

#[test]
fn an_async_fn_losing_a_select_is_cancelled() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (r, recs) = capture(|| {
        rt.block_on(async {
            tokio::select! {
                r = slow() => r.map(|()| 0),
                r = fast() => r,
            }
        })
    });
    assert_eq!(r.unwrap(), 1);
    let exits = exits(&recs);
    assert_eq!(exits.len(), 2, "{exits:#?}");
    let fast = exits
        .iter()
        .find(|r| r.field("fn") == "exit_path::fast")
        .unwrap();
    assert_eq!(fast.field("site"), "tail");
    assert_eq!(fast.field("outcome"), "ok");
    let slow = exits
        .iter()
        .find(|r| r.field("fn") == "exit_path::slow")
        .unwrap();
    assert_eq!(slow.field("site"), "cancelled");
    assert_eq!(slow.field("outcome"), "cancelled");
    assert_eq!(slow.level, tracing::Level::WARN);
}

#[exit_path(unexpected, label = "D")]
fn run_forever(stop_after: u32) -> Result<(), io::Error> {
    let mut n = 0;
    loop {
        n += 1;
        if n == stop_after {
            return Ok(());
        }
    }
}

#[test]
fn an_unexpected_loop_that_returns_is_an_error() {
    let (r, recs) = capture(|| run_forever(3));
    assert!(r.is_ok());
    let rec = one(&recs);
    assert_eq!(rec.level, tracing::Level::ERROR);
    assert_eq!(rec.field("unexpected"), "true");
    assert_eq!(rec.field("label"), "D");
    assert_eq!(rec.field("site"), "return");
    assert_eq!(rec.field("outcome"), "ok");
}

#[exit_path(ret, level = "debug", name = "custom::relocate")]
fn with_ret(v: Vec<u8>) -> Option<Vec<u8>> {
    if v.is_empty() {
        return None;
    }
    Some(v)
}

#[test]
fn ret_records_the_value() {
    let (r, recs) = capture(|| with_ret(vec![1, 2]));
    assert_eq!(r, Some(vec![1, 2]));
    let rec = one(&recs);
    assert_eq!(rec.field("value"), "Some([1, 2])");
    assert_eq!(rec.field("fn"), "custom::relocate");
    assert_eq!(rec.level, tracing::Level::DEBUG);
    let (_, recs) = capture(|| with_ret(vec![]));
    assert_eq!(one(&recs).field("value"), "None");
}

#[test]
fn filtered_out_records_are_not_emitted() {
    let (_, recs) = support::capture_at(tracing::Level::INFO, || with_ret(vec![1]));
    assert!(exits(&recs).is_empty());
    let (_, recs) = support::capture_at(tracing::Level::WARN, || several_q("1", "x"));
    assert_eq!(one(&recs).field("outcome"), "err");
}

struct Counter {
    n: u32,
}

trait Named {
    fn name(&self) -> String;
    #[exit_path]
    fn shout(&self) -> String {
        self.name().to_uppercase()
    }
}

impl Named for Counter {
    #[exit_path]
    fn name(&self) -> String {
        format!("c{}", self.n)
    }
}

impl Counter {
    #[exit_path]
    fn by_ref(&self) -> u32 {
        self.n
    }
    #[exit_path]
    fn by_mut(&mut self) -> Result<u32, String> {
        self.n += 1;
        if self.n > 100 {
            return Err("too big".into());
        }
        Ok(self.n)
    }
    #[exit_path]
    fn by_value(self) -> u32 {
        self.n
    }
    #[exit_path]
    #[allow(clippy::boxed_local)] // the receiver form is what is tested
    fn boxed(self: Box<Self>) -> u32 {
        self.n
    }
    #[exit_path]
    fn pinned(self: std::pin::Pin<&mut Self>) -> u32 {
        self.n
    }
    #[exit_path]
    fn generic<T: std::fmt::Debug + Clone>(&self, t: &T) -> Result<T, std::fmt::Error> {
        if self.n == 0 {
            Err(std::fmt::Error)?;
        }
        Ok(t.clone())
    }
}

#[test]
fn methods_with_every_receiver_and_generics() {
    let (_, recs) = capture(|| {
        let mut c = Counter { n: 1 };
        assert_eq!(c.by_ref(), 1);
        assert_eq!(c.by_mut(), Ok(2));
        assert_eq!(std::pin::Pin::new(&mut c).pinned(), 2);
        assert_eq!(c.generic(&"x"), Ok("x"));
        assert_eq!(c.name(), "c2");
        assert_eq!(c.shout(), "C2");
        assert_eq!(Box::new(Counter { n: 7 }).boxed(), 7);
        assert_eq!(c.by_value(), 2);
        assert_eq!(Counter { n: 0 }.generic(&1), Err(std::fmt::Error));
    });
    let exits = exits(&recs);
    let fns: Vec<&str> = exits.iter().map(|r| r.field("fn")).collect();
    assert_eq!(
        fns,
        [
            "exit_path::Counter::by_ref",
            "exit_path::Counter::by_mut",
            "exit_path::Counter::pinned",
            "exit_path::Counter::generic",
            "<exit_path::Counter as exit_path::Named>::name",
            "<exit_path::Counter as exit_path::Named>::name",
            "exit_path::Named::shout",
            "exit_path::Counter::boxed",
            "exit_path::Counter::by_value",
            "exit_path::Counter::generic",
        ]
    );
    assert_eq!(exits[9].field("site"), "?");
    assert_eq!(
        exits[9].field("error"),
        "an error occurred when formatting an argument"
    );
}

#[exit_path]
#[tokio::main(flavor = "current_thread")]
async fn exit_path_outside_tokio_main(fail: bool) -> Result<u32, io::Error> {
    tokio::task::yield_now().await;
    if fail {
        return Err(io::Error::other("outer order failed")); // @main_a
    }
    Ok(1)
}

#[tokio::main(flavor = "current_thread")]
#[exit_path]
async fn exit_path_inside_tokio_main(fail: u32) -> anyhow::Result<u32> {
    tokio::task::yield_now().await;
    if fail == 1 {
        return Err(anyhow::anyhow!("inner order failed")); // @main_b
    }
    anyhow::ensure!(fail != 2, "ensure failed"); // @main_ensure
    let n: u32 = if fail == 3 { "x" } else { "1" }.parse()?; // @main_q
    Ok(n) // @main_tail
}

/// `#[exit_path]` above `#[tokio::main]` sees the `async fn`. Below it, it
/// sees tokio's generated sync fn, whose body runs in an async block that
/// the runtime blocks on: that block is rewritten as the async fn's body
/// would be. Either way the sites are the user's.
#[test]
fn tokio_main_in_either_order() {
    let (r, recs) = capture(|| exit_path_outside_tokio_main(true));
    assert!(r.is_err());
    let rec = one(&recs);
    assert_eq!(rec.field("fn"), "exit_path::exit_path_outside_tokio_main");
    check(&rec, "return", line_of("@main_a"), "err");
    assert_eq!(rec.field("error"), "outer order failed");
    let (r, recs) = capture(|| exit_path_outside_tokio_main(false));
    assert_eq!(r.unwrap(), 1);
    assert_eq!(one(&recs).field("outcome"), "ok");

    let cases = [
        (1, "return", "@main_b", "inner order failed"),
        (2, "macro", "@main_ensure", "ensure failed"),
        (3, "?", "@main_q", "invalid digit found in string"),
    ];
    for (fail, site, marker, error) in cases {
        let (r, recs) = capture(|| exit_path_inside_tokio_main(fail));
        assert!(r.is_err());
        let rec = one(&recs);
        assert_eq!(rec.field("fn"), "exit_path::exit_path_inside_tokio_main");
        check(&rec, site, line_of(marker), "err");
        assert_eq!(rec.field("error"), error);
    }
    let (r, recs) = capture(|| exit_path_inside_tokio_main(0));
    assert_eq!(r.unwrap(), 1);
    check(&one(&recs), "tail", line_of("@main_tail"), "ok");
}

thread_local! {
    /// Makes `tokio_test_shape` fail when set on the calling thread (a
    /// current-thread runtime runs the test's body on that thread).
    static FAIL_TOKIO_TEST: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A test of its own (it passes when run alone) and, called from the test
/// below with the flag set, the shape `#[tokio::test]` hands over.
#[tokio::test]
#[exit_path]
async fn tokio_test_shape() -> Result<(), io::Error> {
    tokio::task::yield_now().await;
    if FAIL_TOKIO_TEST.with(std::cell::Cell::get) {
        my_bail!("failing on purpose"); // @tokio_test_bail
    }
    Ok(())
}

#[test]
fn tokio_test_above_exit_path_records_the_users_sites() {
    FAIL_TOKIO_TEST.with(|f| f.set(true));
    let (r, recs) = capture(tokio_test_shape);
    FAIL_TOKIO_TEST.with(|f| f.set(false));
    assert!(r.is_err());
    let rec = one(&recs);
    assert_eq!(rec.field("fn"), "exit_path::tokio_test_shape");
    check(&rec, "macro", line_of("@tokio_test_bail"), "err");
    assert_eq!(rec.field("error"), "failing on purpose");
}

/// The only test of this binary that touches the process-wide sink: the
/// record reaches the JSONL file with the schema's keys.
#[test]
fn the_record_reaches_the_jsonl_file() {
    use tracing_subscriber::prelude::*;
    let dir = std::env::temp_dir().join(format!("lastwords-exit-path-{}", std::process::id()));
    let path = dir.join("exit.jsonl");
    let _ = std::fs::remove_file(&path); // a leftover from an earlier run
    let layer = lastwords::init()
        .path(&path)
        .mirror(false)
        .layer()
        .expect("layer");
    let subscriber = tracing_subscriber::registry().with(layer);
    let r = tracing::subscriber::with_default(subscriber, || several_q("1", "zz"));
    assert!(r.is_err());
    let text = std::fs::read_to_string(&path).unwrap();
    let recs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["kind"] == "fn_exit")
        .collect();
    assert_eq!(recs.len(), 1, "{text}");
    let rec = &recs[0];
    assert_eq!(rec["level"], "ERROR");
    assert_eq!(rec["target"], "exit_path");
    assert_eq!(rec["fn"], "exit_path::several_q");
    assert_eq!(rec["site"], "?");
    assert_eq!(rec["line"], line_of("@q2"));
    assert_eq!(rec["outcome"], "err");
    assert_eq!(rec["error"], "invalid digit found in string");
    assert!(rec["elapsed_us"].is_u64());
    assert_eq!(rec["unexpected"], false);
    let message = rec["message"].as_str().unwrap();
    assert!(
        message.starts_with("exit_path::several_q left via `?` at tests/exit_path.rs:"),
        "{message}"
    );
    let order = [
        "\"message\"",
        "\"kind\"",
        "\"fn\"",
        "\"site\"",
        "\"file\"",
        "\"line\"",
        "\"col\"",
        "\"outcome\"",
        "\"error\"",
        "\"elapsed_us\"",
        "\"unexpected\"",
    ];
    let line = text.lines().find(|l| l.contains("\"fn_exit\"")).unwrap();
    let positions: Vec<usize> = order.iter().map(|k| line.find(k).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{line}");
}

/// An alias whose name says nothing of the type.
type Lookup = Option<u32>;

#[exit_path]
fn spelled_string(n: u32) -> String {
    n.to_string() // @spelled_string
}

#[exit_path]
fn spelled_ref(s: &str) -> &str {
    s.trim() // @spelled_ref
}

#[exit_path]
fn spelled_tuple(n: u32) -> (u32, bool) {
    (n, n > 1) // @spelled_tuple
}

#[exit_path]
fn aliased_option(n: u32) -> Lookup {
    let m = n.checked_sub(1)?; // @aliased_q
    Some(m)
}

#[exit_path]
fn option_of_ref(v: &[u32]) -> Option<&u32> {
    let first = v.first()?; // @option_ref_q
    Some(first)
}

/// Where the spelling of the return type tells the outcome, it is used in
/// place of the probe; where it does not (an alias), the probe decides: the
/// records are the same either way.
#[test]
fn spelled_return_types_and_aliases_classify_alike() {
    let (r, recs) = capture(|| spelled_string(7));
    assert_eq!(r, "7");
    check(&one(&recs), "tail", line_of("@spelled_string"), "returned");
    let (r, recs) = capture(|| spelled_ref(" a "));
    assert_eq!(r, "a");
    check(&one(&recs), "tail", line_of("@spelled_ref"), "returned");
    let (_, recs) = capture(|| spelled_tuple(2));
    check(&one(&recs), "tail", line_of("@spelled_tuple"), "returned");
    let (r, recs) = capture(|| aliased_option(0));
    assert_eq!(r, None);
    check(&one(&recs), "?", line_of("@aliased_q"), "none");
    let (r, recs) = capture(|| option_of_ref(&[]));
    assert_eq!(r, None);
    check(&one(&recs), "?", line_of("@option_ref_q"), "none");
    let (r, _) = capture(|| option_of_ref(&[4]));
    assert_eq!(r, Some(&4));
}

/// Errors of every kind the probe tells apart, each with only what it can
/// show.
mod kinds {
    use std::fmt;

    #[derive(Debug)]
    pub struct DisplayOnly;
    impl fmt::Display for DisplayOnly {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("shown by Display")
        }
    }

    #[derive(Debug)]
    pub struct DebugOnly;

    pub struct Nothing;

    /// Takes each error below, so that each `?` compiles.
    pub struct Any;
    macro_rules! from {
        ($($t:ty),*) => {$(
            impl From<$t> for Any {
                fn from(_: $t) -> Any {
                    Any
                }
            }
        )*};
    }
    from!(
        DisplayOnly,
        DebugOnly,
        Nothing,
        Box<dyn std::error::Error + Send + Sync>,
        std::io::Error
    );
}

#[exit_path]
fn question_kind(which: u8) -> Result<(), kinds::Any> {
    match which {
        0 => Err(kinds::DisplayOnly)?, // @kind_display
        1 => Err(kinds::DebugOnly)?,   // @kind_debug
        2 => Err(kinds::Nothing)?,     // @kind_nothing
        3 => Err(Box::<dyn std::error::Error + Send + Sync>::from("boxed"))?, // @kind_boxed
        _ => Err(io::Error::other("io"))?, // @kind_io
    }
    Ok(())
}

/// A `?` records its operand's error as the probe's levels allow: the
/// `source()` chain of an `Error` (boxed or not), else `Display`, else
/// `Debug`, else no text.
#[test]
fn a_question_mark_shows_what_its_error_can_show() {
    for (which, marker, error) in [
        (0, "@kind_display", Some("shown by Display")),
        (1, "@kind_debug", Some("DebugOnly")),
        (2, "@kind_nothing", None),
        (3, "@kind_boxed", Some("boxed")),
        (4, "@kind_io", Some("io")),
    ] {
        let (r, recs) = capture(|| question_kind(which));
        assert!(r.is_err());
        let rec = one(&recs);
        check(&rec, "?", line_of(marker), "err");
        match error {
            Some(text) => assert_eq!(rec.field("error"), text, "{rec:#?}"),
            None => assert!(rec.get("error").is_none(), "{rec:#?}"),
        }
    }
}
