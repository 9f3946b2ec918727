//! Writing a record from a signal handler.
//!
//! A signal can arrive while the interrupted thread holds the allocator's
//! lock, a `RefCell` borrow of its record buffers, or the mirror's mutex, so
//! a handler may only use async-signal-safe code: no allocation, no locks,
//! no `std::fmt`. The record is assembled here in a static scratch area (so
//! the handler's own stack frame stays tiny: it may be running on the small
//! alternate stack of a thread that overflowed its stack) with the same JSON
//! writers as every other record, and handed to [`Sink::commit`], which is
//! async-signal-safe.
//!
//! The scratch area is claimed with one atomic swap. When it is taken (two
//! threads crash at once, or a fatal signal interrupts a termination
//! handler) the record is written from a small stack buffer without
//! breadcrumbs instead.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::clock::Timestamp;
use crate::json::{self, Out, StackBuf};
use crate::ring::Crumb;
use crate::sink::Sink;

/// How many breadcrumbs a signal record carries, oldest first.
pub(crate) const CRUMBS: usize = 16;

/// What a signal handler writes: the kind, the level and the signal.
pub(crate) struct SignalRecord {
    /// `signal` or `fatal_signal`.
    pub(crate) kind: &'static str,
    /// `WARN` or `ERROR`.
    pub(crate) level: &'static str,
    /// The signal number.
    pub(crate) signo: libc::c_int,
    /// The faulting address of SIGSEGV/SIGBUS/SIGILL/SIGFPE, if any.
    pub(crate) fault_address: Option<usize>,
    /// Whether the fault was the thread running off its stack.
    pub(crate) overflow: Overflow,
    /// Whether the signal changes nothing: its action is the default and
    /// the process is PID 1, for which the kernel ignores it.
    pub(crate) ignored: bool,
}

/// What a fatal handler found out about a stack overflow.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// Not a stack overflow, or one that cannot be told apart from other
    /// faults on this architecture.
    No,
    /// A stack overflow, handed on to a handler (std's) that prints
    /// "has overflowed its stack" and aborts: the process dies of SIGABRT.
    ThenAbort,
    /// A stack overflow, handed on to the default action: the process dies
    /// of the fault's own signal.
    ThenDefault,
}

struct Scratch {
    busy: AtomicBool,
    head: UnsafeCell<StackBuf<512>>,
    tail: UnsafeCell<StackBuf<8192>>,
    crumbs: UnsafeCell<[Option<Crumb>; CRUMBS]>,
}

// SAFETY: the cells are only touched by the holder of `busy`.
unsafe impl Sync for Scratch {}

static SCRATCH: Scratch = Scratch {
    busy: AtomicBool::new(false),
    head: UnsafeCell::new(StackBuf::new()),
    tail: UnsafeCell::new(StackBuf::new()),
    crumbs: UnsafeCell::new([None; CRUMBS]),
};

/// In the child of a `fork()`: frees the scratch area, which another thread
/// of the parent may have held. Async-signal-safe.
pub(crate) fn reset_after_fork() {
    SCRATCH.busy.store(false, Ordering::Release);
}

/// Writes `record` to `sink` and its mirror line to stderr; returns its
/// `seq`. Async-signal-safe.
pub(crate) fn write(sink: &Sink, record: &SignalRecord) -> u64 {
    if SCRATCH.busy.swap(true, Ordering::Acquire) {
        return write_small(sink, record);
    }
    // SAFETY: `busy` was false and is now ours: nobody else touches the
    // cells until we release it below.
    let (head, tail, crumbs) = unsafe {
        (
            &mut *SCRATCH.head.get(),
            &mut *SCRATCH.tail.get(),
            &mut *SCRATCH.crumbs.get(),
        )
    };
    head.truncate(0);
    tail.truncate(0);
    head.overflowed = false;
    tail.overflowed = false;
    let got = crate::ring::recent(crumbs);
    write_head(head, sink, record);
    write_fields(tail, record);
    json::key(tail, "breadcrumbs");
    let mark = tail.len();
    crate::record::write_crumbs(tail, crumbs[..got].iter().flatten());
    if tail.len() + 2 > 8192 || tail.overflowed {
        // Too many long breadcrumb names: drop them rather than the record.
        tail.truncate(mark);
        tail.overflowed = false;
        tail.put(b"[]");
    }
    // The exit counts and calls in flight, when the recorder counts: not
    // for a stack overflow, whose handler runs on std's small alternate
    // stack (the top-N tables take a few hundred bytes of stack).
    if matches!(record.overflow, Overflow::No) {
        let mark = tail.len();
        crate::recorder::counts::write_members(tail);
        if tail.len() + 2 > 8192 || tail.overflowed {
            tail.truncate(mark);
            tail.overflowed = false;
        }
    }
    tail.put(b"}\n");
    let seq = commit(sink, head.as_bytes(), tail.as_bytes());
    SCRATCH.busy.store(false, Ordering::Release);
    mirror(sink, record);
    seq
}

/// The fallback of [`write()`] when the scratch area is in use: no
/// breadcrumbs, small buffers on the stack. Async-signal-safe.
#[inline(never)]
fn write_small(sink: &Sink, record: &SignalRecord) -> u64 {
    let mut head = StackBuf::<512>::new();
    let mut tail = StackBuf::<320>::new();
    write_head(&mut head, sink, record);
    write_fields(&mut tail, record);
    tail.put(b",\"breadcrumbs\":[]}\n");
    if tail.overflowed {
        return 0; // cannot happen with the fields above; never write half a line
    }
    let seq = commit(sink, head.as_bytes(), tail.as_bytes());
    mirror(sink, record);
    seq
}

/// [`Sink::commit`] with the termination signals blocked on this thread:
/// one arriving here must not cut in between the record's `seq` and its
/// `write`, or the record would be missing below the next signal's. Then
/// the same line, `seq` included, goes to the flight recorder, if one runs,
/// so that the ring alone tells how the run ended (a line with its `seq` is
/// in the file and is never recovered into it again). Async-signal-safe:
/// the ring's push is a few atomics and copies into the mapping.
fn commit(sink: &Sink, head: &[u8], tail: &[u8]) -> u64 {
    let old = crate::sigmask::block();
    let seq = sink.commit(head, tail);
    crate::sigmask::restore_mask(&old);
    if let Some(recorder) = crate::recorder::Recorder::global() {
        let mut seq_buf = StackBuf::<32>::new();
        seq_buf.put(b",\"seq\":");
        json::int(&mut seq_buf, seq);
        recorder.record(&[head, seq_buf.as_bytes(), tail]);
    }
    seq
}

/// The head, byte for byte as `record::head` writes it.
fn write_head<O: Out + ?Sized>(out: &mut O, sink: &Sink, record: &SignalRecord) {
    out.put(b"{\"timestamp\":\"");
    out.put(&Timestamp::now().format());
    out.put(b"\",\"level\":\"");
    out.put(record.level.as_bytes());
    out.put(b"\",\"message\":\"");
    write_message(out, record);
    out.put(b"\",\"target\":\"lastwords\",\"kind\":\"");
    out.put(record.kind.as_bytes());
    out.put(b"\",\"pid\":");
    json::int(out, sink.pid());
    out.put(b",\"run_id\":\"");
    out.put(sink.run_id().as_bytes());
    out.put(b"\"");
}

/// `,"thread":…,"thread_id":…,"signal":…,"signo":…[,"fault_address":…]`.
fn write_fields<O: Out + ?Sized>(out: &mut O, record: &SignalRecord) {
    let mut name = [0u8; 17];
    json::key(out, "thread");
    json::string(out, crate::thread::name_sigsafe(&mut name));
    json::key(out, "thread_id");
    json::int(out, crate::thread::raw_tid());
    json::key(out, "signal");
    json::string(out, signal_name(record.signo));
    json::key(out, "signo");
    json::int(out, record.signo);
    if let Some(addr) = record.fault_address {
        json::key(out, "fault_address");
        out.put(b"\"0x");
        hex(out, addr);
        out.put(b"\"");
    }
    if record.overflow != Overflow::No {
        json::key(out, "stack_overflow");
        out.put(b"true");
    }
    if record.ignored {
        json::key(out, "ignored");
        out.put(b"true");
    }
}

/// The record's `message` (plain ASCII, nothing to escape), also used by
/// the mirror line: `received SIGTERM`, `fatal signal SIGSEGV`, or for a
/// stack overflow or an ignored signal what the reader must know to match
/// it with the death the parent sees (or does not).
fn write_message<O: Out + ?Sized>(out: &mut O, record: &SignalRecord) {
    if record.ignored {
        out.put(if record.kind == "signal" {
            b"received ".as_slice()
        } else {
            b"fatal signal ".as_slice()
        });
        out.put(signal_name(record.signo).as_bytes());
        out.put(b"; ignored, as the kernel does for PID 1");
        return;
    }
    if record.kind == "signal" {
        out.put(b"received ");
        out.put(signal_name(record.signo).as_bytes());
        return;
    }
    if record.overflow != Overflow::No {
        out.put(b"thread overflowed its stack (fatal signal ");
        out.put(signal_name(record.signo).as_bytes());
        out.put(match record.overflow {
            Overflow::ThenAbort => b"); the process dies of SIGABRT as std aborts".as_slice(),
            _ => b")",
        });
        return;
    }
    out.put(b"fatal signal ");
    out.put(signal_name(record.signo).as_bytes());
}

/// `[lastwords] ERROR fatal_signal: fatal signal SIGSEGV` on stderr.
fn mirror(sink: &Sink, record: &SignalRecord) {
    if !sink.mirror.enabled() {
        return;
    }
    // The longest line (a stack overflow's) is about 110 bytes.
    let mut line = StackBuf::<160>::new();
    line.put(b"[lastwords] ");
    line.put(record.level.as_bytes());
    line.put(b" ");
    line.put(record.kind.as_bytes());
    line.put(b": ");
    write_message(&mut line, record);
    line.put(b"\n");
    crate::mirror::write_stderr(line.as_bytes());
}

fn hex<O: Out + ?Sized>(out: &mut O, value: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut n = 0;
    let mut v = value;
    loop {
        buf[15 - n] = DIGITS[v & 0xf];
        n += 1;
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.put(&buf[16 - n..]);
}

/// The name of the signals lastwords handles. Async-signal-safe.
pub(crate) fn signal_name(signo: libc::c_int) -> &'static str {
    match signo {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGABRT => "SIGABRT",
        libc::SIGALRM => "SIGALRM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGSYS => "SIGSYS",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "SIG?",
    }
}

/// Restores `errno` when dropped: a handler must not change what the
/// interrupted code sees.
pub(crate) struct ErrnoGuard(libc::c_int);

impl ErrnoGuard {
    /// Saves the current `errno`. Async-signal-safe.
    pub(crate) fn new() -> ErrnoGuard {
        // SAFETY: __errno_location always returns this thread's errno.
        ErrnoGuard(unsafe { *libc::__errno_location() })
    }
}

impl Drop for ErrnoGuard {
    fn drop(&mut self) {
        // SAFETY: as in `new`.
        unsafe { *libc::__errno_location() = self.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_names() {
        let mut out = StackBuf::<32>::new();
        hex(&mut out, 0);
        out.put(b" ");
        hex(&mut out, 0xdead_beef);
        assert_eq!(out.as_bytes(), b"0 deadbeef");
        assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
        assert_eq!(signal_name(libc::SIGABRT), "SIGABRT");
        for signo in super::super::signals::SIGNALS
            .into_iter()
            .chain(super::super::fatal::SIGNALS)
        {
            assert_ne!(signal_name(signo), "SIG?", "{signo}");
        }
    }

    fn message(kind: &'static str, signo: libc::c_int, overflow: Overflow) -> String {
        let record = SignalRecord {
            kind,
            level: "ERROR",
            signo,
            fault_address: None,
            overflow,
            ignored: false,
        };
        // The mirror's buffer: the longest message must fit in it whole.
        let mut out = StackBuf::<160>::new();
        out.put(b"[lastwords] ERROR fatal_signal: ");
        write_message(&mut out, &record);
        assert!(!out.overflowed);
        String::from_utf8(out.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn ignored_message_fits_the_mirror_line() {
        let record = SignalRecord {
            kind: "fatal_signal",
            level: "ERROR",
            signo: libc::SIGVTALRM,
            fault_address: None,
            overflow: Overflow::No,
            ignored: true,
        };
        let mut out = StackBuf::<160>::new();
        out.put(b"[lastwords] ERROR fatal_signal: ");
        write_message(&mut out, &record);
        assert!(!out.overflowed);
        assert_eq!(
            String::from_utf8(out.as_bytes().to_vec()).unwrap(),
            "[lastwords] ERROR fatal_signal: fatal signal SIGVTALRM; \
             ignored, as the kernel does for PID 1"
        );
    }

    #[test]
    fn messages() {
        assert_eq!(
            message("signal", libc::SIGTERM, Overflow::No),
            "[lastwords] ERROR fatal_signal: received SIGTERM"
        );
        assert_eq!(
            message("fatal_signal", libc::SIGBUS, Overflow::No),
            "[lastwords] ERROR fatal_signal: fatal signal SIGBUS"
        );
        assert_eq!(
            message("fatal_signal", libc::SIGSEGV, Overflow::ThenAbort),
            "[lastwords] ERROR fatal_signal: thread overflowed its stack \
             (fatal signal SIGSEGV); the process dies of SIGABRT as std aborts"
        );
        assert_eq!(
            message("fatal_signal", libc::SIGSEGV, Overflow::ThenDefault),
            "[lastwords] ERROR fatal_signal: thread overflowed its stack (fatal signal SIGSEGV)"
        );
    }
}
