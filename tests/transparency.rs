//! Annotating a function does not change what it does: every supported fn
//! form, annotated, compiles under `#![deny(warnings)]`,
//! `#![forbid(unsafe_code)]` (outside the one `unsafe fn`),
//! `#![deny(unused_qualifications)]` and a local `mod core {}` (the
//! expansions use absolute paths), and returns what its unannotated copy
//! returns.

#![deny(warnings, unused_qualifications)]
#![deny(clippy::pedantic)]
// These judge the user's own signatures, not the expansion.
#![allow(
    clippy::unnecessary_wraps,
    clippy::needless_pass_by_value,
    clippy::must_use_candidate,
    clippy::missing_errors_doc,
    clippy::too_many_lines
)]

#[allow(dead_code)]
mod core {}

mod support;

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

use std::fmt::Debug;
use std::pin::Pin;
use std::process::ExitCode;

/// A `return` the attribute cannot see: the body of a sync fn using it runs
/// in a closure, unless the result may borrow from a `&mut` input.
macro_rules! give_up {
    ($msg:expr) => {
        return Err(String::from($msg))
    };
}

pub struct Stack {
    items: Vec<u32>,
}

pub trait Source {
    fn next_item(&mut self) -> Option<u32>;
    fn twice(&mut self) -> Option<(u32, u32)> {
        let a = self.next_item()?;
        let b = self.next_item()?;
        Some((a, b))
    }
}

both! {
    pub fn free(a: u32, b: u32) -> u32 { a + b }

    pub fn unit(v: &mut Vec<u32>) { v.push(1); }

    pub fn early(v: &[u32]) -> Option<u32> {
        for &x in v {
            if x > 10 {
                return Some(x);
            }
        }
        let first = v.first()?;
        Some(*first)
    }

    pub fn parse_sum(a: &str, b: &str) -> Result<u64, std::num::ParseIntError> {
        let a: u64 = a.parse()?;
        let b = b.parse::<u64>()?;
        Ok(a + b)
    }

    pub fn convert(a: &str) -> Result<u8, Box<dyn std::error::Error + Send + Sync>> {
        let n: u32 = a.parse()?;
        let b = u8::try_from(n)?;
        Ok(b)
    }

    pub fn generic<T: Clone + Debug, U>(t: &T, u: U) -> (T, U) where U: Copy { (t.clone(), u) }

    pub fn longest<'a>(a: &'a str, b: &'a str) -> &'a str { if a.len() >= b.len() { a } else { b } }

    pub fn borrow_mut_into(v: &mut Vec<u32>) -> &mut u32 {
        if v.is_empty() {
            v.push(0);
        }
        let last = v.len() - 1;
        &mut v[last]
    }

    pub fn impl_arg(it: impl Iterator<Item = u32>) -> u32 { it.sum() }

    pub fn impl_ret(n: u32) -> impl Iterator<Item = u32> + Clone { (0..n).map(|x| x * 2) }

    pub fn impl_in_result(n: u32) -> Result<impl Debug, String> {
        if n == 0 {
            return Err("zero".to_string());
        }
        Ok(n)
    }

    pub fn recursive(n: u64) -> u64 { if n == 0 { 1 } else { n * recursive(n - 1) } }

    pub extern "C" fn c_abi(x: i32) -> i32 { x.wrapping_mul(3) }

    pub fn never(msg: &str) -> ! { panic!("{msg}") }

    pub fn main_like(fail: bool) -> Result<(), String> {
        if fail {
            Err("failed".into())
        } else {
            Ok(())
        }
    }

    pub fn exit_code(code: u8) -> ExitCode { ExitCode::from(code) }

    pub fn control(n: u32) -> std::ops::ControlFlow<u32, u32> {
        let x = std::ops::ControlFlow::<u32, u32>::Continue(n)?;
        if x > 5 {
            std::ops::ControlFlow::Break(x)?;
        }
        std::ops::ControlFlow::Continue(x)
    }

    pub fn poll(p: std::task::Poll<Result<u32, String>>) -> std::task::Poll<Result<u32, String>> {
        let v = p?;
        v.map(Ok)
    }

    pub async fn async_fn(v: Vec<u32>, fail: bool) -> Result<usize, String> {
        tokio::task::yield_now().await;
        if fail {
            return Err("async failure".into());
        }
        let n = v.len();
        Ok(n)
    }

    pub fn macro_generic<T: Default + Debug>(fail: bool) -> Result<T, String> {
        if fail {
            give_up!("generic");
        }
        Ok(T::default())
    }

    pub fn macro_longest<'a>(a: &'a str, b: &'a str) -> Result<&'a str, String> {
        if a.is_empty() {
            give_up!("empty");
        }
        Ok(if a.len() >= b.len() { a } else { b })
    }

    pub fn macro_impl_ret(n: u32) -> Result<impl Iterator<Item = u32>, String> {
        if n == 0 {
            give_up!("zero");
        }
        Ok((0..n).map(|x| x + 1))
    }

    pub fn macro_mut_params(mut n: u32, v: &mut Vec<u32>) -> Result<u32, String> {
        n += 1;
        v.push(n);
        if n > 5 {
            give_up!("too big");
        }
        Ok(n)
    }

    pub fn macro_mut_borrow(v: &mut [u32]) -> Result<&mut u32, String> {
        if v.is_empty() {
            give_up!("empty");
        }
        Ok(&mut v[0])
    }

    pub async fn async_ref(s: &mut Stack) -> Option<&mut u32> {
        tokio::task::yield_now().await;
        s.items.last_mut()
    }
}

impl Stack {
    #[lastwords::exit_path]
    pub fn by_ref(&self) -> usize {
        self.items.len()
    }
    #[lastwords::exit_path]
    pub fn by_mut(&mut self) -> Option<u32> {
        self.items.pop()
    }
    #[lastwords::exit_path]
    pub fn by_value(self) -> Vec<u32> {
        self.items
    }
    #[lastwords::exit_path]
    #[allow(clippy::boxed_local)] // the receiver form is what is tested
    pub fn boxed(self: Box<Self>) -> usize {
        self.items.len()
    }
    #[lastwords::exit_path]
    pub fn pinned(self: Pin<&mut Self>) -> usize {
        self.get_mut().items.len()
    }
    #[lastwords::exit_path]
    pub fn first_mut(&mut self) -> Option<&mut u32> {
        self.items.first_mut()
    }
}

/// A view that hands out a narrower view of itself: the result borrows
/// from the `&mut` receiver through `Self`'s lifetime.
pub struct Window<'a>(&'a mut [u32]);

impl<'a> Window<'a> {
    #[lastwords::exit_path]
    pub fn narrowed(&'a mut self) -> Result<Self, String> {
        if self.0.is_empty() {
            give_up!("empty window");
        }
        let len = self.0.len() - 1;
        Ok(Window(&mut self.0[..len]))
    }
}

impl Source for Stack {
    #[lastwords::exit_path]
    fn next_item(&mut self) -> Option<u32> {
        self.items.pop()
    }
}

/// Written out (not through `both!`), so that clippy's pedantic lints see
/// the expansion as in user code.
pub mod direct {
    use std::io;

    #[lastwords::exit_path(ret, label = "P")]
    pub fn read_number(text: &str) -> io::Result<u32> {
        if text.is_empty() {
            return Err(io::Error::other("empty"));
        }
        let n: u32 = text.trim().parse().map_err(io::Error::other)?;
        Ok(n)
    }

    #[lastwords::exit_path(unexpected)]
    pub async fn serve(limit: u32) -> anyhow::Result<()> {
        let mut n = 0;
        loop {
            tokio::task::yield_now().await;
            n += 1;
            anyhow::ensure!(n < limit, "limit reached");
        }
    }

    #[lastwords::breadcrumb]
    pub fn noted(x: u32) -> u32 {
        lastwords::crumb!("inside noted", x);
        x + 1
    }
}

/// The one `unsafe fn`, outside the `forbid(unsafe_code)` modules.
#[lastwords::exit_path]
unsafe fn unsafe_fn(p: *const u32) -> u32 {
    // SAFETY: the caller passes a valid pointer.
    unsafe { *p }
}

#[test]
fn annotated_functions_return_what_the_plain_ones_return() {
    let ((), recs) = support::capture(|| {
        assert_eq!(annotated::free(1, 2), plain::free(1, 2));
        let (mut a, mut b) = (vec![], vec![]);
        annotated::unit(&mut a);
        plain::unit(&mut b);
        assert_eq!(a, b);
        for v in [&[][..], &[3, 4], &[1, 20]] {
            assert_eq!(annotated::early(v), plain::early(v));
        }
        for (x, y) in [("1", "2"), ("x", "2"), ("1", "")] {
            assert_eq!(annotated::parse_sum(x, y), plain::parse_sum(x, y));
        }
        for x in ["7", "x", "300"] {
            assert_eq!(
                annotated::convert(x).map_err(|e| e.to_string()),
                plain::convert(x).map_err(|e| e.to_string())
            );
        }
        assert_eq!(annotated::generic(&"s", 3), plain::generic(&"s", 3));
        assert_eq!(annotated::longest("ab", "c"), plain::longest("ab", "c"));
        let (mut a, mut b) = (vec![], vec![5]);
        *annotated::borrow_mut_into(&mut a) += 1;
        *plain::borrow_mut_into(&mut b) += 1;
        assert_eq!((a, b), (vec![1], vec![6]));
        assert_eq!(annotated::impl_arg(0..4), plain::impl_arg(0..4));
        assert!(annotated::impl_ret(4).eq(plain::impl_ret(4)));
        for n in [0, 3] {
            assert_eq!(
                format!("{:?}", annotated::impl_in_result(n)),
                format!("{:?}", plain::impl_in_result(n))
            );
        }
        for fail in [false, true] {
            assert_eq!(
                annotated::macro_generic::<Vec<u8>>(fail),
                plain::macro_generic::<Vec<u8>>(fail)
            );
        }
        for (x, y) in [("ab", "c"), ("", "c")] {
            assert_eq!(annotated::macro_longest(x, y), plain::macro_longest(x, y));
        }
        for n in [0, 3] {
            assert_eq!(
                annotated::macro_impl_ret(n).map(Iterator::collect::<Vec<_>>),
                plain::macro_impl_ret(n).map(Iterator::collect::<Vec<_>>)
            );
        }
        let (mut a, mut b) = (vec![], vec![]);
        for n in [1, 5] {
            assert_eq!(
                annotated::macro_mut_params(n, &mut a),
                plain::macro_mut_params(n, &mut b)
            );
        }
        assert_eq!(a, b);
        let (mut a, mut b) = (vec![], vec![]);
        assert_eq!(
            annotated::macro_mut_borrow(&mut a),
            plain::macro_mut_borrow(&mut b)
        );
        let (mut a, mut b) = (vec![1], vec![1]);
        *annotated::macro_mut_borrow(&mut a).unwrap() += 1;
        *plain::macro_mut_borrow(&mut b).unwrap() += 1;
        assert_eq!((a, b), (vec![2], vec![2]));
        let mut items = [1, 2, 3];
        let mut window = Window(&mut items);
        assert_eq!(window.narrowed().map(|w| w.0.len()), Ok(2));
        let mut empty = Window(&mut []);
        assert_eq!(
            empty.narrowed().map(|w| w.0.len()),
            Err("empty window".to_string())
        );
        assert_eq!(annotated::recursive(10), plain::recursive(10));
        assert_eq!(annotated::c_abi(7), plain::c_abi(7));
        let caught = std::panic::catch_unwind(|| annotated::never("never returns"));
        assert_eq!(
            caught
                .unwrap_err()
                .downcast_ref::<String>()
                .map(String::as_str),
            Some("never returns")
        );
        assert_eq!(annotated::main_like(true), plain::main_like(true));
        assert_eq!(annotated::main_like(false), plain::main_like(false));
        assert_eq!(annotated::exit_code(3), plain::exit_code(3));
        for n in [1, 9] {
            assert_eq!(annotated::control(n), plain::control(n));
        }
        for p in [
            std::task::Poll::Pending,
            std::task::Poll::Ready(Ok(1)),
            std::task::Poll::Ready(Err("e".to_string())),
        ] {
            assert_eq!(annotated::poll(p.clone()), plain::poll(p));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for fail in [false, true] {
            assert_eq!(
                rt.block_on(annotated::async_fn(vec![1, 2], fail)),
                rt.block_on(plain::async_fn(vec![1, 2], fail))
            );
        }
        let mut s = Stack { items: vec![4] };
        *rt.block_on(annotated::async_ref(&mut s)).unwrap() += 1;
        assert_eq!(*rt.block_on(plain::async_ref(&mut s)).unwrap(), 5);
        // The annotated future stays Send, so it can be spawned.
        let spawned = rt.block_on(async {
            tokio::spawn(annotated::async_fn(vec![1], false))
                .await
                .unwrap()
        });
        assert_eq!(spawned, Ok(1));

        let mut s = Stack {
            items: vec![1, 2, 3],
        };
        assert_eq!(s.by_ref(), 3);
        assert_eq!(Pin::new(&mut s).pinned(), 3);
        *s.first_mut().unwrap() = 10;
        assert_eq!(s.twice(), Some((3, 2)));
        assert_eq!(s.by_mut(), Some(10));
        assert_eq!(s.twice(), None);
        assert_eq!(Box::new(Stack { items: vec![1] }).boxed(), 1);
        assert_eq!(Stack { items: vec![2] }.by_value(), vec![2]);
        assert_eq!(direct::read_number(" 12 ").unwrap(), 12);
        assert!(direct::read_number("").is_err());
        let err = rt.block_on(direct::serve(3)).unwrap_err();
        assert_eq!(err.to_string(), "limit reached");
        assert_eq!(direct::noted(1), 2);
        let x = 41;
        // SAFETY: `&x` is a valid pointer.
        assert_eq!(unsafe { unsafe_fn(&raw const x) }, 41);
    });
    let exits = support::exits(&recs);

    // With no subscriber at all they just run. (In the same test: callsite
    // interest is process-wide, so tests racing to register it would make
    // the counts above flaky.)
    assert_eq!(annotated::parse_sum("1", "2"), Ok(3));
    assert!(annotated::parse_sum("x", "2").is_err());
    assert_eq!(annotated::early(&[]), None);
    assert_eq!(direct::noted(4), 5);
    assert!(std::panic::catch_unwind(|| annotated::never("quiet")).is_err());

    // One record per annotated call, including the `-> !` one (unwind).
    assert_eq!(
        exits.len(),
        68,
        "{:#?}",
        exits.iter().map(|r| r.field("message")).collect::<Vec<_>>()
    );
}
