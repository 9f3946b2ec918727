//! A `?` whose operand's error type the compiler learns only after the `?`
//! (`take(s.parse()?)`, `let t = s.parse()?; take(t)`): the plain code
//! compiles whatever that error type is (no `Debug`, no `Display`), and
//! the record shows the error as well as its type lets it, as for any
//! other `?`.

#![deny(warnings)]

mod support;

use std::num::ParseIntError;

use lastwords::exit_path;
use support::{capture, Rec};

/// An error type that shows nothing: no `Debug`, no `Display`.
pub struct Opaque;

pub struct Thing(u32);

impl std::str::FromStr for Thing {
    type Err = Opaque;
    fn from_str(s: &str) -> Result<Thing, Opaque> {
        s.parse().map(Thing).map_err(|_| Opaque)
    }
}

fn take(t: Thing) -> u32 {
    t.0
}

fn take_u8(n: u8) -> u32 {
    n.into()
}

macro_rules! fail {
    ($e:expr) => {
        return Err($e)
    };
}

fn one(recs: &[Rec]) -> Rec {
    let exits = support::exits(recs);
    assert_eq!(exits.len(), 1, "{exits:#?}");
    exits.into_iter().next().unwrap()
}

fn line_of(marker: &str) -> u32 {
    support::marked_line(include_str!("late_question.rs"), marker)
}

/// A `?` record at `marker` with error text `error` (none: no field).
fn check(rec: &Rec, marker: &str, error: Option<&str>) {
    assert_eq!(rec.field("site"), "?", "{rec:#?}");
    assert_eq!(rec.field("outcome"), "err", "{rec:#?}");
    assert_eq!(rec.field("line"), line_of(marker).to_string(), "{rec:#?}");
    assert_eq!(rec.get("error"), error, "{rec:#?}");
}

#[exit_path]
fn in_an_argument(s: &str) -> Result<u32, ParseIntError> {
    let n = take_u8(s.parse()?); // @argument
    Ok(n)
}

#[exit_path]
fn in_the_tail(s: &str) -> Result<u32, ParseIntError> {
    Ok(take_u8(s.parse()?)) // @tail
}

#[exit_path]
fn typed_by_a_later_statement(s: &str) -> Result<u32, ParseIntError> {
    let n = s.parse()?; // @later
    Ok(take_u8(n))
}

#[exit_path]
#[allow(clippy::needless_return)] // the body ends in a `return`: what is tested
fn ending_in_a_return(s: &str) -> Result<u32, Box<dyn std::error::Error>> {
    let big: u64 = s.len() as u64 * 100;
    let n = take_u8(big.try_into()?); // @try_into
    return Ok(n);
}

#[exit_path]
fn in_a_loop_tail(s: &str) -> Result<u32, ParseIntError> {
    let mut parts = s.split(',');
    loop {
        let n = take_u8(parts.next().unwrap_or("").parse()?); // @loop
        if n == 0 {
            return Ok(n);
        }
    }
}

#[exit_path]
fn opaque_error(s: &str) -> Result<u32, Opaque> {
    let n = take(s.parse()?); // @opaque
    Ok(n)
}

/// Runs as a closure (a macro may hide a `return`).
#[exit_path]
fn in_a_closure_body(s: &str) -> Result<u32, Opaque> {
    if s.is_empty() {
        fail!(Opaque);
    }
    Ok(take(s.parse()?)) // @closure
}

#[exit_path]
async fn in_an_async_fn(s: &str) -> Result<u32, ParseIntError> {
    tokio::task::yield_now().await;
    let n = take_u8(s.parse()?); // @async
    Ok(n)
}

/// Polled (a macro may hide a `return`).
#[exit_path]
async fn in_a_polled_body(s: String) -> Result<u32, ParseIntError> {
    tokio::task::yield_now().await;
    if s.is_empty() {
        fail!("".parse::<u8>().unwrap_err());
    }
    Ok(take_u8(s.parse()?)) // @polled
}

/// A `#[cfg]` in the body may remove a late-typed `?`, which would leave
/// its classifier's type unknown: such a body's late `?` is recorded
/// without its error's text, and compiles.
#[exit_path]
fn with_a_cfg(s: &str) -> Result<u32, Opaque> {
    #[cfg(any())]
    let _removed = take(s.parse()?);
    let n = take(s.parse()?); // @cfg_kept
    Ok(n)
}

const INVALID: Option<&str> = Some("invalid digit found in string");

#[test]
fn a_late_typed_question_mark_shows_its_error_by_display() {
    let (r, recs) = capture(|| in_an_argument("x"));
    assert!(r.is_err());
    check(&one(&recs), "@argument", INVALID);
    let (r, recs) = capture(|| in_the_tail("x"));
    assert!(r.is_err());
    check(&one(&recs), "@tail", INVALID);
    let (r, recs) = capture(|| typed_by_a_later_statement("x"));
    assert!(r.is_err());
    check(&one(&recs), "@later", INVALID);
    let (r, recs) = capture(|| ending_in_a_return("xxx"));
    assert!(r.is_err());
    check(
        &one(&recs),
        "@try_into",
        Some("out of range integral type conversion attempted"),
    );
    let (r, recs) = capture(|| in_a_loop_tail("1,x"));
    assert!(r.is_err());
    check(&one(&recs), "@loop", INVALID);
}

#[test]
fn a_late_typed_question_mark_with_an_error_that_shows_nothing_compiles() {
    let (r, recs) = capture(|| opaque_error("x"));
    assert!(r.is_err());
    check(&one(&recs), "@opaque", None);
    let (r, recs) = capture(|| in_a_closure_body("x"));
    assert!(r.is_err());
    check(&one(&recs), "@closure", None);
    let (r, recs) = capture(|| with_a_cfg("x"));
    assert!(r.is_err());
    check(&one(&recs), "@cfg_kept", None);
    let (r, recs) = capture(|| in_a_closure_body("7"));
    assert_eq!(r.ok(), Some(7));
    assert_eq!(one(&recs).field("site"), "tail");
}

#[test]
fn a_late_typed_question_mark_in_async_bodies() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (r, recs) = capture(|| rt.block_on(in_an_async_fn("x")));
    assert!(r.is_err());
    check(&one(&recs), "@async", INVALID);
    let (r, recs) = capture(|| rt.block_on(in_a_polled_body("x".into())));
    assert!(r.is_err());
    check(&one(&recs), "@polled", INVALID);
}
