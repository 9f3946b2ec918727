//! Each call records exactly one `fn_exit`, at the site that was really
//! taken: the hiding macro that fired, a `?` inside a macro's arguments, a
//! `#[cfg]`'d tail, the user's sites under `#[tracing::instrument]`, the
//! outcome of a `Poll` or `ControlFlow` `?`, and a hidden `return` during
//! another panic's unwinding.

mod support;

use std::ops::ControlFlow;
use std::task::Poll;

use lastwords::exit_path;
use support::{capture, exits, Rec};

fn one(recs: &[Rec]) -> Rec {
    let exits = exits(recs);
    assert_eq!(exits.len(), 1, "expected exactly one fn_exit: {exits:#?}");
    exits.into_iter().next().unwrap()
}

/// The line of this file whose comment ends with `MARKER`.
fn line_of(marker: &str) -> u32 {
    support::marked_line(include_str!("exit_sites.rs"), marker)
}

fn check(rec: &Rec, site: &str, marker: &str, outcome: &str) {
    assert_eq!(rec.field("site"), site, "{rec:#?}");
    assert_eq!(rec.field("line"), line_of(marker).to_string(), "{rec:#?}");
    assert_eq!(rec.field("outcome"), outcome, "{rec:#?}");
}

macro_rules! fail {
    ($msg:expr) => {
        return Err(String::from($msg))
    };
}

/// Expands to nothing that exits.
macro_rules! noop {
    () => {};
}

#[exit_path]
fn two_in_one_match(n: u32) -> Result<u32, String> {
    match n {
        0 => fail!("zero"), // @match_zero
        1 => fail!("one"),  // @match_one
        _ => {}
    }
    Ok(n)
}

#[exit_path]
fn question_in_vec(o: Option<u32>) -> Option<Vec<u32>> {
    Some(vec![o?; 2]) // @vec_q
}

#[exit_path]
fn question_in_matches(r: Result<u32, String>) -> Result<bool, String> {
    Ok(matches!(r?, 1 | 2)) // @matches_q
}

#[exit_path]
fn question_in_info(r: Result<u32, String>) -> Result<(), String> {
    tracing::info!(value = r?, "got it"); // @info_q
    Ok(())
}

#[exit_path]
fn noop_then_question(r: Result<u32, String>) -> Result<u32, String> {
    noop!();
    let v = r?; // @after_noop
    Ok(v)
}

#[exit_path]
fn cfg_tail(v: &mut Vec<u32>) {
    v.push(1);
    #[cfg(any())]
    {
        v.push(2)
    }
} // @cfg_close

#[exit_path]
fn cfg_tail_kept(v: &mut Vec<u32>) -> usize {
    v.push(1);
    #[cfg(not(any()))]
    {
        v.len() // @cfg_kept
    }
}

#[exit_path]
fn no_tail(v: &mut Vec<u32>) {
    v.push(1);
} // @no_tail_close

#[tracing::instrument(skip(v))]
#[exit_path]
fn no_tail_instrumented(v: &mut Vec<u32>) {
    v.push(1);
} // @no_tail_instrumented_close

#[exit_path]
#[expect(clippy::needless_return)]
fn ends_with_return(v: &mut Vec<u32>) -> usize {
    v.push(1);
    return v.len(); // @ends_with_return
}

#[exit_path]
fn ends_with_cfg_return(v: &mut Vec<u32>) {
    v.push(1);
    #[cfg(any())]
    return;
} // @cfg_return_close

#[tracing::instrument]
#[exit_path]
async fn instrumented_async(s: String) -> Result<u32, std::num::ParseIntError> {
    tokio::task::yield_now().await;
    let n = s.parse::<u32>()?; // @instrumented_q
    Ok(n) // @instrumented_tail
}

#[tracing::instrument(err)]
#[exit_path]
fn instrumented_err(s: &str) -> Result<u32, std::num::ParseIntError> {
    let n = s.parse::<u32>()?; // @instrumented_err_q
    Ok(n)
}

#[exit_path]
fn poll_q(p: Poll<Result<u32, String>>) -> Poll<Result<u32, String>> {
    let v = p?; // @poll_q
    v.map(Ok)
}

#[exit_path]
fn control_q(c: ControlFlow<&'static str, u32>) -> ControlFlow<&'static str, u32> {
    let v = c?; // @control_q
    ControlFlow::Continue(v + 1)
}

#[exit_path]
fn hidden_return_in_drop(n: u32) -> Result<u32, String> {
    if n == 0 {
        fail!("zero"); // @drop_fail
    }
    Ok(n)
}

/// `#[track_caller]` keeps the body in place: the hidden `return` is seen
/// only by the guard's drop, while the thread is panicking.
#[exit_path]
#[track_caller]
fn hidden_return_in_drop_in_place(n: u32) -> Result<u32, String> {
    if n == 0 {
        fail!("zero"); // @drop_fail_in_place
    }
    Ok(n)
}

/// An async fn whose macros may hide a `return` runs its body as an inner
/// block whose value is seen: a hidden `return`'s too.
#[exit_path]
async fn async_bail(n: u32) -> anyhow::Result<u32> {
    tokio::task::yield_now().await;
    anyhow::ensure!(n > 0, "zero"); // @async_ensure
    if n == 1 {
        my_return!(); // @async_return
    }
    Ok(n) // @async_tail
}

/// A `return` the attribute cannot see, of an `Ok`.
macro_rules! my_return {
    () => {
        return Ok(1)
    };
}
use my_return;

/// Calls annotated fns from its `drop`, which runs during unwinding.
struct CallsOnDrop;

impl Drop for CallsOnDrop {
    fn drop(&mut self) {
        let _ = hidden_return_in_drop(0);
        let _ = hidden_return_in_drop_in_place(0);
    }
}

#[test]
fn the_hiding_macro_that_fired_is_recorded() {
    let (_, recs) = capture(|| two_in_one_match(1));
    let rec = one(&recs);
    check(&rec, "macro", "@match_one", "err");
    assert_eq!(rec.field("error"), "one");
    let (_, recs) = capture(|| two_in_one_match(0));
    check(&one(&recs), "macro", "@match_zero", "err");
}

#[test]
fn a_question_mark_in_macro_arguments_is_its_own_site() {
    let (r, recs) = capture(|| question_in_vec(None));
    assert_eq!(r, None);
    check(&one(&recs), "?", "@vec_q", "none");
    let (r, recs) = capture(|| question_in_matches(Err("bad".into())));
    assert!(r.is_err());
    let rec = one(&recs);
    check(&rec, "?", "@matches_q", "err");
    assert_eq!(rec.field("error"), "bad");
    let (_, recs) = capture(|| question_in_info(Err("worse".into())));
    let rec = one(&recs);
    check(&rec, "?", "@info_q", "err");
    assert_eq!(rec.field("error"), "worse");
    let (_, recs) = capture(|| noop_then_question(Err("after".into())));
    check(&one(&recs), "?", "@after_noop", "err");
}

#[test]
fn a_cfg_tail_is_recorded_where_the_body_ends() {
    let mut v = vec![];
    let ((), recs) = capture(|| cfg_tail(&mut v));
    check(&one(&recs), "tail", "@cfg_close", "returned");
    let (n, recs) = capture(|| cfg_tail_kept(&mut v));
    assert_eq!(n, 2);
    check(&one(&recs), "tail", "@cfg_kept", "returned");
}

#[test]
fn a_body_without_a_tail_is_recorded_at_its_closing_brace() {
    let mut v = vec![];
    let ((), recs) = capture(|| no_tail(&mut v));
    let rec = one(&recs);
    check(&rec, "tail", "@no_tail_close", "returned");
    assert_eq!(rec.field("col"), "1", "{rec:#?}");
    let ((), recs) = capture(|| no_tail_instrumented(&mut v));
    let rec = one(&recs);
    check(&rec, "tail", "@no_tail_instrumented_close", "returned");
    assert_eq!(rec.field("col"), "1", "{rec:#?}");
    assert_eq!(v, [1, 1]);
}

#[test]
fn a_body_ending_with_return_records_that_return_once() {
    let mut v = vec![];
    let (n, recs) = capture(|| ends_with_return(&mut v));
    assert_eq!(n, 1);
    check(&one(&recs), "return", "@ends_with_return", "returned");
    let ((), recs) = capture(|| ends_with_cfg_return(&mut v));
    check(&one(&recs), "tail", "@cfg_return_close", "returned");
    assert_eq!(v, [1, 1]);
}

#[test]
fn the_users_sites_under_tracing_instrument() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (r, recs) = capture(|| rt.block_on(instrumented_async("x".into())));
    assert!(r.is_err());
    check(&one(&recs), "?", "@instrumented_q", "err");
    let (r, recs) = capture(|| rt.block_on(instrumented_async("7".into())));
    assert_eq!(r, Ok(7));
    check(&one(&recs), "tail", "@instrumented_tail", "ok");
    let (r, recs) = capture(|| instrumented_err("x"));
    assert!(r.is_err());
    check(&one(&recs), "?", "@instrumented_err_q", "err");
}

#[test]
fn poll_and_control_flow_question_marks_carry_their_outcome() {
    let (r, recs) = capture(|| poll_q(Poll::Ready(Err("not ready".into()))));
    assert_eq!(r, Poll::Ready(Err("not ready".into())));
    let rec = one(&recs);
    check(&rec, "?", "@poll_q", "err");
    assert_eq!(rec.field("error"), "not ready");
    let (r, recs) = capture(|| control_q(ControlFlow::Break("stop")));
    assert_eq!(r, ControlFlow::Break("stop"));
    check(&one(&recs), "?", "@control_q", "returned");
}

#[test]
fn a_hidden_return_during_unwinding_is_not_an_unwind() {
    let (_, recs) = capture(|| {
        std::panic::catch_unwind(|| {
            let _guard = CallsOnDrop;
            panic!("first");
        })
    });
    let exits = exits(&recs);
    assert_eq!(exits.len(), 2, "{exits:#?}");
    check(&exits[0], "macro", "@drop_fail", "err");
    check(&exits[1], "macro", "@drop_fail_in_place", "unknown");
}

#[test]
fn an_async_fns_hidden_exit_is_recorded_with_its_value() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (r, recs) = capture(|| rt.block_on(async_bail(0)));
    assert!(r.is_err());
    let rec = one(&recs);
    check(&rec, "macro", "@async_ensure", "err");
    assert_eq!(rec.level, tracing::Level::ERROR);
    assert_eq!(rec.field("error"), "zero");
    let (r, recs) = capture(|| rt.block_on(async_bail(1)));
    assert_eq!(r.unwrap(), 1);
    check(&one(&recs), "macro", "@async_return", "ok");
    let (r, recs) = capture(|| rt.block_on(async_bail(2)));
    assert_eq!(r.unwrap(), 2);
    check(&one(&recs), "tail", "@async_tail", "ok");
}
