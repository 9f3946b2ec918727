//! `#[exit_path]` records exactly one `fn_exit` event per call, naming the
//! exit that was taken: site, position, outcome and error.

mod support;

use lastwords::exit_path;
use support::{capture, exits, Rec};

fn one(recs: &[Rec]) -> Rec {
    let exits = exits(recs);
    assert_eq!(exits.len(), 1, "expected exactly one fn_exit: {exits:#?}");
    exits.into_iter().next().unwrap()
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

static Q1: u32 = line!() + 4;
static Q2: u32 = line!() + 4;
#[exit_path]
fn several_q(a: &str, b: &str) -> Result<u32, std::num::ParseIntError> {
    let x = parse(a)?;
    let y = parse(b)?;
    Ok(x + y)
}
static TAIL_SEVERAL: u32 = line!() - 2;

#[test]
fn each_question_mark_reports_its_own_line() {
    let (r, recs) = capture(|| several_q("x", "1"));
    assert!(r.is_err());
    let rec = one(&recs);
    check(&rec, "?", Q1, "err");
    assert_eq!(rec.field("error"), "invalid digit found in string");
    assert_eq!(rec.field("col"), "21");

    let (_, recs) = capture(|| several_q("1", ""));
    let rec = one(&recs);
    check(&rec, "?", Q2, "err");
    assert_eq!(rec.field("error"), "cannot parse integer from empty string");

    let (r, recs) = capture(|| several_q("1", "2"));
    assert_eq!(r, Ok(3));
    let rec = one(&recs);
    check(&rec, "tail", TAIL_SEVERAL, "ok");
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
