//! The operand of a `?` in an annotated function, on its way to the user's
//! own `?`.
//!
//! ```text
//! // Input:  fetch(id)?
//! // Output: pass((&&&&&&&Question::new(&guard, line, col, fetch(id))).__lastwords_pass())?
//! ```
//!
//! The same levels as the outcome probe (see `outcome`), looked up on the
//! wrapper that carries the operand: each level's method classifies the
//! value, records the exit when the `?` is about to short-circuit, and
//! hands the value on. No closure is made per `?`, which is what each `?`
//! site cost the type checker most. The value keeps the place the user
//! wrote it in (an argument, as before), so its temporaries live as long as
//! without the attribute. Not a stable API.

use std::cell::Cell;
use std::error::Error;
use std::fmt::{Debug, Display};
use std::ops::ControlFlow;
use std::task::Poll;

use super::exit::ExitGuard;
use super::outcome::{error_levels, fallible_types, option, result, ErrorRef, Fallible, Outcome};

/// The operand of one `?`, with where the `?` is. Not a stable API.
pub struct Question<'g, T> {
    guard: &'g ExitGuard,
    line: u32,
    col: u32,
    /// Taken once, by the one method call the expansion makes.
    value: Cell<Option<T>>,
}

impl<'g, T> Question<'g, T> {
    /// Wraps the operand of the `?` at `line:col`.
    #[inline]
    pub fn new(guard: &'g ExitGuard, line: u32, col: u32, value: T) -> Self {
        Question {
            guard,
            line,
            col,
            value: Cell::new(Some(value)),
        }
    }

    /// Hands the operand on, recording the exit if `classify` says the
    /// `?` short-circuits.
    #[inline]
    fn pass(&self, classify: impl FnOnce(&T) -> Outcome<'_>) -> T {
        let Some(value) = self.value.take() else {
            // The expansion calls one method once per wrapper.
            unreachable!("a `?` operand handed on twice")
        };
        self.guard.question(self.line, self.col, &value, classify);
        value
    }
}

/// The operand, handed on: the call the expansion wraps the probe's method
/// call in, so that rustc's diagnostics about the user's `?` span the
/// operand as they do without the attribute. Not a stable API.
#[inline(always)]
pub fn pass<T>(value: T) -> T {
    value
}

/// The levels of a `?` operand's classification: one trait, as the
/// probe's `ProbeLevel`. Not a stable API.
pub trait PassLevel<T> {
    /// Records the `?`'s exit if it short-circuits; the operand.
    fn __lastwords_pass(&self) -> T;
}

// One reference more at each level than the table's, so that the last
// level (anything else) takes `&self` too: the wrapper is not `Copy`.
macro_rules! pass_level {
    ($by:ident, [$($refs:tt)*], {$($bound:tt)+}, $view:expr) => {
        fallible_types!(pass_impl!([& $($refs)*], {$($bound)+}, $view));
    };
}

macro_rules! pass_impl {
    ($ty:ty, [$($refs:tt)*], {$($bound:tt)+}, $view:expr) => {
        impl<T, E: $($bound)+> PassLevel<$ty> for $($refs)* Question<'_, $ty> {
            #[inline]
            fn __lastwords_pass(&self) -> $ty {
                self.pass(|v| result(v, $view))
            }
        }
    };
}

error_levels!(pass_level);

impl<X: Fallible> PassLevel<X> for &Question<'_, X> {
    #[inline]
    fn __lastwords_pass(&self) -> X {
        self.pass(|v| result(v, |_| ErrorRef::Opaque))
    }
}

impl<B, C> PassLevel<ControlFlow<B, C>> for &Question<'_, ControlFlow<B, C>> {
    #[inline]
    fn __lastwords_pass(&self) -> ControlFlow<B, C> {
        self.pass(|v| match v {
            ControlFlow::Continue(_) => Outcome::Returned,
            ControlFlow::Break(_) => Outcome::Break,
        })
    }
}

impl<T> PassLevel<Option<T>> for &Question<'_, Option<T>> {
    #[inline]
    fn __lastwords_pass(&self) -> Option<T> {
        self.pass(option)
    }
}

/// Anything else: a `?` on it does not compile, and the user's own `?`
/// says so, as without the attribute.
impl<T> PassLevel<T> for Question<'_, T> {
    #[inline]
    fn __lastwords_pass(&self) -> T {
        let Some(value) = self.value.take() else {
            unreachable!("a `?` operand handed on twice")
        };
        value
    }
}
