//! An async fn whose body invokes a macro that may hide a `return`
//! (`bail!`, `tokio::select!`) runs that body as an inner async block,
//! polled by [`Finishing`]: the only place where the value of such a
//! `return` can be seen is the inner block's output.
//!
//! The call's state lives in [`Finishing`] as one word, and the function's
//! site is a zero-sized closure (`|| &SITE`), so that the future grows by
//! what it grows in other async fns (the guard's state, and the outer
//! future's own state byte) and not by a guard plus a reference to it.
//! While the inner block is polled, its exits (`return`, `?`, markers)
//! reach the call's [`ExitGuard`] through a thread-local (`CURRENT`), which
//! `Finishing::poll` points at a guard on its own stack for the duration of
//! the inner poll:
//!
//! ```text
//! async fn f(..) -> R {
//!     static SITE: ExitSite = ExitSite::NEW;
//!     finish_polled(ExitGuard::enter(&SITE, ..), || &SITE, async move {
//!         let __lastwords_guard = CurrentGuard;
//!         ...   // exit_polled(&__lastwords_guard, ..), __lastwords_guard.mark(N)
//!     }, classify).await
//! }
//! ```
//!
//! A panic unwinding out of the inner poll drops that stack guard, which
//! records `unwind` as any guard does; a `Finishing` dropped before its
//! body completed records `cancelled`, whatever marker the body was in (a
//! hidden `return` completes the body, so it is never a drop). Not a stable
//! API.

use std::cell::Cell;
use std::fmt::Debug;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::ptr;
use std::task::{Context, Poll};

use super::exit::{self, ExitGuard, ExitSite, Site};
use super::outcome::{Classify, Outcome};

thread_local! {
    /// The guard of the [`Finishing`] whose body this thread is polling,
    /// null outside any.
    static CURRENT: Cell<*const ExitGuard> = const { Cell::new(ptr::null()) };
}

/// Runs `f` with the guard of the body being polled on this thread, if
/// any. The reference does not leave `f`: the guard lives on the stack of
/// the `Finishing::poll` that runs the caller.
#[inline]
fn with_current<T>(f: impl FnOnce(Option<&ExitGuard>) -> T) -> T {
    let current = CURRENT.try_with(Cell::get).unwrap_or(ptr::null());
    // SAFETY: non-null only while the `Finishing::poll` that set it runs
    // (`Polling` restores the previous value when that poll returns or
    // unwinds), and the guard it points at is a local of that poll, alive
    // and only ever shared. The caller runs inside that poll.
    f(unsafe { current.as_ref() })
}

/// Points [`CURRENT`] at a guard while it lives, then back at what it was
/// (an enclosing body's guard, when one `Finishing` polls another).
struct Polling(*const ExitGuard);

impl Polling {
    #[inline]
    fn enter(guard: &ExitGuard) -> Polling {
        let guard: *const ExitGuard = guard;
        Polling(
            CURRENT
                .try_with(|c| c.replace(guard))
                .unwrap_or(ptr::null()),
        )
    }
}

impl Drop for Polling {
    #[inline]
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set(self.0));
    }
}

/// What the inner block's exits name as their guard: the guard of the
/// body being polled (see the module). Zero-sized, so the body's future
/// holds nothing for it. Not a stable API.
#[derive(Clone, Copy)]
pub struct CurrentGuard;

impl CurrentGuard {
    /// [`ExitGuard::mark`] on the current guard.
    #[inline]
    pub fn mark(&self, index: u16) {
        with_current(|g| g.map(|g| g.mark(index)));
    }
}

macro_rules! polled_exits {
    ($($(#[$doc:meta])* $name:ident => $exit:ident, $how:ty, $($bound:path)?;)*) => {$(
        $(#[$doc])*
        #[inline]
        pub fn $name<R $(: $bound)?>(
            _: &CurrentGuard,
            site: Site,
            line: u32,
            col: u32,
            classify: $how,
            value: R,
        ) -> R {
            with_current(move |g| match g {
                Some(g) => exit::$exit(g, site, line, col, classify, value),
                None => value,
            })
        }
    )*};
}

polled_exits! {
    /// [`exit::exit`] in a polled body. Not a stable API.
    exit_polled => exit, impl Classify<R>, ;
    /// [`exit::exit_with`] in a polled body. Not a stable API.
    exit_with_polled => exit_with, impl FnOnce(&R) -> Outcome<'_>, ;
    /// [`exit::exit_ret`] in a polled body. Not a stable API.
    exit_ret_polled => exit_ret, impl Classify<R>, Debug;
    /// [`exit::exit_ret_with`] in a polled body. Not a stable API.
    exit_ret_with_polled => exit_ret_with, impl FnOnce(&R) -> Outcome<'_>, Debug;
}

/// [`exit::question`] in a polled body. Not a stable API.
#[inline]
pub fn question_polled<T>(
    _: &CurrentGuard,
    line: u32,
    col: u32,
    classify: impl Classify<T>,
    value: T,
) -> T {
    with_current(move |g| match g {
        Some(g) => exit::question(g, line, col, classify, value),
        None => value,
    })
}

/// [`exit::question_late`] in a polled body. Not a stable API.
#[inline]
pub fn question_late_polled<T, C: Classify<T>>(
    _: &CurrentGuard,
    line: u32,
    col: u32,
    _late: &impl Fn(PhantomData<T>) -> C,
    value: T,
) -> T {
    with_current(move |g| match g {
        Some(g) => exit::question(g, line, col, C::NEW, value),
        None => value,
    })
}

/// Whether the body's value goes in the record (`ret`).
pub trait RetValue<R> {
    /// The value to record, if any.
    fn value(value: &R) -> Option<&dyn Debug>;
}

/// The value is not recorded. Not a stable API.
pub struct NoValue;

impl<R> RetValue<R> for NoValue {
    #[inline(always)]
    fn value(_: &R) -> Option<&dyn Debug> {
        None
    }
}

/// The value is recorded, by `Debug` (`ret`). Not a stable API.
pub struct DebugValue;

impl<R: Debug> RetValue<R> for DebugValue {
    #[inline(always)]
    fn value(value: &R) -> Option<&dyn Debug> {
        Some(value)
    }
}

/// How the body's value is classified: by a zero-sized [`Classify`]
/// ([`finish_polled`]) or by a closure ([`finish_with_polled`]). Not a
/// stable API.
pub trait ClassifyBody<R> {
    /// The outcome of `value`.
    fn outcome<'v>(&self, value: &'v R) -> Outcome<'v>;
}

/// A [`Classify`] as a [`ClassifyBody`]. Not a stable API.
pub struct Classified<K>(K);

impl<R, K: Classify<R>> ClassifyBody<R> for Classified<K> {
    #[inline(always)]
    fn outcome<'v>(&self, value: &'v R) -> Outcome<'v> {
        self.0.outcome(value)
    }
}

/// A classifying closure as a [`ClassifyBody`]. Not a stable API.
pub struct ClassifiedWith<C>(C);

impl<R, C: Fn(&R) -> Outcome<'_>> ClassifyBody<R> for ClassifiedWith<C> {
    #[inline(always)]
    fn outcome<'v>(&self, value: &'v R) -> Outcome<'v> {
        (self.0)(value)
    }
}

/// The future of an async fn that runs its body as an inner block (see
/// the module): the call's state word, the body, and zero-sized site and
/// classifier. Not a stable API.
pub struct Finishing<S: Fn() -> &'static ExitSite, F, C, V> {
    /// The guard's state between polls; 0 once the call recorded (or was
    /// neither recorded nor counted).
    state: u64,
    site: S,
    classify: C,
    ret: PhantomData<fn() -> V>,
    /// Pinned with `Finishing` (see `poll`); never moved out.
    body: F,
}

macro_rules! finishers {
    ($($(#[$doc:meta])* $name:ident($how:ident: $bound:path) -> $wrap:ident, $ret:ident $(, $debug:path)?;)*) => {$(
        $(#[$doc])*
        #[inline]
        pub fn $name<S, F, K>(guard: ExitGuard, site: S, body: F, classify: K) -> Finishing<S, F, $wrap<K>, $ret>
        where
            S: Fn() -> &'static ExitSite,
            F: Future,
            K: $bound,
            $(F::Output: $debug,)?
        {
            Finishing {
                state: guard.into_state(),
                site,
                classify: $wrap(classify),
                ret: PhantomData,
                body,
            }
        }
    )*};
}

finishers! {
    /// Runs `body`, the function's statements, for the call `guard`
    /// started; `site` names the function's static. Not a stable API.
    finish_polled(classify: Classify<F::Output>) -> Classified, NoValue;
    /// [`finish_polled`] with a closure that classifies (see
    /// [`exit::exit_with`]). Not a stable API.
    finish_with_polled(classify: Fn(&F::Output) -> Outcome<'_>) -> ClassifiedWith, NoValue;
    /// [`finish_polled`] with the `ret` option. Not a stable API.
    finish_ret_polled(classify: Classify<F::Output>) -> Classified, DebugValue, Debug;
    /// [`finish_with_polled`] with the `ret` option. Not a stable API.
    finish_ret_with_polled(classify: Fn(&F::Output) -> Outcome<'_>) -> ClassifiedWith, DebugValue, Debug;
}

impl<S, F, C, V> Future for Finishing<S, F, C, V>
where
    S: Fn() -> &'static ExitSite,
    F: Future,
    C: ClassifyBody<F::Output>,
    V: RetValue<F::Output>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `body` is structurally pinned: it is polled only through
        // this projection, never moved out, and `Drop` does not touch it.
        // The other fields are plain data, never pinned.
        let this = unsafe { self.get_unchecked_mut() };
        // The state moves onto this stack for the poll: a panic that
        // unwinds out of it drops this guard (recording `unwind`) and
        // leaves `Finishing` with nothing to record.
        let guard = ExitGuard::from_state((this.site)(), std::mem::take(&mut this.state));
        let polled = {
            let _current = Polling::enter(&guard);
            // SAFETY: see above.
            unsafe { Pin::new_unchecked(&mut this.body) }.poll(cx)
        };
        match polled {
            Poll::Ready(value) => {
                // No exit the expansion saw recorded it: it left through a
                // `return` hidden in a macro.
                if guard.recording() {
                    guard.finish_slow(this.classify.outcome(&value), V::value(&value));
                }
                Poll::Ready(value)
            }
            Poll::Pending => {
                this.state = guard.into_state();
                Poll::Pending
            }
        }
    }
}

impl<S, F, C, V> Drop for Finishing<S, F, C, V>
where
    S: Fn() -> &'static ExitSite,
{
    #[inline]
    fn drop(&mut self) {
        if self.state != 0 {
            ExitGuard::from_state((self.site)(), self.state).cancel();
        }
    }
}
