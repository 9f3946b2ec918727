//! The stderr mirror: the records that say something went wrong, also written
//! to stderr as one human line each, so `docker logs` and `journalctl` show
//! them even when the JSONL file is lost with the container.
//!
//! Each line goes out with one `write(2)`. A line identical to the previous
//! one is not repeated: it is counted, and the count is written as
//! `[lastwords] (previous line repeated N times)` before the next different
//! line, so a retry loop spinning on the same error cannot flood stderr. The
//! JSONL file still gets every record.
//!
//! # Never waiting for stderr
//!
//! stderr is often a pipe (a container's log driver, a supervisor) and a
//! stalled reader leaves it full: a plain `write(2)` then waits forever, and
//! a dying process would never die. So a mirror line is written only if it
//! can be written *now*; otherwise it is skipped and counted, and the count
//! is the `mirror_dropped` member of `process_exit`. The JSONL record is
//! written either way. How, by what stderr is:
//!
//! - a pipe, FIFO or terminal: through a second descriptor opened on
//!   `/proc/self/fd/2` with `O_NONBLOCK`. That is a new open file
//!   description, so the flag does not leak into fd 2, which the
//!   application's own `eprintln!` shares with every process that inherited
//!   it (setting `O_NONBLOCK` on fd 2 would make their writes fail with
//!   `EAGAIN`). Where that open fails, `poll(2)` with a zero timeout first;
//! - a socket (journald's stream): `send(2)` with `MSG_DONTWAIT`;
//! - a regular file: a plain `write(2)`.
//!
//! Lines are cut to [`PIPE_BUF`] bytes, so a pipe takes each whole or not at
//! all, and never interleaved with other writers' lines.
//!
//! # Control characters
//!
//! Lines carry text from outside: field values, panic messages, and the
//! previous run's ending as read back from the old log, which anyone able to
//! write that file controls. Control characters (C0, DEL, C1) are written
//! escaped (`\n`, `\r`, `\t`, `\x1b`, `\u{9b}`), so a value can neither start
//! a forged `[lastwords] …` line nor send escape sequences to a terminal.

use std::cell::UnsafeCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use tracing_core::field::{Field, Visit};
use tracing_core::Event;

use crate::fd::{self, Try, Way, PIPE_BUF};

/// Mirror lines skipped because stderr could not take them at once.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The non-blocking descriptor on stderr's pipe or terminal, and the device
/// and inode it was opened on (-1 and zeros: none).
static NONBLOCKING: AtomicI32 = AtomicI32::new(-1);
static NONBLOCKING_DEV: AtomicU64 = AtomicU64::new(0);
static NONBLOCKING_INO: AtomicU64 = AtomicU64::new(0);
/// Set once [`prepare_stderr`] ran.
static PREPARED: AtomicBool = AtomicBool::new(false);

/// Mirror lines (and lastwords' own stderr messages) skipped so far because
/// stderr could not take them without waiting.
pub(crate) fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Opens the non-blocking descriptor for stderr if it is a pipe, FIFO or
/// terminal. Called at install (later calls do nothing), before any
/// handler is installed; until then lines are written after a `poll(2)`.
pub(crate) fn prepare_stderr() {
    if PREPARED.swap(true, Ordering::AcqRel) {
        return;
    }
    let Some((mode, _, _)) = fd::identity(libc::STDERR_FILENO) else {
        return;
    };
    if mode != libc::S_IFIFO && mode != libc::S_IFCHR {
        return;
    }
    // SAFETY: a constant NUL-terminated path.
    let nb = unsafe {
        libc::open(
            c"/proc/self/fd/2".as_ptr(),
            libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY,
        )
    };
    if nb < 0 {
        return; // no /proc, or not allowed: poll() before each write instead
    }
    match (fd::identity(nb), fd::identity(libc::STDERR_FILENO)) {
        (Some((_, dev, ino)), Some((_, dev2, ino2))) if (dev, ino) == (dev2, ino2) => {
            NONBLOCKING_DEV.store(dev, Ordering::Relaxed);
            NONBLOCKING_INO.store(ino, Ordering::Relaxed);
            NONBLOCKING.store(nb, Ordering::Release);
        }
        _ => {
            // SAFETY: `nb` was opened above and is used nowhere else.
            unsafe { libc::close(nb) };
        }
    }
}

/// Writes `bytes` (one or more whole lines, at most [`PIPE_BUF`] bytes) to
/// stderr if it can take them now; else skips and counts them. Never
/// waits. Async-signal-safe.
pub(crate) fn write_stderr(bytes: &[u8]) {
    let Some((mode, dev, ino)) = fd::identity(libc::STDERR_FILENO) else {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return; // stderr is closed
    };
    // The prepared descriptor, if fd 2 still is what it was opened on and
    // the descriptor itself was not closed and reused by the application
    // (daemons close every descriptor above 2).
    let nb = NONBLOCKING.load(Ordering::Acquire);
    let same = |d, i| {
        d == NONBLOCKING_DEV.load(Ordering::Relaxed) && i == NONBLOCKING_INO.load(Ordering::Relaxed)
    };
    let (to, way) = match fd::identity(nb) {
        Some((_, d, i)) if nb >= 0 && same(dev, ino) && same(d, i) => (nb, Way::Write),
        _ => (libc::STDERR_FILENO, fd::way_for(mode)),
    };
    if fd::try_write(to, way, bytes) != Try::Written {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Collapses repeated lines on their way to stderr.
pub(crate) struct Mirror {
    enabled: bool,
    /// Where lines go: stderr, except in tests.
    fd: libc::c_int,
    /// Held while a thread compares and writes a line. Not a mutex: a
    /// thread that finds it taken writes its line without collapsing
    /// instead of waiting, and a child created by `fork()` while another
    /// thread held it starts with it free (see [`Mirror::reset_after_fork`]).
    busy: AtomicBool,
    last: UnsafeCell<Repeat>,
}

// SAFETY: `last` is only touched by the holder of `busy`.
unsafe impl Sync for Mirror {}

#[derive(Default)]
struct Repeat {
    line: Vec<u8>,
    times: u64,
}

impl Mirror {
    /// A mirror that writes (`enabled`) or stays silent.
    pub(crate) fn new(enabled: bool) -> Mirror {
        Mirror {
            enabled,
            fd: libc::STDERR_FILENO,
            busy: AtomicBool::new(false),
            last: UnsafeCell::new(Repeat::default()),
        }
    }

    /// Whether lines are written at all.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Writes `line` (which ends with `\n`), its control characters
    /// escaped, unless it repeats the previous one. Never waits. Not for
    /// signal handlers (it allocates): those use [`write_stderr`].
    pub(crate) fn line(&self, line: &[u8]) {
        if !self.enabled {
            return;
        }
        let line = escape_line(line);
        if self.busy.swap(true, Ordering::Acquire) {
            // Another thread is writing its line: do not wait for it.
            self.write(&line);
            return;
        }
        // SAFETY: `busy` was false and is now ours.
        let last = unsafe { &mut *self.last.get() };
        if last.line == line {
            last.times += 1;
        } else {
            if last.times > 0 {
                self.write(&repeated_line(last.times));
            }
            self.write(&line);
            last.line.clear();
            last.line.extend_from_slice(&line);
            last.times = 0;
        }
        self.busy.store(false, Ordering::Release);
    }

    /// Writes the pending "repeated N times" line, if any; called when the
    /// process ends so the count is not lost.
    pub(crate) fn flush(&self) {
        if !self.enabled {
            return;
        }
        // An exit can happen while another thread writes a line: then the
        // count is left out rather than waited for.
        if self.busy.swap(true, Ordering::Acquire) {
            return;
        }
        // SAFETY: `busy` was false and is now ours.
        let last = unsafe { &mut *self.last.get() };
        if last.times > 0 {
            self.write(&repeated_line(last.times));
            last.times = 0;
        }
        self.busy.store(false, Ordering::Release);
    }

    /// In a child created by `fork()`: frees the flag another thread of the
    /// parent may have held, and forgets the parent's last line (its buffer
    /// may have been half-way through a reallocation, so it is leaked, not
    /// freed). Async-signal-safe.
    pub(crate) fn reset_after_fork(&self) {
        // SAFETY: in the child only the forking thread runs, and it is in
        // the atfork handler, not inside `line`.
        unsafe {
            let last = &mut *self.last.get();
            std::mem::forget(std::mem::take(&mut last.line));
            last.times = 0;
        }
        self.busy.store(false, Ordering::Release);
        DROPPED.store(0, Ordering::Relaxed);
    }

    fn write(&self, bytes: &[u8]) {
        if self.fd == libc::STDERR_FILENO {
            write_stderr(bytes);
        } else if fd::try_write(self.fd, Way::Write, bytes) != Try::Written {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn repeated_line(times: u64) -> Vec<u8> {
    let plural = if times == 1 { "" } else { "s" };
    format!("[lastwords] (previous line repeated {times} more time{plural})\n").into_bytes()
}

/// What a cut line ends with.
const CUT: &[u8] = b" ...[cut]";

/// `line` with its control characters escaped, and one `\n` at the end,
/// at most [`PIPE_BUF`] bytes in all (longer lines are cut at a character
/// boundary and end with ` ...[cut]`).
pub(crate) fn escape_line(line: &[u8]) -> Vec<u8> {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let mut out = Vec::with_capacity(body.len().min(PIPE_BUF) + 1);
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f | 0x7f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 15) as usize],
                ]);
            }
            // C1 controls (U+0080..U+009F) in UTF-8: some terminals take
            // U+009B as CSI.
            0xc2 if matches!(body.get(i + 1), Some(0x80..=0x9f)) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let c = body[i + 1];
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'{',
                    HEX[(c >> 4) as usize],
                    HEX[(c & 15) as usize],
                    b'}',
                ]);
                i += 1;
            }
            _ => out.push(b),
        }
        i += 1;
        if out.len() > PIPE_BUF {
            break;
        }
    }
    if out.len() > PIPE_BUF - 1 {
        let mut end = PIPE_BUF - 1 - CUT.len();
        // Back to the start of a UTF-8 character.
        while end > 0 && (0x80..0xc0).contains(&out[end]) {
            end -= 1;
        }
        out.truncate(end);
        out.extend_from_slice(CUT);
    }
    out.push(b'\n');
    out
}

/// Fields of a `fn_exit` record that its message already states.
const IN_FN_EXIT_MESSAGE: [&str; 7] = ["fn", "site", "file", "line", "col", "outcome", "error"];

/// The stderr line for a mirrored event:
/// `[lastwords] LEVEL kind target: message k=v …`. A `fn_exit` line leaves
/// out the fields its message already says (`fn`, `site`, position,
/// `outcome`, `error`), so that the line stays readable. `ours` says the
/// event is one of lastwords' own kinds (its `kind` field is then not
/// repeated). Control characters are escaped by [`Mirror::line`].
pub(crate) fn human_line(event: &Event<'_>, kind: &str, ours: bool) -> Vec<u8> {
    /// Message, other fields, whether `kind` is already in the line, and
    /// whether the record is a `fn_exit`.
    struct Human(String, String, bool, bool);
    impl Human {
        fn skips(&self, name: &str) -> bool {
            (self.2 && name == "kind") || (self.3 && IN_FN_EXIT_MESSAGE.contains(&name))
        }
    }
    impl Visit for Human {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            use fmt::Write;
            // Writing to a String cannot fail.
            let _ = match field.name() {
                "message" => write!(self.0, "{value:?}"),
                name if self.skips(name) => Ok(()),
                name => write!(self.1, " {name}={value:?}"),
            };
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            match field.name() {
                "message" => self.0.push_str(value),
                name if self.skips(name) => {}
                name => {
                    self.1.push(' ');
                    self.1.push_str(name);
                    self.1.push('=');
                    self.1.push_str(value);
                }
            }
        }
    }
    let meta = event.metadata();
    let mut human = Human(
        String::new(),
        String::new(),
        ours,
        ours && kind == "fn_exit",
    );
    event.record(&mut human);
    let mut line = format!(
        "[lastwords] {} {} {}: {}{}",
        meta.level().as_str(),
        kind,
        meta.target(),
        human.0,
        human.1
    );
    line.push('\n');
    line.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    #[test]
    fn identical_lines_are_collapsed_and_counted() {
        let path = std::env::temp_dir().join(format!("lastwords-mirror-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let mut m = Mirror::new(true);
        m.fd = file.as_raw_fd();
        for line in ["a\n", "a\n", "a\n", "b\n", "b\n", "c\n"] {
            m.line(line.as_bytes());
        }
        m.line(b"c\n");
        m.flush();
        let out = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            out,
            "a\n[lastwords] (previous line repeated 2 more times)\nb\n\
             [lastwords] (previous line repeated 1 more time)\nc\n\
             [lastwords] (previous line repeated 1 more time)\n"
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn control_characters_are_escaped_and_a_line_stays_one_line() {
        let hostile = "[lastwords] INFO process_start: previous run ended: \
                       exit\n[lastwords] ERROR forged\r\x1b[2J\x1b]0;title\x07\t\x7f\u{9b}31m é\n";
        let line = escape_line(hostile.as_bytes());
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "[lastwords] INFO process_start: previous run ended: exit\\n[lastwords] ERROR \
             forged\\r\\x1b[2J\\x1b]0;title\\x07\\t\\x7f\\u{9b}31m é\n"
        );
        assert_eq!(escape_line(b"no newline"), b"no newline\n");
        let long = "é".repeat(PIPE_BUF);
        let cut = escape_line(long.as_bytes());
        assert!(cut.len() <= PIPE_BUF, "{}", cut.len());
        let cut = String::from_utf8(cut).expect("cut at a character boundary");
        assert!(cut.ends_with(" ...[cut]\n"), "{cut}");
        assert_eq!(cut.matches('\n').count(), 1);
    }

    #[test]
    fn a_fn_exit_mirror_line_does_not_repeat_its_message() {
        struct Human(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
        impl<S: tracing_core::Subscriber> Layer<S> for Human {
            fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
                let line = human_line(event, "fn_exit", true);
                self.0
                    .lock()
                    .unwrap()
                    .push(String::from_utf8(line).unwrap());
            }
        }
        let lines = std::sync::Arc::default();
        let subscriber = tracing_subscriber::registry().with(Human(std::sync::Arc::clone(&lines)));
        tracing::subscriber::with_default(subscriber, || {
            tracing::event!(
                name: "lastwords::fn_exit",
                tracing::Level::ERROR,
                "kind" = "fn_exit",
                "fn" = "app::run",
                site = "?",
                file = "src/app.rs",
                line = 7,
                col = 23,
                outcome = "err",
                error = "reset",
                elapsed_us = 42,
                unexpected = true,
                "app::run left via `?` at src/app.rs:7:23: err: reset"
            );
        });
        assert_eq!(
            *lines.lock().unwrap(),
            ["[lastwords] ERROR fn_exit lastwords_layer::mirror::tests: app::run left via `?` at \
              src/app.rs:7:23: err: reset elapsed_us=42 unexpected=true\n"]
        );
    }
}
