//! The operand of a `?` in an annotated function, on its way to the user's
//! own `?`.
//!
//! ```text
//! // Input:  fetch(id)?
//! // Output: pass(Question::levels(&guard, line, col, fetch(id)).__lastwords_pass())?
//! ```
//!
//! The same levels as the return type's classification (see `outcome`),
//! looked up on a ladder of wrappers that carries the operand: each rung's
//! method classifies the value, records the exit when the `?` is about to
//! short-circuit, and hands the value on. No closure is made per `?`, and
//! no trait has to be in scope. The value keeps the place the user wrote
//! it in (an argument, as before), so its temporaries live as long as
//! without the attribute. Not a stable API.

use std::cell::Cell;
use std::error::Error;
use std::fmt::{Debug, Display};
use std::ops::{ControlFlow, Deref};
use std::task::Poll;

use super::exit::ExitGuard;
use super::outcome::{error_levels, fallible_types, option, result, ErrorRef, Fallible, Outcome};

/// The operand of one `?`, with where the `?` is: the last rung of the
/// ladder (anything else). Not a stable API.
pub struct Question<'g, T> {
    guard: &'g ExitGuard,
    line: u32,
    col: u32,
    /// Taken once, by the one method call the expansion makes.
    value: Cell<Option<T>>,
}

impl<'g, T> Question<'g, T> {
    /// Wraps the operand of the `?` at `line:col`: the top rung of the
    /// ladder.
    #[inline]
    pub fn levels(guard: &'g ExitGuard, line: u32, col: u32, value: T) -> PassChain<'g, T> {
        let question = Question {
            guard,
            line,
            col,
            value: Cell::new(Some(value)),
        };
        PassChain(PassSendSyncChain(PassDynChain(PassDisplay(PassDebug(
            PassResultOption(question),
        )))))
    }

    /// Hands the operand on, recording the exit if `classify` says the
    /// `?` short-circuits.
    #[inline]
    fn hand_on(&self, classify: impl FnOnce(&T) -> Outcome<'_>) -> T {
        let value = self.take();
        self.guard.question(self.line, self.col, &value, classify);
        value
    }

    #[inline]
    fn take(&self) -> T {
        let Some(value) = self.value.take() else {
            // The expansion calls one method once per wrapper.
            unreachable!("a `?` operand handed on twice")
        };
        value
    }

    /// Anything else: a `?` on it does not compile, and the user's own `?`
    /// says so, as without the attribute.
    #[inline]
    pub fn __lastwords_pass(&self) -> T {
        self.take()
    }
}

/// The operand, handed on: the call the expansion wraps the ladder's method
/// call in, so that rustc's diagnostics about the user's `?` span the
/// operand as they do without the attribute. Not a stable API.
#[inline(always)]
pub fn pass<T>(value: T) -> T {
    value
}

/// The rungs above [`Question`], each dereferencing to the one below.
macro_rules! pass_rungs {
    ($($rung:ident => $below:ident,)*) => {$(
        /// A rung of the `?` operand's ladder. Not a stable API.
        pub struct $rung<'g, T>($below<'g, T>);

        impl<'g, T> Deref for $rung<'g, T> {
            type Target = $below<'g, T>;
            #[inline(always)]
            fn deref(&self) -> &$below<'g, T> {
                &self.0
            }
        }
    )*};
}

pass_rungs! {
    PassChain => PassSendSyncChain,
    PassSendSyncChain => PassDynChain,
    PassDynChain => PassDisplay,
    PassDisplay => PassDebug,
    PassDebug => PassResultOption,
    PassResultOption => Question,
}

macro_rules! pass_level {
    ($by:ident $kind:ident $pass:ident, {$($bound:tt)+}, $view:expr) => {
        fallible_types!(pass_impl!($pass, {$($bound)+}, $view));
    };
}

macro_rules! pass_impl {
    ($ty:ty, $pass:ident, {$($bound:tt)+}, $view:expr) => {
        impl<T, E: $($bound)+> $pass<'_, $ty> {
            /// Records the `?`'s exit if it short-circuits; the operand.
            #[inline]
            pub fn __lastwords_pass(&self) -> $ty {
                self.hand_on(|v| result(v, $view))
            }
        }
    };
}

error_levels!(pass_level);

impl<X: Fallible> PassResultOption<'_, X> {
    /// A fallible type whose error shows nothing.
    #[inline]
    pub fn __lastwords_pass(&self) -> X {
        self.hand_on(|v| result(v, |_| ErrorRef::Opaque))
    }
}

impl<B, C> PassResultOption<'_, ControlFlow<B, C>> {
    /// `Break` short-circuits.
    #[inline]
    pub fn __lastwords_pass(&self) -> ControlFlow<B, C> {
        self.hand_on(|v| match v {
            ControlFlow::Continue(_) => Outcome::Returned,
            ControlFlow::Break(_) => Outcome::Break,
        })
    }
}

impl<T> PassResultOption<'_, Option<T>> {
    /// `None` short-circuits.
    #[inline]
    pub fn __lastwords_pass(&self) -> Option<T> {
        self.hand_on(option)
    }
}
