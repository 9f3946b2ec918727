//! The runtime half of `#[exit_path]`: one static [`ExitSite`] per annotated
//! function (its callsites, built on first need) and one
//! [`ExitGuard`] per call, which emits exactly one `fn_exit` event.
//!
//! The guard reads the clock only when one of the function's levels could
//! be enabled (a relaxed load of the global max level, then the callsites'
//! cached interest), and formats only when a subscriber wants the record,
//! so a disabled annotated function costs one atomic load and a compare.
//!
//! Exits the expansion can see (`return`, `?`, the tail) pass their value
//! through [`exit`] or [`question`]; a body run as a closure hands its value
//! to [`finish`], an async body polled by the `polled` module's `Finishing`
//! to that future; the guard's `Drop` covers the
//! rest: a panic unwinding through (`unwind`), an async fn's future dropped
//! before it completed (`cancelled`), and an exit hidden inside a macro
//! invocation whose value was not seen (`macro`, at the position of the
//! last marker passed). Not a stable API.

use std::cell::Cell;
use std::fmt::{self, Debug, Display};
use std::ptr;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64};
use std::sync::OnceLock;
use std::time::Instant;

use tracing::level_filters::STATIC_MAX_LEVEL;
use tracing_core::field::{self, Value};
use tracing_core::{dispatcher, Callsite, Event, LevelFilter};

use super::callsites::{Callsites, ExitCallsite};
use super::outcome::{Classify, ErrorRef, Outcome};
pub use super::site::{Mark, Site, SiteInfo, FIELDS};
use crate::json::ErrorChain;
use crate::recorder::counts;

/// Everything static about one annotated function: one `static` per
/// function, initialised with [`ExitSite::NEW`]. What the function is
/// (its name, file, levels, markers) comes with each call, as one string
/// literal the guard reads the first time a call could record or is
/// counted; its tracing callsites are built then (see the `callsites`
/// module). Not a stable API.
///
/// The static's initializer is a path to a constant, which the compiler
/// evaluates once for all annotated functions: an initializer that builds
/// the description cost it more than anything else in the expansion.
/// For the same reason the type is two atomics and nothing else: the
/// compiler proves `Sync` for each function's static, and through
/// `OnceLock`s of the description and the callsites (tracing's metadata)
/// that proof cost as much as the rest of the static. What is built on
/// first need lives behind `state`.
pub struct ExitSite {
    /// What is known of the function once the description was read
    /// (null before), leaked: a static's state lives as long as it does.
    state: AtomicPtr<SiteState>,
    /// The function's slot in the flight recorder's exit counts, plus one,
    /// taken at its first call while the recorder runs (0: none yet; see
    /// `recorder::counts`).
    slot: AtomicU32,
}

/// What an [`ExitSite`] builds on first need.
struct SiteState {
    /// What the expansion says of the function.
    info: SiteInfo,
    /// The callsites for `ok`/`none`/`returned`, `err`/`panic` and
    /// `cancelled`, built on first use (see `callsites`).
    callsites: OnceLock<&'static Callsites>,
    /// The `fn` field, computed on first use.
    path: OnceLock<Box<str>>,
}

/// What [`ExitSite::info`] shows before the description was read.
static UNKNOWN: SiteInfo = SiteInfo::UNKNOWN;

impl ExitSite {
    /// The initializer of every annotated function's static. Each use is a
    /// fresh, unset site, which is what the lint warns of and what is
    /// meant.
    #[allow(clippy::declare_interior_mutable_const)]
    pub const NEW: ExitSite = ExitSite {
        state: AtomicPtr::new(ptr::null_mut()),
        slot: AtomicU32::new(0),
    };

    /// The state, once the description was read.
    #[inline]
    fn state(&self) -> Option<&'static SiteState> {
        // SAFETY: a non-null pointer is a leaked `SiteState`, published
        // whole by the release exchange in `describe`, never freed.
        unsafe { self.state.load(Acquire).as_ref() }
    }

    /// Reads the description the expansion passes, once.
    #[cold]
    #[inline(never)]
    fn describe(&self, raw: &'static str, here: fn() -> &'static str) -> &'static SiteState {
        if let Some(state) = self.state() {
            return state;
        }
        let new = Box::into_raw(Box::new(SiteState {
            info: SiteInfo::parse(raw, here),
            callsites: OnceLock::new(),
            path: OnceLock::new(),
        }));
        match self
            .state
            .compare_exchange(ptr::null_mut(), new, AcqRel, Acquire)
        {
            // SAFETY: just published, never freed (see `state`).
            Ok(_) => unsafe { &*new },
            Err(first) => {
                // Another thread read it first: keep its state.
                // SAFETY: `new` was never shared; `first` is as in `state`.
                unsafe {
                    drop(Box::from_raw(new));
                    &*first
                }
            }
        }
    }

    /// The description, read by the call that started recording or
    /// counting before anything asks for it.
    fn info(&self) -> &'static SiteInfo {
        self.state().map_or(&UNKNOWN, |s| &s.info)
    }

    /// The callsites, once a call that records has read the description.
    fn callsites(&'static self) -> &'static Callsites {
        match self.state() {
            Some(s) => Callsites::get(&s.callsites, || &s.info),
            // Not reached: a call records only after `may_be_enabled` or
            // `enter_main` read the description.
            None => Self::unknown_callsites(),
        }
    }

    /// Callsites of a site whose description was never read.
    #[cold]
    fn unknown_callsites() -> &'static Callsites {
        static CELL: OnceLock<&'static Callsites> = OnceLock::new();
        Callsites::get(&CELL, || &UNKNOWN)
    }
}

impl ExitSite {
    /// Could any of this function's records be enabled? Cheap: one relaxed
    /// load when nothing listens. `gate` is the most severe of its levels,
    /// 0 (`TRACE`) to 4 (`ERROR`), a constant of the expansion.
    #[inline]
    fn may_be_enabled(
        &'static self,
        gate: u8,
        raw: &'static str,
        here: fn() -> &'static str,
    ) -> bool {
        let gate = super::site::flags::FILTERS[usize::from(gate.min(4))];
        gate <= STATIC_MAX_LEVEL && gate <= LevelFilter::current() && {
            let state = match self.state() {
                Some(state) => state,
                // The first call that gets here reads the description.
                None => self.describe(raw, here),
            };
            let c = Callsites::get(&state.callsites, || &state.info);
            !c.ok.interest().is_never()
                || !c.err.interest().is_never()
                || !c.cancelled.interest().is_never()
        }
    }

    /// The `fn` field: `crate::module::fn` or `crate::module::Type::method`.
    fn path(&self) -> &str {
        let Some(state) = self.state() else {
            return UNKNOWN.name;
        };
        state.path.get_or_init(|| {
            let info = &state.info;
            if info.custom_name {
                info.name.into()
            } else {
                fn_path((info.here)(), info.name).into()
            }
        })
    }
}

/// Cuts `type_name` of the marker fn (`here`, nested in the annotated
/// function) down to the function's path: drops the marker's own segment
/// and closure segments of async bodies.
fn fn_path(here: &str, name: &str) -> String {
    let here = here.strip_suffix("::Here").unwrap_or(here);
    let mut path = here.replace("::{{closure}}", "");
    if !path.ends_with(name) {
        // Should not happen; keep the record useful anyway.
        path.push_str("::");
        path.push_str(name);
    }
    path
}

/// One call of an annotated function. Emits exactly one `fn_exit` event
/// (when enabled): at the first exit the expansion sees, else at
/// [`finish`] or on drop. Not a stable API.
///
/// Sixteen bytes, because an async fn's future holds it across every
/// `.await`: the site, and one atomic word (atomic so that the guard is
/// `Sync` and a future holding `&ExitGuard` stays `Send`) that packs
///
/// ```text
/// bits 0..48   start, in µs since the process's first guard, plus 1; 0 = not recording
/// bits 48..59  the last marker passed (index into ExitSite::marks), plus 1; 0 = none
/// bits 59..63  the exit-count epoch bucket the call entered, plus 1; 0 = not counted
///              (the flight recorder was off when it began)
/// bit 63       the call began while the thread was already panicking (a fn
///              called from a `Drop` during unwinding): its own exits are
///              not an unwind
/// ```
///
/// The first exit to record (or count) swaps the word to 0, so that later
/// ones (and the drop) record nothing.
pub struct ExitGuard {
    site: &'static ExitSite,
    state: AtomicU64,
}

const START_BITS: u32 = 48;
const START_MASK: u64 = (1 << START_BITS) - 1;
const MARK_MASK: u64 = 0x7ff << START_BITS;
const COUNT_SHIFT: u32 = 59;
const COUNT_MASK: u64 = 0xf << COUNT_SHIFT;
const PANICKING: u64 = 1 << 63;

/// Microseconds since the first guard of the process (2^48 µs is 8.9 years).
fn now_us() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// What a claimed guard knows: when the call started, the last marker, and
/// whether the thread was already panicking.
struct Claim {
    start: u64,
    /// False when the call is only counted.
    recording: bool,
    /// The epoch bucket plus one, 0 when not counted.
    bucket: usize,
    mark: Option<Mark>,
    panicking: bool,
}

impl ExitGuard {
    /// Starts a call: reads the clock only if a record could be enabled.
    /// `gate` (the most severe of the function's levels), `raw` (its
    /// description, see [`SiteInfo::parse`]) and `here` are constants of
    /// the expansion; the description is read only on the first call that
    /// could record or is counted.
    #[inline]
    pub fn enter(
        site: &'static ExitSite,
        gate: u8,
        raw: &'static str,
        here: fn() -> &'static str,
    ) -> ExitGuard {
        // The state word is made whole before the guard is: or-ing into a
        // guard already in memory costs a failed store forward when the
        // 16-byte guard is moved right after (10 ns).
        let state = if site.may_be_enabled(gate, raw, here) {
            Self::start_state()
        } else {
            0
        };
        ExitGuard {
            site,
            state: AtomicU64::new(state | Self::count_in(site, raw, here)),
        }
    }

    /// Counts the call in flight, when the recorder counts: the state bits
    /// that say in which bucket.
    #[inline]
    fn count_in(site: &'static ExitSite, raw: &'static str, here: fn() -> &'static str) -> u64 {
        let bucket = match counts::enter(&site.slot) {
            Some(bucket) => bucket,
            None => Self::count_new(site, raw, here),
        };
        (bucket as u64) << COUNT_SHIFT
    }

    /// The function's first counted call: reads the description, takes
    /// the function's slot under its path. Out of line, with plain
    /// arguments: the hot path builds nothing for it.
    #[cold]
    #[inline(never)]
    fn count_new(site: &'static ExitSite, raw: &'static str, here: fn() -> &'static str) -> usize {
        site.describe(raw, here);
        counts::enter_new(&site.slot, || site.path().to_owned())
    }

    /// Starts a call of `main`, which may install the subscriber itself:
    /// reads the clock whatever is enabled now (once per process), and
    /// the levels are checked when the exit is recorded.
    pub fn enter_main(
        site: &'static ExitSite,
        raw: &'static str,
        here: fn() -> &'static str,
    ) -> ExitGuard {
        site.describe(raw, here);
        ExitGuard {
            site,
            state: AtomicU64::new(Self::start_state() | Self::count_in(site, raw, here)),
        }
    }

    /// The guard of a call whose state was kept elsewhere between polls
    /// (see `polled`).
    #[inline]
    pub(super) fn from_state(site: &'static ExitSite, state: u64) -> ExitGuard {
        ExitGuard {
            site,
            state: AtomicU64::new(state),
        }
    }

    /// The state, to keep elsewhere between polls; the guard is then
    /// spent and records nothing when dropped.
    #[inline]
    pub(super) fn into_state(self) -> u64 {
        self.state.swap(0, Relaxed)
    }

    /// Drops a guard whose call was cancelled: records `cancelled` (or
    /// `unwind`, when dropped by a panic) whatever marker the body was in.
    #[inline]
    pub(super) fn cancel(self) {
        let state = self.state.load(Relaxed);
        self.state.store(state & !MARK_MASK, Relaxed);
    }

    #[inline(never)]
    fn start_state() -> u64 {
        let mut state = now_us().min(START_MASK - 1) + 1;
        if std::thread::panicking() {
            state |= PANICKING;
        }
        state
    }

    /// The exit of a call that is counted but not recorded: the fast path
    /// of every exit while the recorder runs and the record is filtered
    /// out. Returns `false` when the call is recorded (the slow path's).
    #[inline]
    fn counted_only(&self, site: Site, line: u32) -> bool {
        let state = self.state.load(Relaxed);
        if state & START_MASK != 0 {
            return false;
        }
        if state != 0 {
            self.state.store(0, Relaxed);
            let bucket = ((state & COUNT_MASK) >> COUNT_SHIFT) as usize;
            counts::leave(&self.site.slot, bucket, site, line);
        }
        true
    }

    /// Whether this call is being recorded or counted and has not left
    /// yet.
    #[inline]
    pub(super) fn recording(&self) -> bool {
        self.state.load(Relaxed) != 0
    }

    /// Notes that the body passes marker `index` of the site's `marks`, in
    /// case the function leaves from inside it.
    #[inline]
    pub fn mark(&self, index: u16) {
        let state = self.state.load(Relaxed);
        if state != 0 {
            let mark = ((u64::from(index) + 1) << START_BITS) & MARK_MASK;
            self.state.store((state & !MARK_MASK) | mark, Relaxed);
        }
    }

    /// Takes the right to record, once.
    #[inline]
    fn claim(&self) -> Option<Claim> {
        let state = self.state.swap(0, Relaxed);
        if state == 0 {
            return None;
        }
        let start = state & START_MASK;
        let bucket = ((state & COUNT_MASK) >> COUNT_SHIFT) as usize;
        let mark = match (state & MARK_MASK) >> START_BITS {
            0 => None,
            n => usize::try_from(n - 1)
                .ok()
                .and_then(|i| self.site.info().marks.get(i).copied()),
        };
        Some(Claim {
            start: start.saturating_sub(1),
            recording: start != 0,
            bucket,
            mark,
            panicking: state & PANICKING != 0,
        })
    }

    /// The site and position of an exit no seen exit recorded: the last
    /// marker's.
    fn marked(mark: Option<Mark>) -> (Site, u32, u32) {
        match mark {
            Some(m) => (m.site, m.line, m.col),
            None => (Site::Macro, 0, 0),
        }
    }

    #[cold]
    #[inline(never)]
    fn exit_slow(
        &self,
        site: Site,
        line: u32,
        col: u32,
        outcome: Outcome<'_>,
        value: Option<&dyn Debug>,
    ) {
        let Some(claim) = self.claim() else {
            return;
        };
        self.leave(&claim, site, line);
        if claim.recording {
            self.record(claim.start, site, line, col, outcome, value);
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn finish_slow(&self, outcome: Outcome<'_>, value: Option<&dyn Debug>) {
        let Some(claim) = self.claim() else {
            return;
        };
        let (site, line, col) = Self::marked(claim.mark);
        self.leave(&claim, site, line);
        if claim.recording {
            self.record(claim.start, site, line, col, outcome, value);
        }
    }

    /// Counts the exit and the call's leaving, if it was counted in.
    #[inline]
    fn leave(&self, claim: &Claim, site: Site, line: u32) {
        if claim.bucket != 0 {
            counts::leave(&self.site.slot, claim.bucket, site, line);
        }
    }

    fn record(
        &self,
        start: u64,
        site: Site,
        line: u32,
        col: u32,
        outcome: Outcome<'_>,
        value: Option<&dyn Debug>,
    ) {
        let (callsite, error) = match outcome {
            Outcome::Err(err) => (&self.site.callsites().err, ErrText::from_ref(err)),
            _ => (&self.site.callsites().ok, None),
        };
        self.emit(
            callsite,
            start,
            site,
            line,
            col,
            outcome.as_str(),
            error.as_ref(),
            value,
        );
    }

    #[cold]
    #[inline(never)]
    fn drop_slow(&self) {
        let Some(claim) = self.claim() else {
            return;
        };
        let start = claim.start;
        let s = self.site;
        let unwinding = std::thread::panicking() && !claim.panicking;
        let cancelled = s.info().is_async && claim.mark.is_none();
        if claim.bucket != 0 {
            let (site, line) = if unwinding {
                (Site::Unwind, s.info().line)
            } else if cancelled {
                (Site::Cancelled, s.info().line)
            } else {
                let (site, line, _) = Self::marked(claim.mark);
                (site, line)
            };
            self.leave(&claim, site, line);
        }
        if !claim.recording {
            return;
        }
        let c = s.callsites();
        if unwinding {
            let error = super::current_panic().map(|(message, location)| {
                ErrText::Panic(if location.is_empty() {
                    message
                } else {
                    format!("{message} at {location}")
                })
            });
            self.emit(
                &c.err,
                start,
                Site::Unwind,
                s.info().line,
                s.info().col,
                "panic",
                error.as_ref(),
                None,
            );
        } else if cancelled {
            self.emit(
                &c.cancelled,
                start,
                Site::Cancelled,
                s.info().line,
                s.info().col,
                "cancelled",
                None,
                None,
            );
        } else {
            // Past a marker (an async fn's only when it returns an opaque
            // type: one with a macro that may hide a `return` is polled,
            // and `Finishing` records its cancellation), or a sync fn,
            // which cannot be cancelled: it left through a `return` inside
            // a macro invocation, or through a tail the expansion left
            // alone, and its value was not seen.
            let (site, line, col) = Self::marked(claim.mark);
            let (callsite, outcome) = match claim.mark {
                Some(m) if m.err => (&c.err, "err"),
                _ if site == Site::Macro => (&c.ok, "unknown"),
                _ => (&c.ok, "returned"),
            };
            self.emit(callsite, start, site, line, col, outcome, None, None);
        }
    }

    #[allow(clippy::too_many_arguments)] // one call per ending kind, all private
    fn emit(
        &self,
        callsite: &'static ExitCallsite,
        start: u64,
        site: Site,
        line: u32,
        col: u32,
        outcome: &str,
        error: Option<&ErrText<'_>>,
        value: Option<&dyn Debug>,
    ) {
        let meta = callsite.metadata();
        let level = *meta.level();
        if level > STATIC_MAX_LEVEL || level > LevelFilter::current() {
            return;
        }
        let interest = callsite.interest();
        if interest.is_never()
            || (!interest.is_always() && !dispatcher::get_default(|d| d.enabled(meta)))
        {
            return;
        }
        let s = self.site;
        let path = s.path();
        let elapsed = now_us().saturating_sub(start);
        let summary = Summary {
            path,
            site,
            file: s.info().file,
            line,
            col,
            outcome,
            error,
        };
        // Taken rather than borrowed: a subscriber that calls an annotated
        // function while this event is dispatched finds an empty buffer and
        // builds its own message, instead of failing a borrow.
        let mut message = MESSAGE.try_with(Cell::take).unwrap_or_default();
        summary.write_to(&mut message);
        if s.info().unexpected {
            crate::termination_log::note_unexpected(&message);
        }
        let message_str = message.as_str();
        let value = value.map(field::debug);
        let error = error.map(field::display);
        let values: [Option<&dyn Value>; 13] = [
            Some(&message_str),
            Some(&"fn_exit"),
            Some(&path),
            Some(&site.as_str()),
            Some(&s.info().file),
            Some(&line),
            Some(&col),
            Some(&outcome),
            error.as_ref().map(|e| e as &dyn Value),
            value.as_ref().map(|v| v as &dyn Value),
            Some(&elapsed),
            s.info().label.as_ref().map(|l| l as &dyn Value),
            Some(&s.info().unexpected),
        ];
        Event::dispatch(meta, &meta.fields().value_set_all(&values));
        // Keep the buffer for the next call on this thread, unless one huge
        // error message grew it. Ignored: a thread whose locals are already
        // destroyed simply has no buffer to keep.
        if message.capacity() <= MESSAGE_KEEP {
            message.clear();
            let _ = MESSAGE.try_with(|cell| cell.set(message));
        }
    }
}

/// The largest message buffer kept from one call to the next.
const MESSAGE_KEEP: usize = 4096;

thread_local! {
    /// This thread's reusable buffer for the `message` of a `fn_exit`
    /// record, so that building it costs no allocation.
    static MESSAGE: Cell<String> = const { Cell::new(String::new()) };
}

impl Drop for ExitGuard {
    #[inline]
    fn drop(&mut self) {
        if self.recording() {
            self.drop_slow();
        }
    }
}

/// The `error` field's text.
enum ErrText<'a> {
    Chain(&'a (dyn std::error::Error + 'a)),
    Display(&'a dyn Display),
    Debug(&'a dyn Debug),
    Panic(String),
}

impl<'a> ErrText<'a> {
    fn from_ref(err: ErrorRef<'a>) -> Option<Self> {
        match err {
            ErrorRef::Chain(e) => Some(ErrText::Chain(e)),
            ErrorRef::Display(e) => Some(ErrText::Display(e)),
            ErrorRef::Debug(e) => Some(ErrText::Debug(e)),
            ErrorRef::Opaque => None,
        }
    }
}

impl Display for ErrText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The first error may borrow (`BorrowedErr<'a>`, a poisoned
            // `MutexGuard`); its sources are `'static` by `Error`'s contract.
            ErrText::Chain(e) => {
                Display::fmt(e, f)?;
                match e.source() {
                    Some(source) => {
                        f.write_str(": ")?;
                        Display::fmt(&ErrorChain(source), f)
                    }
                    None => Ok(()),
                }
            }
            ErrText::Display(e) => e.fmt(f),
            ErrText::Debug(e) => e.fmt(f),
            ErrText::Panic(s) => f.write_str(s),
        }
    }
}

/// The `message` field: `crate::run left via `?` at src/main.rs:42:17: err: reset`.
struct Summary<'a> {
    path: &'a str,
    site: Site,
    file: &'a str,
    line: u32,
    col: u32,
    outcome: &'a str,
    error: Option<&'a ErrText<'a>>,
}

impl Summary<'_> {
    /// Appends the message to `out`. Every record of an annotated function
    /// builds one, so the fixed parts are copied as whole pieces and the
    /// numbers go through `itoa`: with `write!` and its `{}` machinery this
    /// was about a third of the instructions of a `fn_exit` record. Only a
    /// user's error text still goes through `fmt`, as it must.
    fn write_to(&self, out: &mut String) {
        let via = match self.site {
            Site::Return => " left via `return` at ",
            Site::Question => " left via `?` at ",
            Site::Tail => " left via its tail at ",
            Site::Macro => " left via a macro at ",
            Site::Unwind => " left via a panic unwinding at ",
            Site::Cancelled => " left via cancellation at ",
        };
        let mut digits = itoa::Buffer::new();
        out.push_str(self.path);
        out.push_str(via);
        out.push_str(self.file);
        out.push(':');
        out.push_str(digits.format(self.line));
        out.push(':');
        out.push_str(digits.format(self.col));
        out.push_str(": ");
        out.push_str(self.outcome);
        if let Some(error) = self.error {
            out.push_str(": ");
            match error {
                ErrText::Panic(text) => out.push_str(text),
                // Ignored: writing to a `String` cannot fail; an error from
                // the user's `Display` impl leaves what it wrote, as it did
                // when the message was formatted in the layer.
                error => {
                    let _ = fmt::Write::write_fmt(out, format_args!("{error}"));
                }
            }
        }
    }
}

/// Records an exit the expansion saw (`return`, the tail) and passes its
/// value through. The value is an argument rather than a `let` so that it
/// keeps the expected type of the place it returns to, and `classify`
/// classifies it only when the record is wanted. The value comes last, so
/// that `return exit(.., value)` ends where the user's `return value` ends
/// and the user's lints about it (`clippy::needless_return`) still see it.
/// Not a stable API.
#[inline]
pub fn exit<R>(
    guard: &ExitGuard,
    site: Site,
    line: u32,
    col: u32,
    classify: impl Classify<R>,
    value: R,
) -> R {
    exit_with(guard, site, line, col, |v| classify.outcome(v), value)
}

/// [`exit`] with a closure that classifies, for a return type the
/// expansion cannot name whole (`Result<impl Trait, E>`): a closure is
/// checked after the value, whose type it then knows. Not a stable API.
#[inline]
pub fn exit_with<R>(
    guard: &ExitGuard,
    site: Site,
    line: u32,
    col: u32,
    outcome: impl FnOnce(&R) -> Outcome<'_>,
    value: R,
) -> R {
    if !guard.counted_only(site, line) {
        guard.exit_slow(site, line, col, outcome(&value), None);
    }
    value
}

/// [`exit`] with the `ret` option: the value's `Debug` too. Not a stable API.
#[inline]
pub fn exit_ret<R: Debug>(
    guard: &ExitGuard,
    site: Site,
    line: u32,
    col: u32,
    classify: impl Classify<R>,
    value: R,
) -> R {
    exit_ret_with(guard, site, line, col, |v| classify.outcome(v), value)
}

/// [`exit_with`] with the `ret` option. Not a stable API.
#[inline]
pub fn exit_ret_with<R: Debug>(
    guard: &ExitGuard,
    site: Site,
    line: u32,
    col: u32,
    outcome: impl FnOnce(&R) -> Outcome<'_>,
    value: R,
) -> R {
    if !guard.counted_only(site, line) {
        guard.exit_slow(site, line, col, outcome(&value), Some(&value));
    }
    value
}

/// The operand of a `?` in an async body: records the exit when the `?`
/// is about to short-circuit, and passes the operand on to the user's own
/// `?`, so that its conversions and its diagnostics stay std's:
///
/// ```text
/// match EXPR { v => question(&guard, line, col, Kind::levels_of(&v).__lastwords_classifier(), v) }?
/// ```
///
/// The classifier is looked up on the operand's type inside the arm, whose
/// temporaries end with it: none lives across an `.await`. (A sync body's
/// `?` goes through [`super::question::Question`], whose temporaries last
/// to the end of the statement.) Not a stable API.
#[inline]
pub fn question<T>(
    guard: &ExitGuard,
    line: u32,
    col: u32,
    classify: impl Classify<T>,
    value: T,
) -> T {
    guard.question(line, col, &value, |v| classify.outcome(v));
    value
}

/// [`question`] for an operand whose classifier is decided after the body
/// (see [`super::outcome::late`]). Not a stable API.
#[inline]
pub fn question_late<T, C: Classify<T>>(
    guard: &ExitGuard,
    line: u32,
    col: u32,
    _late: &impl Fn(std::marker::PhantomData<T>) -> C,
    value: T,
) -> T {
    question(guard, line, col, C::NEW, value)
}

impl ExitGuard {
    /// The `?` at `line:col` with this operand: records the exit when the
    /// `?` is about to short-circuit.
    #[inline]
    pub(super) fn question<T>(
        &self,
        line: u32,
        col: u32,
        value: &T,
        outcome: impl FnOnce(&T) -> Outcome<'_>,
    ) {
        if self.recording() {
            let outcome = outcome(value);
            if outcome.breaks() && !self.counted_only(Site::Question, line) {
                self.exit_slow(Site::Question, line, col, outcome, None);
            }
        }
    }
}

/// The value of a body run as a closure or an inner async block: if no
/// seen exit recorded it, it left through a `return` hidden in a macro (or
/// a tail left alone). Not a stable API.
#[inline]
pub fn finish<R>(guard: &ExitGuard, value: R, classify: impl Classify<R>) -> R {
    finish_with(guard, value, |v| classify.outcome(v))
}

/// [`finish`] with a closure that classifies (see [`exit_with`]). Not a
/// stable API.
#[inline]
pub fn finish_with<R>(guard: &ExitGuard, value: R, outcome: impl FnOnce(&R) -> Outcome<'_>) -> R {
    if guard.recording() {
        guard.finish_slow(outcome(&value), None);
    }
    value
}

/// [`finish`] with the `ret` option. Not a stable API.
#[inline]
pub fn finish_ret<R: Debug>(guard: &ExitGuard, value: R, classify: impl Classify<R>) -> R {
    finish_ret_with(guard, value, |v| classify.outcome(v))
}

/// [`finish_with`] with the `ret` option. Not a stable API.
#[inline]
pub fn finish_ret_with<R: Debug>(
    guard: &ExitGuard,
    value: R,
    outcome: impl FnOnce(&R) -> Outcome<'_>,
) -> R {
    if guard.recording() {
        guard.finish_slow(outcome(&value), Some(&value));
    }
    value
}

/// Runs a sync body as a closure. The `FnOnce` bound makes the closure
/// `FnOnce` whatever its body does, so that a reborrow through a captured
/// `&mut` may leave it, as it may leave the function. Not a stable API.
#[inline(always)]
pub fn call_once<R>(body: impl FnOnce() -> R) -> R {
    body()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Wrapped;

    /// The message as it was formatted with `write!` before `write_to`.
    fn with_fmt(s: &Summary<'_>) -> String {
        let how = match s.site {
            Site::Return => "`return`",
            Site::Question => "`?`",
            Site::Tail => "its tail",
            Site::Macro => "a macro",
            Site::Unwind => "a panic unwinding",
            Site::Cancelled => "cancellation",
        };
        let mut text = format!(
            "{} left via {how} at {}:{}:{}: {}",
            s.path, s.file, s.line, s.col, s.outcome
        );
        if let Some(error) = s.error {
            text.push_str(&format!(": {error}"));
        }
        text
    }

    #[test]
    fn summary_writes_what_the_format_string_wrote() {
        let chained = Wrapped("backfill failed", std::io::Error::other("reset"));
        let errors = [
            None,
            Some(ErrText::Chain(&chained)),
            Some(ErrText::Display(&"plain \"text\"")),
            Some(ErrText::Debug(&Some(3))),
            Some(ErrText::Panic("boom at src/x.rs:1:2".into())),
        ];
        let sites = [
            Site::Return,
            Site::Question,
            Site::Tail,
            Site::Macro,
            Site::Unwind,
            Site::Cancelled,
        ];
        let mut out = String::from("kept: ");
        for site in sites {
            for error in &errors {
                for (line, col) in [(0, 0), (7, 13), (u32::MAX, 1_000_000)] {
                    let summary = Summary {
                        path: "crate::module::Type::method",
                        site,
                        file: "src/é/main.rs",
                        line,
                        col,
                        outcome: "err",
                        error: error.as_ref(),
                    };
                    out.truncate("kept: ".len());
                    summary.write_to(&mut out);
                    assert_eq!(out["kept: ".len()..], with_fmt(&summary));
                }
            }
        }
    }
}
