//! Kubernetes' termination message: a short human summary of how the
//! process ended, in `/dev/termination-log`.
//!
//! Kubernetes shows the content of a container's termination-message file
//! (at most 4 KiB) in `kubectl describe pod`, under the container's last
//! state, and in `.status.containerStatuses[].lastState.terminated.message`.
//! When that file exists (or a path is given with
//! [`Builder::termination_log`](crate::Builder::termination_log)), each
//! death record also writes there, in at most [`MAX_BYTES`] bytes of plain
//! UTF-8 text:
//!
//! ```text
//! killed by SIGTERM
//! after: thread 'worker' panicked at src/feed.rs:88:14:
//! called `Result::unwrap()` on an `Err` value: Closed
//! last unexpected exit: app::run left via `?` at src/app.rs:7:23: err: reset
//! last breadcrumbs (oldest first):
//!   connected to the upstream (src/app.rs:31)
//!   entering select with all three tasks (src/main.rs:40)
//! run_id 0193a1b2c3d4e5f6
//! ```
//!
//! The first line says how the process ended (or, for a panic, the panic
//! as std prints it); then a panic seen earlier in the run, the last
//! `#[exit_path(unexpected)]` exit that was recorded, the last breadcrumbs
//! (the newest kept when they do not all fit) and the `run_id` that finds
//! the run in the JSONL.
//!
//! # Which endings write, and why the last one wins
//!
//! Kubernetes reads the file once the container has ended, so what matters
//! is its final content. Each writer overwrites the whole file:
//!
//! - every `panic`, on any thread (a thread's panic may be all there is to
//!   say if the process is then killed without a record);
//! - `process_exit` with a non-zero code: "exited with code N", with the
//!   last panic as `after:` (a panic in `main` ends as `exit(101)`);
//! - `process_exit` with code 0 empties the file: a panic that was caught,
//!   or a thread's panic the service went on after, did not end the
//!   process, and a message under a container that "Completed" must not
//!   say it died of one;
//! - a termination signal whose default action ends the process (not one
//!   an application handler takes, nor one PID 1 ignores);
//! - a fatal signal that ends the process (after `panic = "abort"`, the
//!   SIGABRT summary carries the panic as `after:`).
//!
//! The file is emptied when lastwords is installed, so a run that is
//! killed without a record (SIGKILL, the OOM killer) leaves no stale
//! message from an earlier run in a file that outlives it.
//!
//! # Written from signal handlers
//!
//! The descriptor is opened at install time (`O_WRONLY | O_CLOEXEC`, no
//! `O_APPEND`). The text is formatted without allocation into a static
//! area claimed with one atomic swap (a handler may run on the small
//! alternate stack of a thread that overflowed its own), then written with
//! `pwrite(fd, text, 0)` followed by `ftruncate(fd, len)`, both
//! async-signal-safe. A file that cannot seek (a pipe, a terminal) gets a
//! plain `write`.

use std::cell::UnsafeCell;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use crate::error::InitError;
use crate::json::{self, Out, StackBuf};
use crate::ring::Crumb;

/// The largest termination message Kubernetes keeps.
pub const MAX_BYTES: usize = 4096;

/// Where Kubernetes reads the termination message by default
/// (`terminationMessagePath`).
pub const DEFAULT_PATH: &str = "/dev/termination-log";

/// Cap on one panic's or one unexpected exit's text in the message.
const NOTE_BYTES: usize = 1024;

/// Cap on one breadcrumb's name in the message.
const CRUMB_NAME_BYTES: usize = 200;

/// How many breadcrumbs the message lists at most (fewer when they do not
/// fit).
const CRUMBS: usize = 10;

/// What a writer found the static area busy with: how long it waits for
/// it (another thread writing the message at the same moment) before it
/// gives up on writing.
const BUSY_WAIT_MS: u32 = 50;

/// Argument of [`Builder::termination_log`](crate::Builder::termination_log):
/// a path (`&str`, `String`, `&Path`, `PathBuf`), or `None` to turn the
/// termination message off.
pub trait TerminationLogPath {
    /// The path, or `None` for off.
    fn into_path(self) -> Option<PathBuf>;
}

impl TerminationLogPath for &str {
    fn into_path(self) -> Option<PathBuf> {
        Some(PathBuf::from(self))
    }
}

impl TerminationLogPath for String {
    fn into_path(self) -> Option<PathBuf> {
        Some(PathBuf::from(self))
    }
}

impl TerminationLogPath for &Path {
    fn into_path(self) -> Option<PathBuf> {
        Some(self.to_owned())
    }
}

impl TerminationLogPath for PathBuf {
    fn into_path(self) -> Option<PathBuf> {
        Some(self)
    }
}

impl TerminationLogPath for &PathBuf {
    fn into_path(self) -> Option<PathBuf> {
        Some(self.clone())
    }
}

/// The only `Option` accepted, so that a bare `None` needs no annotation.
impl TerminationLogPath for Option<PathBuf> {
    fn into_path(self) -> Option<PathBuf> {
        self
    }
}

/// What the builder asked for.
#[derive(Clone, Debug, Default)]
pub(crate) enum Setting {
    /// [`DEFAULT_PATH`] when it exists and can be opened; else off.
    #[default]
    Default,
    /// No termination message.
    Off,
    /// This file, created if missing; failing to open it is an error.
    Path(PathBuf),
}

/// The open descriptor, or -1.
static FD: AtomicI32 = AtomicI32::new(-1);
/// Whether the file can seek (`pwrite` + `ftruncate`) or is written with
/// a plain `write`.
static SEEKABLE: AtomicBool = AtomicBool::new(true);
/// Set by the first [`configure`]: `install_hooks` opens the default path
/// only when no builder said anything.
static CONFIGURED: AtomicBool = AtomicBool::new(false);

/// Opens the file `setting` names and empties it.
///
/// # Errors
///
/// When an explicit path cannot be opened for writing. The default path
/// missing or unwritable only leaves the termination message off.
pub(crate) fn configure(setting: &Setting) -> Result<(), InitError> {
    CONFIGURED.store(true, Ordering::Release);
    let fd = match setting {
        Setting::Off => -1,
        // Not in Kubernetes (or told not to write there): off.
        Setting::Default => open(Path::new(DEFAULT_PATH), false).unwrap_or(-1),
        Setting::Path(path) => open(path, true).map_err(|e| {
            InitError::io(
                format!("cannot open the termination log {}", path.display()),
                e,
            )
        })?,
    };
    if fd >= 0 {
        SEEKABLE.store(seekable(fd), Ordering::Release);
        if SEEKABLE.load(Ordering::Acquire) {
            // SAFETY: a descriptor we own. Ignored: a file that cannot be
            // emptied still gets each message written over it.
            let _ = unsafe { libc::ftruncate(fd, 0) };
        }
    }
    // The old descriptor, from an earlier call, is left open: a handler
    // on another thread may be writing through it right now.
    FD.swap(fd, Ordering::AcqRel);
    Ok(())
}

/// For `install_hooks` used without a builder: the default setting, unless
/// a builder configured the termination log already.
pub(crate) fn configure_default_once() {
    if !CONFIGURED.load(Ordering::Acquire) {
        // Ignored: the default setting never fails.
        let _ = configure(&Setting::Default);
    }
}

fn open(path: &Path, create: bool) -> std::io::Result<libc::c_int> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut flags = libc::O_WRONLY | libc::O_CLOEXEC;
    if create {
        flags |= libc::O_CREAT;
    }
    // SAFETY: a valid C string; the mode is read only with O_CREAT.
    let fd = unsafe { libc::open(c_path.as_ptr(), flags, 0o644 as libc::c_uint) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// Whether `fd` is a regular file (one `pwrite` at offset 0 and a
/// `ftruncate` replace its content).
fn seekable(fd: libc::c_int) -> bool {
    // SAFETY: a zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open; `st` is writable.
    unsafe { libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG }
}

/// Whether a termination message is written at all. Async-signal-safe.
pub(crate) fn enabled() -> bool {
    FD.load(Ordering::Acquire) >= 0
}

/// How the process (or, for a panic, a thread) ended.
#[derive(Clone, Copy)]
pub(crate) enum Ending<'a> {
    /// `process_exit` with this code (never 0: see [`clear`]), and where
    /// `lastwords::exit` was called.
    Exit {
        code: i32,
        location: Option<(&'a str, u32, u32)>,
    },
    /// A panic: its text is the one [`panic`] kept.
    Panic,
    /// A termination signal whose default action ends the process.
    Signal { signo: libc::c_int },
    /// A fatal signal, and whether it is a stack overflow.
    Fatal { signo: libc::c_int, overflow: bool },
}

/// The static area: one writer at a time, claimed with `busy`.
struct Scratch {
    busy: AtomicBool,
    out: UnsafeCell<StackBuf<MAX_BYTES>>,
    panic: UnsafeCell<StackBuf<NOTE_BYTES>>,
    unexpected: UnsafeCell<StackBuf<NOTE_BYTES>>,
    crumbs: UnsafeCell<[Option<Crumb>; CRUMBS]>,
}

// SAFETY: the cells are only touched by the holder of `busy`.
unsafe impl Sync for Scratch {}

static SCRATCH: Scratch = Scratch {
    busy: AtomicBool::new(false),
    out: UnsafeCell::new(StackBuf::new()),
    panic: UnsafeCell::new(StackBuf::new()),
    unexpected: UnsafeCell::new(StackBuf::new()),
    crumbs: UnsafeCell::new([None; CRUMBS]),
};

/// Holds the static area; releases it when dropped.
struct Claim(());

impl Drop for Claim {
    fn drop(&mut self) {
        SCRATCH.busy.store(false, Ordering::Release);
    }
}

/// Claims the static area, waiting at most [`BUSY_WAIT_MS`] for another
/// writer. Async-signal-safe.
fn claim(wait: bool) -> Option<Claim> {
    let mut waited = 0;
    while SCRATCH.busy.swap(true, Ordering::Acquire) {
        if !wait || waited >= BUSY_WAIT_MS {
            return None;
        }
        pause_1ms();
        waited += 1;
    }
    Some(Claim(()))
}

fn pause_1ms() {
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: 1_000_000,
    };
    // SAFETY: a valid timespec; waking early only means one more look.
    unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
}

/// Keeps the last recorded `#[exit_path(unexpected)]` exit's message
/// (`app::run left via `?` at src/app.rs:7:23: err: reset`) for the next
/// termination message. Skipped when another thread is writing one.
pub(crate) fn note_unexpected(message: &str) {
    if !enabled() {
        return;
    }
    let mask = crate::sigmask::block();
    if let Some(_claim) = claim(false) {
        // SAFETY: we hold the claim.
        let note = unsafe { &mut *SCRATCH.unexpected.get() };
        note.truncate(0);
        put_cut(note, message, NOTE_BYTES);
    }
    crate::sigmask::restore_mask(&mask);
}

/// A panic: keeps its text (`thread 'main' panicked at src/main.rs:3:5:`
/// and the message, as std prints it) for later endings, and writes the
/// termination message for it.
pub(crate) fn panic(location: &str, message: &str) {
    if !enabled() {
        return;
    }
    let mut name = [0u8; 17];
    let thread = crate::thread::name_sigsafe(&mut name);
    let mask = crate::sigmask::block();
    if let Some(_claim) = claim(true) {
        // SAFETY: we hold the claim.
        let note = unsafe { &mut *SCRATCH.panic.get() };
        note.truncate(0);
        put_cut(note, "thread '", NOTE_BYTES);
        put_cut(note, thread, NOTE_BYTES);
        put_cut(note, "' panicked at ", NOTE_BYTES);
        put_cut(note, location, NOTE_BYTES);
        put_cut(note, ":\n", NOTE_BYTES);
        put_cut(note, message, NOTE_BYTES);
        write_claimed(Ending::Panic);
    }
    crate::sigmask::restore_mask(&mask);
}

/// Writes the termination message for `ending`. Async-signal-safe.
pub(crate) fn write(ending: Ending<'_>) {
    if !enabled() {
        return;
    }
    let mask = crate::sigmask::block();
    if let Some(_claim) = claim(true) {
        write_claimed(ending);
    }
    crate::sigmask::restore_mask(&mask);
}

/// Empties the file: the process exits with code 0. Async-signal-safe.
pub(crate) fn clear() {
    let fd = FD.load(Ordering::Acquire);
    if fd < 0 || !SEEKABLE.load(Ordering::Acquire) {
        return;
    }
    let mask = crate::sigmask::block();
    if let Some(_claim) = claim(true) {
        // SAFETY: an open descriptor. Ignored: nothing better to do for a
        // file that cannot be emptied while the process exits.
        let _ = unsafe { libc::ftruncate(fd, 0) };
    }
    crate::sigmask::restore_mask(&mask);
}

/// Formats and writes the message; the caller holds the claim.
/// Async-signal-safe.
fn write_claimed(ending: Ending<'_>) {
    // SAFETY: the caller holds the claim.
    let (out, panic, unexpected, crumbs) = unsafe {
        (
            &mut *SCRATCH.out.get(),
            &*SCRATCH.panic.get(),
            &*SCRATCH.unexpected.get(),
            &mut *SCRATCH.crumbs.get(),
        )
    };
    let got = crate::ring::recent(crumbs);
    let mut name = [0u8; 17];
    let thread = crate::thread::name_sigsafe(&mut name);
    let run_id = crate::sink::Sink::global().map_or("", |s| s.run_id());
    format(
        out,
        &Parts {
            ending,
            thread,
            panic: as_str(panic.as_bytes()),
            unexpected: as_str(unexpected.as_bytes()),
            crumbs: &crumbs[..got],
            run_id,
        },
    );
    put_file(out.as_bytes());
}

/// The notes are built with [`put_cut`], so they are valid UTF-8; an empty
/// string stands in should that ever not hold.
fn as_str(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("")
}

/// Replaces the file's content with `text`. Async-signal-safe.
fn put_file(text: &[u8]) {
    let fd = FD.load(Ordering::Acquire);
    if fd < 0 {
        return;
    }
    // SAFETY: an open descriptor and a valid buffer. Ignored results: a
    // dying process has nowhere to report that its termination message
    // could not be written, and the JSONL record is already written.
    unsafe {
        if SEEKABLE.load(Ordering::Acquire) {
            // New text first, then cut what an older, longer one left
            // beyond it: a death between the two leaves the new text
            // followed by stale bytes, never an empty file.
            let _ = libc::pwrite(fd, text.as_ptr().cast(), text.len(), 0);
            let _ = libc::ftruncate(fd, text.len() as libc::off_t);
        } else {
            let _ = libc::write(fd, text.as_ptr().cast(), text.len());
        }
    }
}

/// What one termination message says.
struct Parts<'a> {
    ending: Ending<'a>,
    /// The thread that writes it (meaningful for a fatal signal).
    thread: &'a str,
    /// The last panic's text, or empty.
    panic: &'a str,
    /// The last unexpected exit's message, or empty.
    unexpected: &'a str,
    /// The last breadcrumbs, oldest first.
    crumbs: &'a [Option<Crumb>],
    run_id: &'a str,
}

/// Formats the termination message into `out`: at most `N` bytes, always
/// valid UTF-8 (every piece is cut on a char boundary). Async-signal-safe.
fn format<const N: usize>(out: &mut StackBuf<N>, parts: &Parts<'_>) {
    out.truncate(0);
    out.overflowed = false;
    // Room kept for the breadcrumbs and the run_id line, so that a long
    // panic message cannot push them out.
    let keep = N.saturating_sub(N / 4);
    match parts.ending {
        Ending::Exit { code, location } => {
            out.put(b"exited with code ");
            json::int(out, code);
            if let Some((file, line, col)) = location {
                put_cut(out, " at ", keep);
                put_cut(out, file, keep);
                put_cut(out, ":", keep);
                put_int(out, line, keep);
                put_cut(out, ":", keep);
                put_int(out, col, keep);
            }
        }
        Ending::Panic => put_cut(out, parts.panic, keep),
        Ending::Signal { signo } => {
            out.put(b"killed by ");
            out.put(crate::hooks::sigsafe::signal_name(signo).as_bytes());
        }
        Ending::Fatal { signo, overflow } => {
            let name = crate::hooks::sigsafe::signal_name(signo);
            if overflow {
                put_cut(out, "thread '", keep);
                put_cut(out, parts.thread, keep);
                put_cut(out, "' overflowed its stack (fatal signal ", keep);
                put_cut(out, name, keep);
                put_cut(out, ")", keep);
            } else {
                put_cut(out, "fatal signal ", keep);
                put_cut(out, name, keep);
                put_cut(out, " in thread '", keep);
                put_cut(out, parts.thread, keep);
                put_cut(out, "'", keep);
            }
        }
    }
    put_cut(out, "\n", keep);
    if !matches!(parts.ending, Ending::Panic) && !parts.panic.is_empty() {
        put_cut(out, "after: ", keep);
        put_cut(out, parts.panic, keep);
        put_cut(out, "\n", keep);
    }
    if !parts.unexpected.is_empty() {
        put_cut(out, "last unexpected exit: ", keep);
        put_cut(out, parts.unexpected, keep);
        put_cut(out, "\n", keep);
    }
    // The run_id line goes last; its room is kept now.
    let run_line = "run_id ".len() + parts.run_id.len() + 1;
    let crumb_room = N.saturating_sub(out.len() + run_line);
    write_crumbs(out, parts.crumbs, crumb_room);
    if !parts.run_id.is_empty() {
        put_cut(out, "run_id ", N);
        put_cut(out, parts.run_id, N);
        put_cut(out, "\n", N);
    }
}

/// `last breadcrumbs (oldest first):` and one line per breadcrumb, as many
/// of the newest as fit in `room` bytes. Async-signal-safe.
fn write_crumbs<const N: usize>(out: &mut StackBuf<N>, crumbs: &[Option<Crumb>], room: usize) {
    const TITLE: &str = "last breadcrumbs (oldest first):\n";
    let mut need = TITLE.len();
    let mut first = crumbs.len();
    for (i, crumb) in crumbs.iter().enumerate().rev() {
        let Some(crumb) = crumb else { continue };
        let line = crumb_line_len(crumb);
        if need + line > room {
            break;
        }
        need += line;
        first = i;
    }
    if first == crumbs.len() {
        return;
    }
    let limit = out.len() + need;
    put_cut(out, TITLE, limit);
    for crumb in crumbs[first..].iter().flatten() {
        put_cut(out, "  ", limit);
        put_cut(out, cut(crumb.site.name, CRUMB_NAME_BYTES), limit);
        put_cut(out, " (", limit);
        put_cut(out, crumb.site.file, limit);
        put_cut(out, ":", limit);
        put_int(out, crumb.site.line, limit);
        put_cut(out, ")\n", limit);
    }
}

/// The bytes of one breadcrumb's line. Async-signal-safe.
fn crumb_line_len(crumb: &Crumb) -> usize {
    let digits = itoa::Buffer::new().format(crumb.site.line).len();
    2 + cut(crumb.site.name, CRUMB_NAME_BYTES).len() + 2 + crumb.site.file.len() + 1 + digits + 2
}

fn put_int<const N: usize>(out: &mut StackBuf<N>, value: u32, limit: usize) {
    put_cut(out, itoa::Buffer::new().format(value), limit);
}

/// Appends `s`, cut on a char boundary so that `out` stays within
/// `limit` bytes (and its capacity); a cut piece ends with `...`.
/// Async-signal-safe.
fn put_cut<const N: usize>(out: &mut StackBuf<N>, s: &str, limit: usize) {
    let limit = limit.min(N);
    let room = limit.saturating_sub(out.len());
    if s.len() <= room {
        out.put(s.as_bytes());
        return;
    }
    if room < 3 {
        return;
    }
    out.put(cut(s, room - 3).as_bytes());
    out.put(b"...");
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char
/// boundary. Async-signal-safe.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::ring::CrumbSite;

    fn crumb(site: &'static CrumbSite, index: u64) -> Option<Crumb> {
        Some(Crumb {
            site,
            tid: 1,
            at: Timestamp::from_micros(0),
            index,
        })
    }

    fn text<const N: usize>(out: &StackBuf<N>) -> String {
        String::from_utf8(out.as_bytes().to_vec()).expect("valid UTF-8")
    }

    #[test]
    fn an_exit_says_how_where_what_and_the_breadcrumbs() {
        static A: CrumbSite = CrumbSite {
            name: "connected",
            file: "src/main.rs",
            line: 12,
        };
        static B: CrumbSite = CrumbSite {
            name: "entering select",
            file: "src/main.rs",
            line: 40,
        };
        let mut out = StackBuf::<MAX_BYTES>::new();
        format(
            &mut out,
            &Parts {
                ending: Ending::Exit {
                    code: 3,
                    location: Some(("src/main.rs", 50, 9)),
                },
                thread: "main",
                panic: "thread 'worker' panicked at src/feed.rs:8:14:\nboom",
                unexpected: "app::run left via `?` at src/app.rs:7:23: err: reset",
                crumbs: &[crumb(&A, 0), crumb(&B, 1)],
                run_id: "0193abc",
            },
        );
        assert_eq!(
            text(&out),
            "exited with code 3 at src/main.rs:50:9\n\
             after: thread 'worker' panicked at src/feed.rs:8:14:\nboom\n\
             last unexpected exit: app::run left via `?` at src/app.rs:7:23: err: reset\n\
             last breadcrumbs (oldest first):\n  \
             connected (src/main.rs:12)\n  \
             entering select (src/main.rs:40)\n\
             run_id 0193abc\n"
        );
    }

    #[test]
    fn huge_message_and_breadcrumbs_are_cut_to_4_kib_on_a_char_boundary() {
        // Three-byte characters, so that byte limits fall inside one.
        let huge = "€".repeat(5000);
        let mut note = StackBuf::<NOTE_BYTES>::new();
        put_cut(
            &mut note,
            "thread 'main' panicked at src/main.rs:1:1:\n",
            NOTE_BYTES,
        );
        put_cut(&mut note, &huge, NOTE_BYTES);
        assert!(note.len() <= NOTE_BYTES);
        let note = text(&note);
        assert!(note.ends_with("€..."), "{note}");

        let site: &'static CrumbSite = Box::leak(Box::new(CrumbSite {
            name: Box::leak("ü".repeat(3000).into_boxed_str()),
            file: "src/main.rs",
            line: 7,
        }));
        let last: &'static CrumbSite = Box::leak(Box::new(CrumbSite {
            name: "the newest",
            file: "src/main.rs",
            line: 8,
        }));
        let mut crumbs: Vec<Option<Crumb>> =
            (0..CRUMBS as u64 - 1).map(|i| crumb(site, i)).collect();
        crumbs.push(crumb(last, CRUMBS as u64));
        for ending in [
            Ending::Panic,
            Ending::Exit {
                code: 1,
                location: None,
            },
            Ending::Fatal {
                signo: libc::SIGSEGV,
                overflow: false,
            },
        ] {
            let mut out = StackBuf::<MAX_BYTES>::new();
            format(
                &mut out,
                &Parts {
                    ending,
                    thread: "main",
                    panic: &note,
                    unexpected: &huge,
                    crumbs: &crumbs,
                    run_id: "0193abc",
                },
            );
            assert!(out.len() <= MAX_BYTES, "{}", out.len());
            assert!(!out.overflowed);
            let text = text(&out);
            assert!(text.contains("panicked at src/main.rs:1:1:"), "{text}");
            assert!(text.contains("last unexpected exit: €€€"), "{text}");
            // The newest breadcrumb is kept, the oldest long ones dropped.
            assert!(text.contains("  the newest (src/main.rs:8)\n"), "{text}");
            assert!(text.ends_with("\nrun_id 0193abc\n"), "{text}");
        }
    }

    #[test]
    fn a_signal_names_the_signal_and_the_thread() {
        let mut out = StackBuf::<MAX_BYTES>::new();
        let parts = |ending| Parts {
            ending,
            thread: "deep",
            panic: "",
            unexpected: "",
            crumbs: &[],
            run_id: "r",
        };
        format(
            &mut out,
            &parts(Ending::Signal {
                signo: libc::SIGTERM,
            }),
        );
        assert_eq!(text(&out), "killed by SIGTERM\nrun_id r\n");
        format(
            &mut out,
            &parts(Ending::Fatal {
                signo: libc::SIGSEGV,
                overflow: true,
            }),
        );
        assert_eq!(
            text(&out),
            "thread 'deep' overflowed its stack (fatal signal SIGSEGV)\nrun_id r\n"
        );
    }

    #[test]
    fn a_bare_none_turns_it_off() {
        fn setting(path: impl TerminationLogPath) -> Option<PathBuf> {
            path.into_path()
        }
        assert_eq!(setting(None), None);
        assert_eq!(setting("/x"), Some(PathBuf::from("/x")));
    }
}
