//! Lints see annotated code as they see the plain code. The workspace's
//! `cargo clippy --all-targets -- -D warnings` gate checks this file:
//!
//! - no new warning: each fn below compiles under `deny(clippy::all,
//!   clippy::pedantic)` with nothing allowed for the expansion's sake
//!   (a diverging tail is not made a diverging sub-expression);
//! - the user's own lints still fire where they fired: each
//!   `#[expect(..)]` must be fulfilled, or the gate fails with
//!   `unfulfilled_lint_expectations`.
//!
//! `cargo test` compiles and runs it too, where rustc's own lints are
//! checked the same way.
//!
//! Under Clippy the attribute leaves the function as written (see the
//! macros' `clippy` module), so the lints about the very expression an exit
//! is rewritten from fire as they do without it: `needless_return`,
//! `let_and_return`, `needless_question_mark`, `unnecessary_wraps`. Under
//! rustc (`cargo test`, `cargo check`), rustc's lints check the expansion:
//! `#![deny(warnings)]` fails on any warning it would add.

#![deny(warnings, clippy::all, clippy::pedantic)]
#![allow(
    clippy::missing_panics_doc,
    clippy::missing_errors_doc,
    clippy::must_use_candidate
)]

use lastwords::exit_path;

#[exit_path]
pub fn todo_tail() -> u32 {
    todo!()
}

#[exit_path]
pub fn unreachable_tail(n: u32) -> u32 {
    if n > 1 {
        return n;
    }
    unreachable!("n is {n}")
}

#[exit_path]
pub fn exit_tail(code: i32) -> u32 {
    std::process::exit(code)
}

#[exit_path]
pub fn loop_tail(n: &mut u32) -> u32 {
    loop {
        *n += 1;
        if *n > 3 {
            return *n;
        }
    }
}

#[exit_path]
#[expect(clippy::unused_async)]
pub async fn unused_async(n: u32) -> u32 {
    n + 1
}

#[must_use]
pub struct Token;

#[exit_path]
pub fn must_use_question(r: Result<Token, String>) -> Result<(), String> {
    #[expect(unused_must_use)]
    {
        r?;
    }
    Ok(())
}

#[exit_path]
#[expect(clippy::needless_return)]
pub fn needless_return(n: u32) -> u32 {
    let m = n + 1;
    return m;
}

#[exit_path]
#[expect(clippy::needless_return)]
pub fn needless_return_of_a_call(n: u32) -> Option<u32> {
    if n == 0 {
        return None;
    }
    return Some(n - 1);
}

#[exit_path]
#[expect(clippy::let_and_return)]
pub fn let_and_return(n: u32) -> u32 {
    let m = n * 2;
    m
}

#[exit_path]
#[expect(clippy::needless_question_mark)]
pub fn needless_question_mark(r: Result<u32, String>) -> Result<u32, String> {
    Ok(r?)
}

#[exit_path]
#[expect(clippy::unnecessary_wraps)]
fn unnecessary_wraps(n: u32) -> Option<u32> {
    if n > 10 {
        return Some(10);
    }
    Some(n)
}

#[test]
fn the_annotated_fns_run() {
    assert_eq!(let_and_return(2), 4);
    assert_eq!(needless_question_mark(Ok(1)), Ok(1));
    assert_eq!(unnecessary_wraps(11), Some(10));
    let mut n = 0;
    assert_eq!(loop_tail(&mut n), 4);
    assert_eq!(unreachable_tail(2), 2);
    assert_eq!(must_use_question(Ok(Token)), Ok(()));
    assert!(std::panic::catch_unwind(todo_tail).is_err());
    drop(unused_async(1));
    assert_eq!(needless_return(1), 2);
    assert_eq!(needless_return_of_a_call(0), None);
    assert_eq!(needless_return_of_a_call(3), Some(2));
}
