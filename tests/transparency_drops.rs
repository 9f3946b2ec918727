//! `#[exit_path]` keeps when things drop: parameters after the locals, from
//! the last to the first, struct parameters whole (also when the body runs
//! in a closure or an inner async block), and an edition 2021 tail's
//! temporaries after the locals. Each function is defined annotated and
//! plain, and the two drop logs are compared.

#![deny(warnings)]

mod support;

use std::cell::RefCell;
use std::sync::Mutex;

thread_local! {
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn log(what: impl Into<String>) {
    LOG.with(|l| l.borrow_mut().push(what.into()));
}

fn take_log() -> Vec<String> {
    LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

/// Logs its name when dropped.
pub struct D(pub &'static str);

impl Drop for D {
    fn drop(&mut self) {
        log(self.0);
    }
}

impl std::fmt::Display for D {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Uses `d` by reference: a `move` closure or async block capturing it
/// takes exactly it, in the order of first use.
pub fn len(d: &D) -> usize {
    d.0.len()
}

/// A struct parameter of which the bodies use one field: a closure that
/// captured only that field would drop the two fields apart.
pub struct Pair {
    pub a: D,
    pub b: D,
}

/// A local that looks, when dropped, whether the mutex is still locked.
pub struct Peek<'a>(pub &'a Mutex<Vec<u32>>);

impl Drop for Peek<'_> {
    fn drop(&mut self) {
        log(if self.0.try_lock().is_ok() {
            "local: unlocked"
        } else {
            "local: locked"
        });
    }
}

macro_rules! bail {
    ($msg:expr) => {
        return Err(String::from($msg))
    };
}

macro_rules! both {
    ($($item:item)*) => {
        mod annotated {
            #![allow(dead_code)]
            use super::*;
            $(#[lastwords::exit_path] $item)*
        }
        mod plain {
            #![allow(dead_code)]
            use super::*;
            $($item)*
        }
    };
}

both! {
    pub fn sync_plain(x: D, y: D, p: Pair) -> usize {
        let _local = D("local");
        len(&p.b) + len(&y) + len(&x)
    }

    /// Runs in a closure; `x` and `y` are named only inside format
    /// strings, and still drop in their order.
    pub fn inline_format(x: D, y: D, p: Pair, fail: bool) -> Result<String, String> {
        let _local = D("local");
        if fail {
            bail!("failed");
        }
        Ok(format!("{x}{y}{}", len(&p.a)))
    }

    /// Runs in a closure: the macro may hide a `return`.
    pub fn sync_closure(x: D, y: D, p: Pair, fail: bool) -> Result<usize, String> {
        let _local = D("local");
        if fail {
            bail!("failed");
        }
        Ok(len(&p.b) + len(&y) + len(&x))
    }

    /// Runs as an inner async block too (a macro may hide a `return`).
    pub async fn async_in_place(x: D, y: D, p: Pair, fail: bool) -> Result<usize, String> {
        let _local = D("local");
        tokio::task::yield_now().await;
        if fail {
            bail!("failed");
        }
        Ok(len(&p.b) + len(&y) + len(&x))
    }

    /// A macro that also awaits inside (`select!`).
    pub async fn async_inner(x: D, y: D, p: Pair, fail: bool) -> Result<usize, String> {
        let _local = D("local");
        tokio::select! {
            v = async { fail } => {
                if v {
                    return Err("failed".into());
                }
            }
        }
        Ok(len(&p.b) + len(&y) + len(&x))
    }

    pub fn tail_temporary(m: &Mutex<Vec<u32>>) -> usize {
        let _peek = Peek(m);
        m.lock().unwrap().len()
    }
}

fn args() -> (D, D, Pair) {
    (
        D("x"),
        D("y"),
        Pair {
            a: D("p.a"),
            b: D("p.b"),
        },
    )
}

/// Runs `f` on fresh arguments and returns its result and the drop log.
fn run<R>(f: impl FnOnce(D, D, Pair) -> R) -> (R, Vec<String>) {
    let (x, y, p) = args();
    let r = f(x, y, p);
    (r, take_log())
}

#[test]
fn parameters_and_tail_temporaries_drop_as_without_the_attribute() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ((), recs) = support::capture(|| {
        let plain = run(plain::sync_plain);
        assert_eq!(plain.1, ["local", "p.a", "p.b", "y", "x"]);
        assert_eq!(run(annotated::sync_plain), plain);
        for fail in [false, true] {
            let plain = run(|x, y, p| plain::inline_format(x, y, p, fail));
            assert_eq!(
                run(|x, y, p| annotated::inline_format(x, y, p, fail)),
                plain
            );
            let plain = run(|x, y, p| plain::sync_closure(x, y, p, fail));
            assert_eq!(run(|x, y, p| annotated::sync_closure(x, y, p, fail)), plain);
            let plain = run(|x, y, p| rt.block_on(plain::async_in_place(x, y, p, fail)));
            assert_eq!(
                run(|x, y, p| rt.block_on(annotated::async_in_place(x, y, p, fail))),
                plain
            );
            let plain = run(|x, y, p| rt.block_on(plain::async_inner(x, y, p, fail)));
            assert_eq!(
                run(|x, y, p| rt.block_on(annotated::async_inner(x, y, p, fail))),
                plain
            );
        }
        let m = Mutex::new(vec![1]);
        assert_eq!(plain::tail_temporary(&m), 1);
        let plain = take_log();
        assert_eq!(plain, ["local: locked"]);
        assert_eq!(annotated::tail_temporary(&m), 1);
        assert_eq!(take_log(), plain);
    });
    // The hidden `return` of the in-place async fn is a `macro` exit, not a
    // cancellation.
    let exits = support::exits(&recs);
    let hidden: Vec<_> = exits
        .iter()
        .filter(|r| r.field("fn").ends_with("async_in_place"))
        .map(|r| (r.field("site"), r.field("outcome")))
        .collect();
    assert_eq!(hidden, [("tail", "ok"), ("macro", "err")]);
}
