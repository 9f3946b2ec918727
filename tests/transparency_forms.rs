//! Code that compiles without `#[exit_path]` compiles with it, and returns
//! the same: closures returned through `impl Fn*`, attributes on the tail,
//! borrowed error types, hidden `return`s that need a coercion, reborrows
//! through a `&mut` held by value, item macros as the last statement, a
//! run of `#[cfg]`'d blocks at the end, an item last in the body, a
//! labeled `loop` as the tail, an error whose type only the `?`
//! decides, a
//! user's own `block_on(body)`, and a renamed crate path. Each function is
//! defined twice, `annotated::f` and `plain::f`, and both are called.

#![deny(warnings, unused_qualifications)]

#[allow(dead_code)]
mod core {}

mod support;

extern crate lastwords as lw;

/// Defines each function twice: `annotated::f` with the attribute and
/// `plain::f` without.
macro_rules! both {
    ($($item:item)*) => {
        mod annotated {
            #![forbid(unsafe_code)]
            #![allow(dead_code)]
            use super::*;
            $(#[lastwords::exit_path] $item)*
        }
        mod plain {
            #![forbid(unsafe_code)]
            #![allow(dead_code)]
            use super::*;
            $($item)*
        }
    };
}

use std::error::Error;
use std::fmt::{self, Debug, Display};
use std::sync::{LockResult, Mutex, MutexGuard};

/// A `return` the attribute cannot see, whose value needs a coercion.
macro_rules! return_boxed {
    ($x:expr) => {
        return Box::new($x)
    };
}

/// A `return` the attribute cannot see, whose value needs an unsizing.
macro_rules! return_empty {
    () => {
        return &[]
    };
}

macro_rules! give_up {
    () => {
        return Err(String::from("gave up"))
    };
}

/// An error that borrows from its input.
#[derive(Debug, PartialEq)]
pub struct BorrowedErr<'a>(&'a str);

impl Display for BorrowedErr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad input {:?}", self.0)
    }
}

impl Error for BorrowedErr<'_> {}

#[deprecated(note = "only here to be allowed at the tail")]
pub fn old_sum(v: &[u32]) -> u32 {
    v.iter().sum()
}

/// Holds a `&mut` by value, so a reborrow of it is not spelled in the inputs.
pub struct W<'a>(pub &'a mut Vec<u32>);

/// Owned or borrowed bytes: a `match` whose arms meet only at `&[u8]`.
pub enum Bytes<'a> {
    Owned(Box<[u8]>),
    Borrowed(&'a [u8]),
}

/// An error whose type argument only the `?`'s conversion decides, and
/// which is an `Error` only for some of them.
#[derive(Debug, PartialEq)]
pub struct NoneLike<T>(pub Option<T>);

impl<T> Display for NoneLike<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no element")
    }
}

impl<T: Debug> Error for NoneLike<T> {}

pub struct Entry {
    hash: std::cell::Cell<u64>,
}

both! {
    pub fn by_len() -> impl Fn(&str) -> usize { |s| s.len() }

    pub fn pusher() -> impl FnMut(&mut Vec<u32>) { |v| v.push(1) }

    #[allow(clippy::needless_return)]
    pub fn early_closure(n: usize) -> impl Fn(&str) -> usize {
        return move |s| s.len().min(n);
    }

    pub fn same() -> impl Fn(&str) -> &str { |s| s }

    pub fn hasher<'e>(entries: &'e [Entry]) -> impl Fn(&usize) -> u64 + 'e {
        move |&i| entries[i].hash.get()
    }

    pub fn boxed_closure() -> Box<dyn Fn(&str) -> usize> { Box::new(|s| s.len()) }

    pub fn tail_attr(v: &[u32]) -> u32 {
        let doubled: Vec<u32> = v.iter().map(|x| x * 2).collect();
        #[allow(deprecated)]
        old_sum(&doubled)
    }

    pub fn borrowed_err(input: &str) -> Result<u32, BorrowedErr<'_>> {
        let n = input.parse().map_err(|_| BorrowedErr(input))?;
        Ok(n)
    }

    pub fn lock_len(m: &Mutex<Vec<u32>>) -> LockResult<MutexGuard<'_, Vec<u32>>> {
        m.lock()
    }

    pub fn generic_err<E: Error>(r: Result<u32, E>) -> Result<u32, E> {
        let n = r?;
        Ok(n + 1)
    }

    pub fn hidden_box(x: u32) -> Box<dyn Debug> {
        if x > 1 {
            return_boxed!(x);
        }
        Box::new("small")
    }

    pub fn hidden_empty(x: u32) -> &'static [u8] {
        if x > 1 {
            return_empty!();
        }
        b"ab"
    }

    pub fn reborrow(w: W<'_>) -> Result<&mut u32, String> {
        if w.0.is_empty() {
            give_up!();
        }
        Ok(&mut w.0[0])
    }

    pub fn item_macro_last(n: u32) {
        let _ = n;
        thread_local! { static SEEN: u32 = const { 0 }; }
    }

    pub fn item_last(n: u32) {
        let _ = n;
        struct Seen;
        impl Seen {}
    }

    pub fn labeled_loop_tail(n: u32) -> u32 {
        let mut i = 0;
        'counting: loop {
            i += 1;
            if i == n {
                break 'counting i * 2;
            }
        }
    }

    pub fn own_block_on(n: u32) -> u32 {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let body = async { n + 1 };
        rt.block_on(body)
    }

    pub fn late_inferred(s: &str) -> Result<i32, String> {
        let c: Celsius = s.parse()?;
        Ok(c.0)
    }

    pub fn late_inferred_arg(s: &str) -> Result<i32, String> {
        Ok(degrees(s.parse()?))
    }

    pub fn cfg_run(x: u32) -> u32 {
        let y = x + 1;
        #[cfg(not(unix))]
        {
            y
        }
        #[cfg(unix)]
        {
            #[cfg(all())]
            {
                y * 2
            }
            #[cfg(any())]
            {
                y * 3
            }
        }
    }

    pub fn cfg_run_coerced<'a>(b: &'a Bytes<'a>) -> &'a [u8] {
        #[cfg(unix)]
        {
            match b {
                Bytes::Owned(x) => x,
                Bytes::Borrowed(x) => x,
            }
        }
        #[cfg(not(unix))]
        {
            &[]
        }
    }

    pub fn first_of<I: Iterator>(mut it: I) -> Result<I::Item, NoneLike<I::Item>> {
        let first = it.next().ok_or(NoneLike(None))?;
        Ok(first)
    }

    pub async fn select_box(fail: bool) -> Result<u32, Box<dyn Error + Send + Sync>> {
        tokio::select! {
            v = async { fail } => {
                if v {
                    return Err(Box::new(fmt::Error));
                }
            }
        }
        Ok(1)
    }
}

/// A `FromStr` whose error is not an `Error`: the `?` operand's error type
/// is known only once the `?`'s value meets `let c: Celsius`.
#[derive(Debug, PartialEq)]
pub struct Celsius(i32);

impl std::str::FromStr for Celsius {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim_end_matches('C')
            .parse()
            .map(Celsius)
            .map_err(|_| format!("not a temperature: {s}"))
    }
}

pub fn degrees(c: Celsius) -> i32 {
    c.0
}

/// The crate found through `crate = path` when it is renamed.
#[lw::exit_path(crate = lw)]
fn renamed(n: u32) -> Result<u32, String> {
    if n == 0 {
        return Err("zero".into());
    }
    Ok(n)
}

#[test]
fn annotated_code_compiles_and_returns_what_the_plain_code_returns() {
    let ((), recs) = support::capture(|| {
        assert_eq!(annotated::by_len()("abc"), plain::by_len()("abc"));
        let (mut a, mut b) = (vec![], vec![]);
        annotated::pusher()(&mut a);
        plain::pusher()(&mut b);
        assert_eq!(a, b);
        assert_eq!(annotated::same()("x"), plain::same()("x"));
        assert_eq!(
            annotated::early_closure(2)("abc"),
            plain::early_closure(2)("abc")
        );
        let entries = [Entry {
            hash: std::cell::Cell::new(7),
        }];
        assert_eq!(annotated::hasher(&entries)(&0), plain::hasher(&entries)(&0));
        assert_eq!(
            annotated::boxed_closure()("ab"),
            plain::boxed_closure()("ab")
        );
        assert_eq!(annotated::tail_attr(&[1, 2]), plain::tail_attr(&[1, 2]));
        for input in ["12", "x"] {
            assert_eq!(annotated::borrowed_err(input), plain::borrowed_err(input));
        }
        let m = Mutex::new(vec![1, 2]);
        assert_eq!(annotated::lock_len(&m).unwrap().len(), 2);
        assert_eq!(plain::lock_len(&m).unwrap().len(), 2);
        for r in [Ok(1), Err(fmt::Error)] {
            assert_eq!(annotated::generic_err(r), plain::generic_err(r));
        }
        for x in [1, 5] {
            assert_eq!(
                format!("{:?}", annotated::hidden_box(x)),
                format!("{:?}", plain::hidden_box(x))
            );
            assert_eq!(annotated::hidden_empty(x), plain::hidden_empty(x));
        }
        let (mut a, mut b) = (vec![3], vec![3]);
        *annotated::reborrow(W(&mut a)).unwrap() += 1;
        *plain::reborrow(W(&mut b)).unwrap() += 1;
        assert_eq!(a, b);
        assert_eq!(
            annotated::reborrow(W(&mut vec![])),
            plain::reborrow(W(&mut vec![]))
        );
        annotated::item_macro_last(1);
        annotated::item_last(1);
        assert_eq!(annotated::labeled_loop_tail(3), plain::labeled_loop_tail(3));
        assert_eq!(annotated::own_block_on(1), plain::own_block_on(1));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for fail in [false, true] {
            assert_eq!(
                rt.block_on(annotated::select_box(fail))
                    .map_err(|e| e.to_string()),
                rt.block_on(plain::select_box(fail))
                    .map_err(|e| e.to_string())
            );
        }
        for s in ["21C", "warm"] {
            assert_eq!(annotated::late_inferred(s), plain::late_inferred(s));
            assert_eq!(annotated::late_inferred_arg(s), plain::late_inferred_arg(s));
        }
        assert_eq!(annotated::cfg_run(2), plain::cfg_run(2));
        for b in [Bytes::Owned(Box::new([1, 2])), Bytes::Borrowed(&[3])] {
            assert_eq!(annotated::cfg_run_coerced(&b), plain::cfg_run_coerced(&b));
        }
        for v in [vec![], vec![4]] {
            assert_eq!(
                annotated::first_of(v.clone().into_iter()),
                plain::first_of(v.into_iter())
            );
        }
        assert_eq!(renamed(0), Err("zero".to_string()));
        assert_eq!(renamed(2), Ok(2));
    });
    let exits = support::exits(&recs);
    let by_fn = |name: &str| {
        exits
            .iter()
            .filter(|r| r.field("fn").ends_with(name))
            .collect::<Vec<_>>()
    };
    // A borrowed error is recorded with its text.
    let borrowed = by_fn("::borrowed_err");
    assert_eq!(borrowed.len(), 2);
    assert_eq!(borrowed[1].field("outcome"), "err");
    assert_eq!(borrowed[1].field("error"), "bad input \"x\"");
    // A hidden `return` is recorded with its value, once.
    let hidden = by_fn("::hidden_box");
    assert_eq!(hidden.len(), 2);
    assert_eq!(hidden[1].field("site"), "macro");
    // A user's own `block_on(body)` is their tail.
    let own = by_fn("::own_block_on");
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].field("site"), "tail");
    // The closures' own tails: once per call, at the tail.
    let closures = by_fn("::by_len");
    assert_eq!(closures.len(), 1);
    assert_eq!(closures[0].field("site"), "tail");
    let early: Vec<_> = by_fn("::early_closure")
        .iter()
        .map(|r| (r.field("site"), r.field("outcome")))
        .collect();
    assert_eq!(early, [("return", "returned")]);
    assert_eq!(by_fn("::renamed").len(), 2);
    // A run of `#[cfg]`'d blocks at the end: whichever is left is the tail.
    let run = by_fn("::cfg_run");
    assert_eq!(run.len(), 1);
    assert_eq!(run[0].field("site"), "tail");
    // A late-inferred error: shown as itself, whether a `let` names the
    // target or only the `?`'s use decides it.
    let late = by_fn("::late_inferred");
    assert_eq!(late.len(), 2);
    assert_eq!(late[1].field("error"), "not a temperature: warm");
    let late = by_fn("::late_inferred_arg");
    assert_eq!(late[1].field("error"), "not a temperature: warm");
    // An error built in place for a `?`: shown by its `Display`.
    let first = by_fn("::first_of");
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].field("site"), "?");
    assert_eq!(first[0].field("error"), "no element");
    // An item last in the body: no tail, the body falls off its end.
    let item_last = by_fn("::item_last");
    assert_eq!(item_last.len(), 1);
    assert_eq!(item_last[0].field("site"), "tail");
    // A labeled `loop` that breaks with a value is the tail.
    let labeled = by_fn("::labeled_loop_tail");
    assert_eq!(labeled.len(), 1);
    assert_eq!(labeled[0].field("site"), "tail");
    // One record per annotated call.
    assert_eq!(
        exits.len(),
        35,
        "{:#?}",
        exits.iter().map(|r| r.field("message")).collect::<Vec<_>>()
    );
}
