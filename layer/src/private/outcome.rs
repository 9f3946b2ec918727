//! How `#[exit_path]` classifies a returned value by its type, not by the
//! spelling of the return type (so `io::Result<T>` and `anyhow::Result<T>`
//! aliases work): specialization by method lookup on a ladder of wrapper
//! types, expanded at the annotated function as
//! `Kind::<R>::levels().__lastwords_classifier()`.
//!
//! Each rung of the ladder derefs to the next, and each has an inherent
//! method whose bounds say what its level needs; method lookup tries the
//! top rung first and goes down by auto-deref until one's bounds hold:
//!
//! | rung | type | outcome |
//! |---|---|---|
//! | `KindChain` | `Result<T, E: Error>` | `err` with the `source()` chain |
//! | `KindSendSyncChain` | `Result<T, E: AsRef<dyn Error + Send + Sync>>` (`anyhow::Error`, `Box<dyn Error + Send + Sync>`) | `err` with the chain |
//! | `KindDynChain` | `Result<T, E: AsRef<dyn Error>>` (`Box<dyn Error>`) | `err` with the chain |
//! | `KindDisplay` | `Result<T, E: Display>` | `err` with Display |
//! | `KindDebug` | `Result<T, E: Debug>` | `err` with Debug |
//! | `KindResultOption` | `Result<T, E>`, `Option<T>`, `ControlFlow<B, C>` | `err` / `none` / `returned` |
//! | `Kind` | anything else | `returned` |
//!
//! Inherent methods rather than traits at each level: a trait must be in
//! scope at the call, and a `use` in each annotated function cost the
//! compiler more than the rest of its prelude.
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
use std::marker::PhantomData;
use std::ops::ControlFlow;
use std::ops::Deref;
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
/// `String`, a reference): [`ByValue`]'s classification. Not a stable API.
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

pub(super) fn result<'a, X: Fallible>(
    value: &'a X,
    err: impl FnOnce(&'a X::Error) -> ErrorRef<'a>,
) -> Outcome<'a> {
    match value.error() {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Err(err(e)),
    }
}

/// The error levels of the classification, most specific first: the
/// classifier [`Kind`] gives at that level, the level's rung in each
/// ladder ([`Kind`] on a return type, `Question` on a `?` operand), the
/// bound on the error type, and how the error is seen. `$family!` writes
/// one ladder's impls of one level.
///
/// The bound is on the error type itself: a bound on
/// `<X as Fallible>::Error` would make the type checker normalize a
/// projection for every candidate of every probe, which was most of what
/// annotated code cost to check.
macro_rules! error_levels {
    ($family:ident) => {
        $family!(ByChain KindChain PassChain, {Error}, |e| ErrorRef::Chain(e));
        $family!(
            BySendSyncChain KindSendSyncChain PassSendSyncChain,
            {AsRef<dyn Error + Send + Sync + 'static>},
            |e| ErrorRef::Chain(e.as_ref())
        );
        $family!(
            ByDynChain KindDynChain PassDynChain,
            {AsRef<dyn Error + 'static>},
            |e| ErrorRef::Chain(e.as_ref())
        );
        $family!(ByDisplay KindDisplay PassDisplay, {Display}, |e| ErrorRef::Display(e));
        $family!(ByDebug KindDebug PassDebug, {Debug}, |e| ErrorRef::Debug(e));
    };
}
pub(super) use error_levels;

/// `$one!(TYPE, ARGS..)` for each [`Fallible`] type with error type `E`.
macro_rules! fallible_types {
    ($one:ident!($($args:tt)*)) => {
        $one!(Result<T, E>, $($args)*);
        $one!(Poll<Result<T, E>>, $($args)*);
        $one!(Poll<Option<Result<T, E>>>, $($args)*);
    };
}
pub(super) use fallible_types;

/// How the values of a type are classified: what `exit` and `finish`
/// take. Each classifier is a zero-sized type, so that the one an async fn
/// keeps for all its exits takes no room in its future. Not a stable API.
pub trait Classify<R: ?Sized>: Copy {
    /// The classifier, named by its type alone (see [`late`]).
    const NEW: Self;

    /// The outcome of `value`.
    fn outcome<'v>(self, value: &'v R) -> Outcome<'v>;
}

/// Classifies any value as `returned`: where the spelling of the return
/// type tells (`()`, `String`, references, tuples) and the last level of
/// [`Kind`]. Not a stable API.
#[derive(Clone, Copy)]
pub struct ByValue;

impl<R: ?Sized> Classify<R> for ByValue {
    const NEW: Self = ByValue;
    #[inline(always)]
    fn outcome<'v>(self, value: &'v R) -> Outcome<'v> {
        returned(value)
    }
}

/// Classifies a [`Fallible`] type whose error shows nothing, an `Option`
/// (`none`) or a `ControlFlow` (`Break`). Not a stable API.
#[derive(Clone, Copy)]
pub struct ByResultOption;

impl<X: Fallible> Classify<X> for ByResultOption {
    const NEW: Self = ByResultOption;
    #[inline]
    fn outcome<'v>(self, value: &'v X) -> Outcome<'v> {
        result(value, |_| ErrorRef::Opaque)
    }
}

impl<B, C> Classify<ControlFlow<B, C>> for ByResultOption {
    const NEW: Self = ByResultOption;
    #[inline]
    fn outcome<'v>(self, value: &'v ControlFlow<B, C>) -> Outcome<'v> {
        match value {
            ControlFlow::Continue(_) => Outcome::Returned,
            ControlFlow::Break(_) => Outcome::Break,
        }
    }
}

impl<T> Classify<Option<T>> for ByResultOption {
    const NEW: Self = ByResultOption;
    #[inline]
    fn outcome<'v>(self, value: &'v Option<T>) -> Outcome<'v> {
        option(value)
    }
}

/// One classifier per error level: its error shown as the level says.
macro_rules! by_level {
    ($by:ident $kind:ident $pass:ident, {$($bound:tt)+}, $view:expr) => {
        /// Classifies a [`Fallible`] type by one error level (see
        /// `error_levels`). Not a stable API.
        #[derive(Clone, Copy)]
        pub struct $by;
        fallible_types!(by_impl!($by, {$($bound)+}, $view));
    };
}

macro_rules! by_impl {
    ($ty:ty, $by:ident, {$($bound:tt)+}, $view:expr) => {
        impl<T, E: $($bound)+> Classify<$ty> for $by {
            const NEW: Self = $by;
            #[inline]
            fn outcome<'v>(self, value: &'v $ty) -> Outcome<'v> {
                result(value, $view)
            }
        }
    };
}

error_levels!(by_level);

/// A return type being classified, for the classifier of a function's
/// return values: the levels looked up once per function on the type, not
/// on a value, each giving its [`Classify`] type. The last rung of the
/// ladder: anything else. Not a stable API.
pub struct Kind<R: ?Sized>(PhantomData<fn(&R)>);

impl<R: ?Sized> Kind<R> {
    /// The top rung of the ladder, whose method lookup finds the
    /// classifier: `Kind::<R>::levels().__lastwords_classifier()`.
    #[inline(always)]
    pub fn levels() -> KindChain<R> {
        KindChain(KindSendSyncChain(KindDynChain(KindDisplay(KindDebug(
            KindResultOption(Kind(PhantomData)),
        )))))
    }

    /// [`Kind::levels`] of the type of `value`: the classifier of a `?`
    /// operand in an async body (see `question`).
    #[inline(always)]
    pub fn levels_of(_value: &R) -> KindChain<R> {
        Self::levels()
    }

    /// Anything else.
    #[inline(always)]
    pub fn __lastwords_classifier(&self) -> ByValue {
        ByValue
    }
}

impl<R> Kind<R> {
    /// [`Kind::levels`] of the operand type a [`late`] classifier stands
    /// for.
    #[inline(always)]
    pub fn levels_like<C>(_late: &impl Fn(PhantomData<R>) -> C) -> KindChain<R> {
        Self::levels()
    }
}

/// The classifier of a `?` operand whose error type the compiler learns
/// only after the `?` (`f(s.parse()?)`, `Config { port: s.parse()? }`).
/// Looked up at the `?`, the levels would be chosen while the error type
/// is unknown: the top one, whose bound may then fail to hold, and the
/// plain code would not compile annotated. So the expansion names the
/// classifier by a type it decides later:
///
/// ```text
/// let L = late;                                    // fn item: late::<?T, ?C>
/// ... question_late(&guard, line, col, &L, s.parse())? ...
/// // after the whole body, in the tail's classifying closure (which the
/// // compiler checks after every other argument), once ?T is known:
/// fix_late(&L, Kind::levels_like(&L).__lastwords_classifier());
/// ```
///
/// Never called: only its type is used. Not a stable API.
#[inline(always)]
pub fn late<T, C: Classify<T>>(_: PhantomData<T>) -> C {
    C::NEW
}

/// Decides the classifier a [`late`] stands for. Not a stable API.
#[inline(always)]
pub fn fix_late<T, C>(_late: &impl Fn(PhantomData<T>) -> C, _classifier: C) {}

/// The rungs above [`Kind`], each dereferencing to the one below.
macro_rules! kind_rungs {
    ($($rung:ident => $below:ident,)*) => {$(
        /// A rung of [`Kind`]'s ladder. Not a stable API.
        pub struct $rung<R: ?Sized>($below<R>);

        impl<R: ?Sized> Deref for $rung<R> {
            type Target = $below<R>;
            #[inline(always)]
            fn deref(&self) -> &$below<R> {
                &self.0
            }
        }
    )*};
}

kind_rungs! {
    KindChain => KindSendSyncChain,
    KindSendSyncChain => KindDynChain,
    KindDynChain => KindDisplay,
    KindDisplay => KindDebug,
    KindDebug => KindResultOption,
    KindResultOption => Kind,
}

/// The levels on the type: each rung's method gives its level's classifier.
macro_rules! kind_level {
    ($by:ident $kind:ident $pass:ident, {$($bound:tt)+}, $view:expr) => {
        fallible_types!(kind_impl!($by, $kind, {$($bound)+}));
    };
}

macro_rules! kind_impl {
    ($ty:ty, $by:ident, $kind:ident, {$($bound:tt)+}) => {
        impl<T, E: $($bound)+> $kind<$ty> {
            /// This level's classifier, when its bound holds.
            #[inline(always)]
            pub fn __lastwords_classifier(&self) -> $by {
                $by
            }
        }
    };
}

error_levels!(kind_level);

impl<X: Fallible> KindResultOption<X> {
    /// A fallible type whose error shows nothing.
    #[inline(always)]
    pub fn __lastwords_classifier(&self) -> ByResultOption {
        ByResultOption
    }
}

impl<B, C> KindResultOption<ControlFlow<B, C>> {
    /// `Break` or `returned`.
    #[inline(always)]
    pub fn __lastwords_classifier(&self) -> ByResultOption {
        ByResultOption
    }
}

impl<T> KindResultOption<Option<T>> {
    /// `none` or `returned`.
    #[inline(always)]
    pub fn __lastwords_classifier(&self) -> ByResultOption {
        ByResultOption
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[derive(Debug)]
    struct Leaf;
    impl Display for Leaf {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("leaf")
        }
    }
    impl Error for Leaf {}

    struct DisplayOnly;
    impl Display for DisplayOnly {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("display only")
        }
    }

    #[derive(Debug)]
    struct DebugOnly;

    struct Nothing;

    /// What an outcome says, as the record would show it.
    fn said(o: Outcome<'_>) -> String {
        match o {
            Outcome::Err(ErrorRef::Chain(e)) => format!("err chain {e}"),
            Outcome::Err(ErrorRef::Display(e)) => format!("err display {e}"),
            Outcome::Err(ErrorRef::Debug(e)) => format!("err debug {e:?}"),
            Outcome::Err(ErrorRef::Opaque) => "err opaque".to_owned(),
            Outcome::Break => "break".to_owned(),
            other => other.as_str().to_owned(),
        }
    }

    /// The classifier looked up on the type, and on a value of it, says
    /// what each level should.
    macro_rules! same {
        ($ty:ty, $value:expr, $expected:expr) => {{
            let value: $ty = $value;
            let classify = Kind::<$ty>::levels().__lastwords_classifier();
            let by_type = said(classify.outcome(&value));
            let of_value = Kind::levels_of(&value).__lastwords_classifier();
            let by_value = said(Classify::outcome(of_value, &value));
            assert_eq!(by_type, $expected, "{}", stringify!($ty));
            assert_eq!(by_value, $expected, "{}", stringify!($ty));
        }};
    }

    #[test]
    fn each_level_classifies_as_it_should() {
        same!(Result<u8, Leaf>, Err(Leaf), "err chain leaf");
        same!(Result<u8, Leaf>, Ok(1), "ok");
        same!(
            Result<u8, Box<dyn Error + Send + Sync>>,
            Err("boxed".into()),
            "err chain boxed"
        );
        same!(Result<u8, Box<dyn Error>>, Err("local".into()), "err chain local");
        same!(Result<u8, DisplayOnly>, Err(DisplayOnly), "err display display only");
        same!(Result<u8, DebugOnly>, Err(DebugOnly), "err debug DebugOnly");
        same!(Result<u8, Nothing>, Err(Nothing), "err opaque");
        same!(
            Poll<Result<u8, Leaf>>,
            Poll::Ready(Err(Leaf)),
            "err chain leaf"
        );
        same!(Poll<Result<u8, Leaf>>, Poll::Pending, "returned");
        same!(Poll<Option<Result<u8, Leaf>>>, Poll::Ready(None), "none");
        same!(Option<u8>, None, "none");
        same!(Option<u8>, Some(1), "returned");
        same!(ControlFlow<u8, u8>, ControlFlow::Break(1), "break");
        same!(ControlFlow<u8, u8>, ControlFlow::Continue(1), "returned");
        same!(u64, 7, "returned");
        same!(Vec<Nothing>, Vec::new(), "returned");
    }
}
