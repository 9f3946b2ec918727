//! How `#[exit_path]` classifies a returned value by its type, not by the
//! spelling of the return type (so `io::Result<T>` and `anyhow::Result<T>`
//! aliases work): autoref specialization on [`Probe`], expanded at the
//! annotated function through [`outcome!`](crate::__lastwords_outcome).
//!
//! Each `Probe*` trait is implemented for `Probe` behind a different number
//! of references; method lookup tries the receiver with the most references
//! first, so the most specific impl whose bounds hold wins:
//!
//! | refs | type | outcome |
//! |---|---|---|
//! | 5 | `Result<T, E: Error>` | `err` with the `source()` chain |
//! | 4 | `Result<T, E: AsRef<dyn Error + Send + Sync>>` (`anyhow::Error`, `Box<dyn Error + Send + Sync>`) | `err` with the chain |
//! | 3 | `Result<T, E: AsRef<dyn Error>>` (`Box<dyn Error>`) | `err` with the chain |
//! | 2 | `Result<T, E: Display>` | `err` with Display |
//! | 1 | `Result<T, E: Debug>` | `err` with Debug |
//! | 0 | `Result<T, E>`, `Option<T>`, `ControlFlow<B, C>` | `err` / `none` / `returned` |
//! | by value | anything else | `returned` |
//!
//! "`Result<T, E>`" stands for every [`Fallible`] type: `Result` and the
//! `Poll<Result<..>>` types that `?` accepts. No level asks for `'static`:
//! method lookup does not look at lifetimes, so a `'static` bound would be
//! chosen for a borrowed error and then fail to compile.
//!
//! Nothing is formatted here: an [`Outcome`] only borrows the error, and is
//! formatted only when the record is enabled. Not a stable API.

use std::error::Error;
use std::fmt::{Debug, Display};
use std::ops::ControlFlow;
use std::task::Poll;

/// The outcome of one exit, borrowing the error if there is one.
#[derive(Clone, Copy)]
pub enum Outcome<'a> {
    /// `Ok(_)`.
    Ok,
    /// `None`.
    None,
    /// Any other value (including `Some(_)`).
    Returned,
    /// The function left through a macro whose value could not be seen.
    Unknown,
    /// `Err(_)`.
    Err(ErrorRef<'a>),
    /// `ControlFlow::Break(_)`: recorded as `returned`, and a `?` on it
    /// short-circuits.
    Break,
}

/// A borrowed error, as much of it as its type lets us show.
#[derive(Clone, Copy)]
pub enum ErrorRef<'a> {
    /// An error with its `source()` chain.
    Chain(&'a (dyn Error + 'a)),
    /// An error with only `Display`.
    Display(&'a dyn Display),
    /// An error with only `Debug`.
    Debug(&'a dyn Debug),
    /// An error that can show nothing.
    Opaque,
}

impl Outcome<'_> {
    /// The `outcome` field's value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::None => "none",
            Outcome::Returned | Outcome::Break => "returned",
            Outcome::Unknown => "unknown",
            Outcome::Err(_) => "err",
        }
    }

    /// True for `Err(_)`: the record goes out at the error level.
    pub fn is_err(&self) -> bool {
        matches!(self, Outcome::Err(_))
    }

    /// True when a `?` on this value short-circuits.
    pub fn breaks(&self) -> bool {
        matches!(self, Outcome::Err(_) | Outcome::None | Outcome::Break)
    }
}

/// A value that is either an error or something else, as `?` sees it.
/// Not a stable API.
pub trait Fallible {
    /// The error type.
    type Error;
    /// The error, or the outcome of a value that is not one.
    fn error(&self) -> Result<Outcome<'static>, &Self::Error>;
}

impl<T, E> Fallible for Result<T, E> {
    type Error = E;
    #[inline]
    fn error(&self) -> Result<Outcome<'static>, &E> {
        match self {
            Ok(_) => Ok(Outcome::Ok),
            Err(e) => Err(e),
        }
    }
}

impl<T, E> Fallible for Poll<Result<T, E>> {
    type Error = E;
    #[inline]
    fn error(&self) -> Result<Outcome<'static>, &E> {
        match self {
            Poll::Ready(Ok(_)) => Ok(Outcome::Ok),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Ok(Outcome::Returned),
        }
    }
}

impl<T, E> Fallible for Poll<Option<Result<T, E>>> {
    type Error = E;
    #[inline]
    fn error(&self) -> Result<Outcome<'static>, &E> {
        match self {
            Poll::Ready(Some(Ok(_))) => Ok(Outcome::Ok),
            Poll::Ready(Some(Err(e))) => Err(e),
            Poll::Ready(None) => Ok(Outcome::None),
            Poll::Pending => Ok(Outcome::Returned),
        }
    }
}

/// Classifies a value whose type is never an error nor `None` (`()`,
/// `String`, a reference): what the expansion uses where the spelling of
/// the return type tells, instead of the probe. Not a stable API.
#[inline(always)]
pub fn returned<T: ?Sized>(_: &T) -> Outcome<'_> {
    Outcome::Returned
}

/// Classifies an `Option`: `none` or `returned`. Not a stable API.
#[inline(always)]
pub fn option<T>(value: &Option<T>) -> Outcome<'_> {
    match value {
        Some(_) => Outcome::Returned,
        None => Outcome::None,
    }
}

/// The value being classified. Not a stable API.
pub struct Probe<'a, T: ?Sized>(pub &'a T);

// `ProbeAny` takes `self` by value: that is the one receiver tried after
// `&Probe`, so it must be `Copy` (derive would require `T: Copy`).
impl<T: ?Sized> Clone for Probe<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Probe<'_, T> {}

macro_rules! probe_trait {
    ($name:ident) => {
        /// One level of the classification. Not a stable API.
        pub trait $name<'a> {
            /// Classifies the probed value.
            fn __lastwords_outcome(&self) -> Outcome<'a>;
        }
    };
}

/// The last level of the classification: anything else. Not a stable API.
pub trait ProbeAny<'a> {
    /// Classifies the probed value.
    fn __lastwords_outcome(self) -> Outcome<'a>;
}

probe_trait!(ProbeChain);
probe_trait!(ProbeSendSyncChain);
probe_trait!(ProbeDynChain);
probe_trait!(ProbeDisplay);
probe_trait!(ProbeDebug);
probe_trait!(ProbeResultOption);

fn result<'a, X: Fallible>(
    value: &'a X,
    err: impl FnOnce(&'a X::Error) -> ErrorRef<'a>,
) -> Outcome<'a> {
    match value.error() {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Err(err(e)),
    }
}

/// Implements one level for each [`Fallible`] type, with the bound on the
/// error type itself: a bound on `<X as Fallible>::Error` would make the
/// type checker normalize a projection for every candidate of every probe,
/// which was most of what annotated code cost to check.
macro_rules! level {
    ($trait:ident, [$($refs:tt)*], $e:ident: $($bound:tt)+) => {
        level!(@one $trait, [$($refs)*], Result<T, $e>, $e: $($bound)+);
        level!(@one $trait, [$($refs)*], Poll<Result<T, $e>>, $e: $($bound)+);
        level!(@one $trait, [$($refs)*], Poll<Option<Result<T, $e>>>, $e: $($bound)+);
    };
    (@one $trait:ident, [$($refs:tt)*], $ty:ty, $e:ident: $($bound:tt)+) => {
        impl<'a, T, $e: $($bound)+> $trait<'a> for $($refs)* Probe<'a, $ty> {
            #[inline]
            fn __lastwords_outcome(&self) -> Outcome<'a> {
                level!(@view $trait, self.0)
            }
        }
    };
    (@view ProbeChain, $v:expr) => { result($v, |e| ErrorRef::Chain(e)) };
    (@view ProbeSendSyncChain, $v:expr) => { result($v, |e| ErrorRef::Chain(e.as_ref())) };
    (@view ProbeDynChain, $v:expr) => { result($v, |e| ErrorRef::Chain(e.as_ref())) };
    (@view ProbeDisplay, $v:expr) => { result($v, |e| ErrorRef::Display(e)) };
    (@view ProbeDebug, $v:expr) => { result($v, |e| ErrorRef::Debug(e)) };
}

level!(ProbeChain, [&&&&&], E: Error);
level!(ProbeSendSyncChain, [&&&&], E: AsRef<dyn Error + Send + Sync + 'static>);
level!(ProbeDynChain, [&&&], E: AsRef<dyn Error + 'static>);
level!(ProbeDisplay, [&&], E: Display);
level!(ProbeDebug, [&], E: Debug);

impl<'a, X: Fallible> ProbeResultOption<'a> for Probe<'a, X> {
    #[inline]
    fn __lastwords_outcome(&self) -> Outcome<'a> {
        result(self.0, |_| ErrorRef::Opaque)
    }
}

impl<'a, B, C> ProbeResultOption<'a> for Probe<'a, ControlFlow<B, C>> {
    #[inline]
    fn __lastwords_outcome(&self) -> Outcome<'a> {
        match self.0 {
            ControlFlow::Continue(_) => Outcome::Returned,
            ControlFlow::Break(_) => Outcome::Break,
        }
    }
}

impl<'a, T> ProbeResultOption<'a> for Probe<'a, Option<T>> {
    #[inline]
    fn __lastwords_outcome(&self) -> Outcome<'a> {
        match self.0 {
            Some(_) => Outcome::Returned,
            None => Outcome::None,
        }
    }
}

impl<'a, T: ?Sized> ProbeAny<'a> for Probe<'a, T> {
    #[inline]
    fn __lastwords_outcome(self) -> Outcome<'a> {
        Outcome::Returned
    }
}

/// Classifies `&value` (see the module docs). Not a stable API.
#[doc(hidden)]
#[macro_export]
macro_rules! __lastwords_outcome {
    ($value:expr) => {{
        #[allow(unused_imports)]
        use $crate::private::outcome::{
            ProbeAny as _, ProbeChain as _, ProbeDebug as _, ProbeDisplay as _, ProbeDynChain as _,
            ProbeResultOption as _, ProbeSendSyncChain as _,
        };
        (&&&&&&$crate::private::outcome::Probe($value)).__lastwords_outcome()
    }};
}

/// Like [`outcome!`](crate::__lastwords_outcome), with the error shown by
/// `Debug` at most: for the operand of a `?` whose error type may be known
/// only after the `?` (`let x: T = s.parse()?`). Method lookup picks the
/// most specific level whose bounds *may* hold, so with the error type
/// still unknown it would pick `Error` and then fail to compile for an
/// error that is not one; `Debug` is the bound nearly every error meets.
/// Not a stable API.
#[doc(hidden)]
#[macro_export]
macro_rules! __lastwords_outcome_debug {
    ($value:expr) => {{
        #[allow(unused_imports)]
        use $crate::private::outcome::{ProbeAny as _, ProbeDebug as _, ProbeResultOption as _};
        (&&$crate::private::outcome::Probe($value)).__lastwords_outcome()
    }};
}

/// The probe's traits, for one glob import at the top of an annotated
/// function's body. Not a stable API.
pub mod probes {
    pub use super::{
        ProbeAny as _, ProbeChain as _, ProbeDebug as _, ProbeDisplay as _, ProbeDynChain as _,
        ProbeResultOption as _, ProbeSendSyncChain as _,
    };
}
