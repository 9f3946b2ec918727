//! The file sink: one `write(2)` per record on an `O_APPEND` descriptor.
//!
//! # Why one write per record
//!
//! A record is durable against the death of the process (SIGKILL, the OOM
//! killer, `process::exit`, `abort`) as soon as the system call that carries
//! it has returned: the bytes are in the kernel's page cache and reach the
//! file whatever happens to the process afterwards. Anything buffered in user
//! space (a `BufWriter`, a channel to a writer thread) dies with the process.
//! So every record is assembled in memory and handed to the kernel whole with
//! one `write(2)` (a `writev(2)` of its pieces from signal handlers, which
//! cannot grow a buffer); with `O_APPEND` the kernel places it at the end of the
//! file atomically with respect to other appenders, so lines from concurrent
//! threads (or processes) never interleave.
//!
//! The descriptor is never closed: other threads keep logging while exit
//! handlers run, and signal handlers use it at any moment.
//!
//! # Failures
//!
//! A failed write (full disk, I/O error, quota) never panics and never blocks:
//! the record is counted as dropped, the first failure is reported on stderr,
//! and when writes succeed again a summary says how many records were lost.
//! The `process_exit` record carries the total. A record the kernel takes
//! only in part (a file-size limit, a disk filling up mid-record) is given
//! up and its line closed at once, never finished later behind another
//! record: see [`fd::write_record`].
//!
//! Only a regular file (or a link to one) is opened; see [`fd::open_append`].
//!
//! Everything reachable from [`Sink::commit`] is async-signal-safe.

use std::cell::UnsafeCell;
use std::io;
use std::os::fd::IntoRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, Ordering};

use crate::fd::{self, Written};
use crate::json::{Out, StackBuf};
use crate::mirror::Mirror;
use crate::rotation::Roller;

/// The process-wide sink that hooks and signal handlers write to, set once
/// by the first successful `Builder::layer` / `Builder::install`.
static GLOBAL: AtomicPtr<Sink> = AtomicPtr::new(std::ptr::null_mut());

/// An open JSONL file plus the per-run numbering of its records.
pub(crate) struct Sink {
    /// The descriptor records are written to. Its number never changes;
    /// rotation `dup3`s the next period's file onto it.
    fd: libc::c_int,
    /// The configured path (with rotation, the name the files derive from).
    path: PathBuf,
    /// Rotation by time or size, if configured.
    roll: Option<Roller>,
    seq: AtomicU64,
    dropped: AtomicU64,
    /// Set after a write that stopped part-way: the next record starts with
    /// `\n` so that the cut line stays alone on its line.
    needs_newline: AtomicBool,
    /// Non-zero while writes are failing: the errno of the first failure.
    failing: AtomicI32,
    /// `dropped` when the current run of failures began.
    dropped_at_failure: AtomicU64,
    /// This run's pid and run id. Written when the sink is made and, in a
    /// child created by `fork()`, by [`Sink::after_fork`]; read through
    /// [`Sink::pid`], [`Sink::run_id`] and [`Sink::pid_run_id`].
    ident: UnsafeCell<Ident>,
    /// Set in a child created by `fork()`: its first record is preceded by
    /// its own `process_start` (see [`Sink::after_fork`]).
    start_pending: AtomicBool,
    /// Largest record in bytes; longer values are cut with a marker.
    pub(crate) max_record: usize,
    pub(crate) mirror: Mirror,
    /// Records whose `writev` is under way, counted in the slot of the
    /// `epoch` parity they started under; see [`Sink::wait_for_earlier`].
    in_flight: [AtomicU64; 2],
    epoch: AtomicU64,
}

// SAFETY: the only field that is not `Sync` by itself is `ident`, which is
// written only while no other thread runs (see `Sink::ident`).
unsafe impl Sync for Sink {}

impl Sink {
    /// Opens (creating it and its directories if needed) `path` for
    /// appending, and returns it with the last [`TAIL_BYTES`] of what the
    /// file held before (for the previous run's report). A last line cut by a
    /// kill gets its `\n` before the first new record.
    #[cfg(test)]
    pub(crate) fn open(
        path: &Path,
        mode: u32,
        max_record: usize,
        mirror: Mirror,
    ) -> io::Result<(Sink, Vec<u8>)> {
        Sink::open_rolling(path, mode, max_record, mirror, None).map_err(|(_, e)| e)
    }

    /// [`Sink::open`] with time-based rotation: the file is the current
    /// period's, and the previous run's records are looked for in the
    /// newest of the rotation's files (or `path` itself, written before
    /// rotation was configured). An error comes with the file it is about.
    pub(crate) fn open_rolling(
        path: &Path,
        mode: u32,
        max_record: usize,
        mirror: Mirror,
        roll: Option<Roller>,
    ) -> Result<(Sink, Vec<u8>), (PathBuf, io::Error)> {
        let (file, previous) = match &roll {
            Some(roll) => {
                let file = roll.start_at(crate::clock::Timestamp::now().secs);
                (file, roll.previous_file(path))
            }
            None => (path.to_owned(), None),
        };
        let fd = open_fd(&file, mode).map_err(|e| (file.clone(), e))?;
        let sink = Sink {
            fd,
            path: path.to_owned(),
            roll,
            seq: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            needs_newline: AtomicBool::new(false),
            failing: AtomicI32::new(0),
            dropped_at_failure: AtomicU64::new(0),
            ident: UnsafeCell::new(Ident::new()),
            start_pending: AtomicBool::new(false),
            max_record,
            mirror,
            in_flight: [AtomicU64::new(0), AtomicU64::new(0)],
            epoch: AtomicU64::new(0),
        };
        // The previous run's records, and whether this run's file ends in
        // a cut line; one read when they are the same file.
        let (tail, last) = match previous.filter(|p| *p != file) {
            Some(previous) => (
                // Best effort: an unreadable old file only costs the report.
                read_tail(&previous, TAIL_BYTES).unwrap_or_default(),
                read_tail(&file, 1).map_err(|e| (file.clone(), e))?.pop(),
            ),
            None => {
                let tail = read_tail(&file, TAIL_BYTES).map_err(|e| (file.clone(), e))?;
                let last = tail.last().copied();
                (tail, last)
            }
        };
        if last.is_some_and(|b| b != b'\n') {
            sink.needs_newline.store(true, Ordering::Relaxed);
        }
        if let Some(roll) = &sink.roll {
            roll.prune();
        }
        Ok((sink, tail))
    }

    /// Makes `sink` the process-wide sink. Returns `None` (and leaves the
    /// existing one) if one was already set.
    pub(crate) fn set_global(sink: Sink) -> Option<&'static Sink> {
        let leaked: &'static mut Sink = Box::leak(Box::new(sink));
        match GLOBAL.compare_exchange(
            std::ptr::null_mut(),
            leaked,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Some(leaked),
            Err(_) => {
                // SAFETY: `leaked` came from `Box::leak` just above and was
                // not published.
                drop(unsafe { Box::from_raw(leaked) });
                None
            }
        }
    }

    /// Undoes [`Sink::set_global`] for an `install()` that failed after it:
    /// nothing was written and no hook uses the sink yet. Its descriptor is
    /// closed; the sink itself is leaked, as a set sink always is.
    pub(crate) fn unset_global(&'static self) {
        let this = std::ptr::from_ref(self).cast_mut();
        if GLOBAL
            .compare_exchange(
                this,
                std::ptr::null_mut(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            // SAFETY: the descriptor is ours, and nothing writes to it: the
            // layer that held the sink was dropped with the subscriber that
            // could not be set.
            unsafe { libc::close(self.fd) };
        }
    }

    /// The process-wide sink, if one was installed. Async-signal-safe.
    pub(crate) fn global() -> Option<&'static Sink> {
        // SAFETY: GLOBAL only ever holds null or a leaked, never-freed Sink.
        unsafe { GLOBAL.load(Ordering::Acquire).as_ref() }
    }

    /// This run's process id. Async-signal-safe.
    pub(crate) fn pid(&self) -> u32 {
        self.ident().pid
    }

    /// This run's id. Async-signal-safe.
    pub(crate) fn run_id(&self) -> &str {
        // The id is ASCII hex digits, written by `Ident::new`.
        std::str::from_utf8(&self.ident().run_id).unwrap_or("")
    }

    /// `","pid":N,"run_id":"…"`: the end of the `kind` value and the two
    /// keys after it, the same in every record of the run.
    /// Async-signal-safe.
    pub(crate) fn pid_run_id(&self) -> &[u8] {
        self.ident().pid_run_id.as_bytes()
    }

    fn ident(&self) -> &Ident {
        // SAFETY: `ident` is only written while no other thread can read
        // it: when the sink is made, and in the child of a `fork()`, where
        // the forking thread is the only one, inside the atfork handler.
        unsafe { &*self.ident.get() }
    }

    /// In the child of a `fork()`, from the atfork handler: gives the child
    /// its own run (its pid, a new run id, `seq` from 1) and clears what
    /// the parent's other threads may have left half-done (records in
    /// flight, a failure report, the mirror's state). The child's first
    /// record is preceded by a `process_start` naming the parent's run, so
    /// the file shows two runs. Async-signal-safe.
    pub(crate) fn after_fork(&self) {
        let parent = (self.pid(), self.ident().run_id);
        // SAFETY: see `ident`: the forking thread is the only thread.
        unsafe {
            let ident = &mut *self.ident.get();
            *ident = Ident::new();
            ident.forked_from = Some(parent);
        }
        self.seq.store(0, Ordering::SeqCst);
        self.dropped.store(0, Ordering::Relaxed);
        self.failing.store(0, Ordering::Relaxed);
        self.dropped_at_failure.store(0, Ordering::Relaxed);
        self.in_flight[0].store(0, Ordering::SeqCst);
        self.in_flight[1].store(0, Ordering::SeqCst);
        self.epoch.store(0, Ordering::SeqCst);
        self.mirror.reset_after_fork();
        if let Some(roll) = &self.roll {
            roll.after_fork();
        }
        self.start_pending.store(true, Ordering::Release);
    }

    /// The `process_start` of a child created by `fork()`, written before
    /// its first record: `previous_run` is `null` (the parent's run is not
    /// over) and `forked_from` names the parent's `pid` and `run_id`.
    /// Async-signal-safe (a signal may be the child's first record), and
    /// built in a static area, not on the stack: a termination handler
    /// runs on the small alternate signal stack.
    #[cold]
    #[inline(never)]
    fn write_fork_start(&self) {
        let ident = self.ident();
        let Some((parent_pid, parent_run)) = ident.forked_from else {
            return;
        };
        // SAFETY: only the caller that took `start_pending` gets here, once
        // per process (see `ForkStart`).
        let area = unsafe { &mut *FORK_START.0.get() };
        let (head, tail, exe) = (&mut area.head, &mut area.tail, &mut area.exe);
        head.truncate(0);
        tail.truncate(0);
        head.overflowed = false;
        tail.overflowed = false;
        head.put(b"{\"timestamp\":\"");
        head.put(&crate::clock::Timestamp::now().format());
        head.put(b"\",\"level\":\"INFO\",\"message\":\"process ");
        crate::json::int(head, ident.pid);
        head.put(b" started (forked from process ");
        crate::json::int(head, parent_pid);
        head.put(b")\",\"target\":\"lastwords\",\"kind\":\"process_start");
        head.put(self.pid_run_id());
        // SAFETY: `exe` is writable for its length; readlink does not
        // terminate the string, the returned length says where it ends.
        let len = unsafe {
            libc::readlink(
                c"/proc/self/exe".as_ptr(),
                exe.as_mut_ptr().cast(),
                exe.len(),
            )
        };
        let exe = match usize::try_from(len) {
            Ok(len) if len < exe.len() => std::str::from_utf8(&exe[..len]).unwrap_or(""),
            _ => "",
        };
        // In the child the forking thread is the main thread: its id is
        // the pid.
        tail.put(b",\"thread\":\"main\",\"thread_id\":");
        crate::json::int(tail, ident.pid);
        tail.put(b",\"exe\":");
        crate::json::string(tail, exe);
        tail.put(b",\"forked_from\":{\"pid\":");
        crate::json::int(tail, parent_pid);
        tail.put(b",\"run_id\":\"");
        tail.put(&parent_run);
        tail.put(b"\"},\"previous_run\":null}\n");
        if head.overflowed || tail.overflowed {
            return; // cannot happen with the sizes above; never half a line
        }
        self.commit(head.as_bytes(), tail.as_bytes());
    }

    /// The file this sink appends to now.
    pub(crate) fn path(&self) -> PathBuf {
        match &self.roll {
            Some(roll) => roll.current_path(),
            None => self.path.clone(),
        }
    }

    /// Writes [`Sink::path`] to `out`. Async-signal-safe.
    fn put_path(&self, out: &mut impl Out) {
        match &self.roll {
            Some(roll) => roll.put_current_path(out),
            None => out.put(self.path.as_os_str().as_bytes()),
        }
    }

    /// Records that could not be written so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Numbers and writes one record: `head`, then `,"seq":N`, then `tail`,
    /// which must end with `}\n`. Returns the record's `seq`.
    ///
    /// The sequence number is taken just before the write, after all the
    /// formatting, so that a `Debug` impl that panics cannot leave a gap.
    /// Async-signal-safe.
    pub(crate) fn commit(&self, head: &[u8], tail: &[u8]) -> u64 {
        self.numbered(|seq, newline| {
            let mut seq_buf = StackBuf::<32>::new();
            seq_buf.put(b",\"seq\":");
            crate::json::int(&mut seq_buf, seq);
            let parts: [&[u8]; 4] = [
                if newline { b"\n" } else { b"" },
                head,
                seq_buf.as_bytes(),
                tail,
            ];
            let written = fd::write_record(self.fd, &parts);
            self.count(written, &parts);
            written
        })
    }

    /// [`Sink::commit`] for a record whose head is in a growable buffer:
    /// appends `,"seq":N` and `tail` to `head` and writes the line with one
    /// `write(2)`. The kernel takes one contiguous buffer noticeably faster
    /// than the same bytes in pieces (ext4: about 250 ns less per record
    /// than a 3-piece `writev(2)`, far more than the copy costs).
    ///
    /// Not async-signal-safe: `head` may grow. Signal handlers use
    /// [`Sink::commit`].
    pub(crate) fn commit_vec(&self, head: &mut Vec<u8>, tail: &[u8]) -> u64 {
        if let Some(roll) = &self.roll {
            // Only here, on the ordinary record path: a signal handler
            // writes to whichever file is current and never switches, so
            // its frame stays small on the alternate signal stack. The
            // coarse clock costs a few nanoseconds; a switch a few
            // milliseconds late does not matter.
            //
            // With size rotation, the line's length: `,"seq":N` with the
            // next number's digits (exact unless another thread takes a
            // number meanwhile), and the `\n` that may precede it.
            let len = if roll.by_size() {
                let next_seq = self.seq.load(Ordering::Relaxed) + 1;
                head.len()
                    + tail.len()
                    + b",\"seq\":".len()
                    + next_seq.ilog10() as usize
                    + 1
                    + usize::from(self.needs_newline.load(Ordering::Relaxed))
            } else {
                0
            };
            if roll.roll_if_due(self.fd, crate::clock::Timestamp::now_coarse().secs, len) {
                self.switched();
            }
            roll.prune_if_pending();
        }
        self.numbered(|seq, newline| {
            head.extend_from_slice(b",\"seq\":");
            crate::json::int(head, seq);
            head.extend_from_slice(tail);
            if !newline {
                // The common case, without the general path's set-up.
                // SAFETY: `head` is a live, readable buffer.
                let n = unsafe { libc::write(self.fd, head.as_ptr().cast(), head.len()) };
                if n == head.len() as isize {
                    self.count(Written::All, &[head]);
                    return Written::All;
                }
                if n > 0 {
                    // A short write: never finished (see `fd::write_record`).
                    let written = fd::end_cut_line(self.fd);
                    self.count(written, &[head]);
                    return written;
                }
                // Failed before writing anything (EINTR included): the
                // general path retries or reports.
            }
            let parts: [&[u8]; 2] = [if newline { b"\n" } else { b"" }, head];
            let written = fd::write_record(self.fd, &parts);
            self.count(written, &parts);
            written
        })
    }

    /// After a switch to a new file: a line left open in the old one (by
    /// a killed run, or a write cut short) stays there; the new file needs
    /// no `\n` before its first record.
    #[cold]
    fn switched(&self) {
        self.needs_newline.store(false, Ordering::Relaxed);
    }

    /// Counts what a record's write put in the current file, for size
    /// rotation (a cut record in full: the count may run over, never
    /// under). Async-signal-safe.
    #[inline]
    fn count(&self, written: Written, parts: &[&[u8]]) {
        if let Some(roll) = &self.roll {
            if matches!(written, Written::Nothing(_)) {
                return;
            }
            roll.wrote(parts.iter().map(|p| p.len()).sum());
        }
    }

    /// Appends complete lines that are not records of this run (no `seq`
    /// is taken): the previous run's records recovered from its flight
    /// recorder. A failure counts one dropped record. Not async-signal-safe.
    /// With size rotation they go one line at a time, each to a file it
    /// fits in.
    pub(crate) fn append_lines(&self, lines: &[u8]) {
        match &self.roll {
            Some(roll) if roll.by_size() => {
                for line in lines.split_inclusive(|&b| b == b'\n') {
                    let now = crate::clock::Timestamp::now_coarse().secs;
                    if roll.roll_if_due(self.fd, now, line.len() + 1) {
                        self.switched();
                    }
                    self.append(line);
                }
            }
            _ => self.append(lines),
        }
    }

    fn append(&self, lines: &[u8]) {
        let newline = self.needs_newline.swap(false, Ordering::Relaxed);
        let parts: [&[u8]; 2] = [if newline { b"\n" } else { b"" }, lines];
        let written = fd::write_record(self.fd, &parts);
        self.count(written, &parts);
        self.account(written, newline);
    }

    /// Takes the next `seq` and runs `write(seq, newline)`, where `newline`
    /// says the line must start with `\n`; then accounts for the outcome.
    #[inline]
    fn numbered(&self, write: impl FnOnce(u64, bool) -> Written) -> u64 {
        if self.start_pending.load(Ordering::Relaxed)
            && self.start_pending.swap(false, Ordering::AcqRel)
        {
            self.write_fork_start();
        }
        // SeqCst on these three: `wait_for_earlier` relies on their total
        // order (on x86 they cost what Relaxed read-modify-writes cost).
        let parity = (self.epoch.load(Ordering::SeqCst) & 1) as usize;
        self.in_flight[parity].fetch_add(1, Ordering::SeqCst);
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        // A plain load first: the swap is a locked instruction, and the flag
        // is almost never set.
        let newline = self.needs_newline.load(Ordering::Relaxed)
            && self.needs_newline.swap(false, Ordering::Relaxed);
        self.account(write(seq, newline), newline);
        self.in_flight[parity].fetch_sub(1, Ordering::Release);
        seq
    }

    /// Accounts for one record's write, which began with `\n` if `newline`:
    /// a failed or cut one is counted as dropped and reported, and the next
    /// record starts with `\n` when this one left its line open.
    #[inline]
    fn account(&self, written: Written, newline: bool) {
        let failed = match written {
            Written::All => None,
            Written::Nothing(errno) => {
                if newline {
                    self.needs_newline.store(true, Ordering::Relaxed);
                }
                Some(errno)
            }
            Written::Cut { errno, closed } => {
                if !closed {
                    self.needs_newline.store(true, Ordering::Relaxed);
                }
                Some(errno)
            }
        };
        match failed {
            None => {
                if self.failing.load(Ordering::Relaxed) != 0 {
                    self.report_recovery();
                }
            }
            Some(errno) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.report_failure(errno);
            }
        }
    }

    /// Waits, at most `timeout_ms` milliseconds, until every record that
    /// took its `seq` before this call has been written (or counted as
    /// dropped); returns whether they all were. Called after writing a
    /// record that ends the process, so that no lower `seq` is missing from
    /// the file because its thread was still in `writev` when the process
    /// died.
    ///
    /// How: each commit counts itself in `in_flight[epoch parity]` before it
    /// takes its `seq`. Flipping the epoch sends new commits to the other
    /// counter, so the old one only drains; every commit that took a lower
    /// `seq` than the caller's record is counted there (it read the epoch
    /// before the flip), and commits that start later get higher numbers.
    /// If the caller's own thread was interrupted mid-commit (a signal
    /// handler), that record is lost and the wait runs to its bound.
    /// Async-signal-safe (atomics, `clock_gettime`, `nanosleep`).
    pub(crate) fn wait_for_earlier(&self, timeout_ms: u64) -> bool {
        let old = (self.epoch.fetch_add(1, Ordering::SeqCst) & 1) as usize;
        let deadline = monotonic_ms() + timeout_ms;
        while self.in_flight[old].load(Ordering::SeqCst) != 0 {
            if monotonic_ms() >= deadline {
                return false;
            }
            let pause = libc::timespec {
                tv_sec: 0,
                tv_nsec: 100_000,
            };
            // SAFETY: `pause` is a valid timespec; an early wake-up only
            // means one more look at the counter.
            unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
        }
        true
    }

    fn report_failure(&self, errno: i32) {
        if self
            .failing
            .compare_exchange(0, errno.max(1), Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return; // already reported; the recovery message gives the count
        }
        self.dropped_at_failure
            .store(self.dropped() - 1, Ordering::Relaxed);
        let mut msg = StackBuf::<512>::new();
        msg.put(b"[lastwords] cannot write to ");
        self.put_path(&mut msg);
        msg.put(b": ");
        msg.put(errno_name(errno).as_bytes());
        msg.put(b"; records are counted as dropped until writing works again\n");
        crate::mirror::write_stderr(msg.as_bytes());
    }

    fn report_recovery(&self) {
        if self.failing.swap(0, Ordering::AcqRel) == 0 {
            return;
        }
        let lost = self.dropped() - self.dropped_at_failure.load(Ordering::Relaxed);
        let mut msg = StackBuf::<512>::new();
        msg.put(b"[lastwords] writing to ");
        self.put_path(&mut msg);
        msg.put(b" works again; ");
        crate::json::int(&mut msg, lost);
        msg.put(b" records were dropped\n");
        crate::mirror::write_stderr(msg.as_bytes());
    }
}

/// `CLOCK_MONOTONIC` in milliseconds. Async-signal-safe.
fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// How much of an existing file's end is read at start: enough for the
/// previous run's last records, whatever the file's size.
pub(crate) const TAIL_BYTES: u64 = 256 * 1024;

/// Opens `path` for appending (creating it and its directories); only a
/// regular file (or a link to one) is accepted, see [`fd::open_append`].
fn open_fd(path: &Path, mode: u32) -> io::Result<libc::c_int> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    Ok(fd::open_append(path, mode)?.into_raw_fd())
}

/// The last `max` bytes of the file at `path` (empty if it is empty).
fn read_tail(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO for reading would wait for a writer (with
    // rotation, the configured path itself is only read, never opened for
    // writing, so nothing checked what it is).
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path);
    let mut file = match opened {
        Ok(file) => file,
        // A write-only file: nothing to report, and no way to check its end.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Vec::new()); // a device or a pipe: no history to read
    }
    let len = meta.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut tail = Vec::with_capacity(len.min(max) as usize);
    file.take(max).read_to_end(&mut tail)?;
    Ok(tail)
}

/// Where [`Sink::write_fork_start`] builds its record.
struct ForkStart(UnsafeCell<ForkStartArea>);

struct ForkStartArea {
    head: StackBuf<256>,
    tail: StackBuf<1536>,
    exe: [u8; 1024],
}

// SAFETY: the area is used only by the one call of `write_fork_start` that
// took `start_pending` in a forked child; `after_fork` sets the flag once
// per process (each child is a new process with its own copy).
unsafe impl Sync for ForkStart {}

static FORK_START: ForkStart = ForkStart(UnsafeCell::new(ForkStartArea {
    head: StackBuf::new(),
    tail: StackBuf::new(),
    exe: [0; 1024],
}));

/// A run's identity: its pid and run id, and the pieces of every record
/// made from them. Fixed-size, so that a child of `fork()` can get its own
/// without allocating.
struct Ident {
    pid: u32,
    run_id: [u8; RUN_ID_LEN],
    pid_run_id: StackBuf<64>,
    /// The parent's pid and run id, in a child created by `fork()`.
    forked_from: Option<(u32, [u8; RUN_ID_LEN])>,
}

/// 12 hex digits of milliseconds, 8 of randomness.
const RUN_ID_LEN: usize = 20;

impl Ident {
    /// The calling process's identity, with a fresh run id: milliseconds
    /// since the epoch and 32 random bits, in hex, so run ids sort by
    /// start time and do not collide across restarts. Async-signal-safe.
    fn new() -> Ident {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u32;
        let millis = crate::clock::Timestamp::now().as_micros() / 1000;
        let mut random = [0u8; 4];
        // SAFETY: `random` is a valid 4-byte buffer.
        let got = unsafe { libc::getrandom(random.as_mut_ptr().cast(), random.len(), 0) };
        let random = if got == 4 {
            u32::from_ne_bytes(random)
        } else {
            // No entropy source: the pid still separates concurrent starts.
            pid
        };
        let mut run_id = [0u8; RUN_ID_LEN];
        hex_digits(&mut run_id[..12], millis as u64);
        hex_digits(&mut run_id[12..], u64::from(random));
        let mut pid_run_id = StackBuf::new();
        pid_run_id.put(b"\",\"pid\":");
        crate::json::int(&mut pid_run_id, pid);
        pid_run_id.put(b",\"run_id\":\"");
        pid_run_id.put(&run_id);
        pid_run_id.put(b"\"");
        Ident {
            pid,
            run_id,
            pid_run_id,
            forked_from: None,
        }
    }
}

/// Writes the low `out.len()` hex digits of `value` into `out`, zero-padded.
fn hex_digits(out: &mut [u8], mut value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for digit in out.iter_mut().rev() {
        *digit = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// A short name for the errno values a log write can meet. Async-signal-safe.
pub(crate) fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::ENOSPC => "no space left on device (ENOSPC)",
        libc::EDQUOT => "disk quota exceeded (EDQUOT)",
        libc::EFBIG => "file too large (EFBIG)",
        libc::EIO => "input/output error (EIO)",
        libc::EBADF => "bad file descriptor (EBADF)",
        libc::EACCES => "permission denied (EACCES)",
        libc::EPERM => "operation not permitted (EPERM)",
        libc::EROFS => "read-only file system (EROFS)",
        libc::EPIPE => "broken pipe (EPIPE)",
        _ => "write error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lastwords-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path); // a leftover from an earlier run
        path
    }

    #[test]
    fn a_line_cut_by_a_kill_gets_its_newline_before_the_next_record() {
        let path = temp("cut.jsonl");
        std::fs::write(&path, "{\"complete\":1}\n{\"cut\":").unwrap();
        let (sink, tail) = Sink::open(&path, 0o600, 4096, Mirror::new(false)).unwrap();
        assert_eq!(tail, b"{\"complete\":1}\n{\"cut\":");
        sink.commit(b"{\"a\":1", b"}\n");
        sink.commit(b"{\"a\":2", b"}\n");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"complete\":1}\n{\"cut\":\n{\"a\":1,\"seq\":1}\n{\"a\":2,\"seq\":2}\n"
        );
    }

    #[test]
    fn commit_vec_writes_the_same_line_as_commit() {
        let path = temp("vec.jsonl");
        std::fs::write(&path, "{\"cut\":").unwrap();
        let (sink, _) = Sink::open(&path, 0o600, 4096, Mirror::new(false)).unwrap();
        let mut head = b"{\"a\":1".to_vec();
        assert_eq!(sink.commit_vec(&mut head, b",\"b\":2}\n"), 1);
        sink.commit(b"{\"a\":1", b",\"b\":2}\n");
        let mut head = b"{\"a\":1".to_vec();
        assert_eq!(sink.commit_vec(&mut head, b",\"b\":2}\n"), 3);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"cut\":\n{\"a\":1,\"seq\":1,\"b\":2}\n{\"a\":1,\"seq\":2,\"b\":2}\n\
             {\"a\":1,\"seq\":3,\"b\":2}\n"
        );
    }

    #[test]
    fn after_a_fork_the_run_starts_afresh_with_its_own_process_start() {
        let path = temp("fork.jsonl");
        let (sink, _) = Sink::open(&path, 0o600, 4096, Mirror::new(false)).unwrap();
        let parent_run = sink.run_id().to_owned();
        sink.commit(b"{\"a\":1", b"}\n");
        sink.commit(b"{\"a\":2", b"}\n");
        // What the atfork child handler does; here in the same process, so
        // the pid stays, but the run is new.
        sink.after_fork();
        assert_ne!(sink.run_id(), parent_run);
        assert_eq!(sink.run_id().len(), RUN_ID_LEN);
        let mut head = b"{\"a\":3".to_vec();
        assert_eq!(sink.commit_vec(&mut head, b"}\n"), 2, "seq 1 is the start");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4, "{text}");
        let start = &lines[2];
        assert_eq!(start["kind"], "process_start");
        assert_eq!(start["seq"], 1);
        assert_eq!(start["run_id"], sink.run_id());
        assert_eq!(start["pid"], std::process::id());
        assert_eq!(start["forked_from"]["run_id"], parent_run.as_str());
        assert_eq!(start["forked_from"]["pid"], std::process::id());
        assert_eq!(start["previous_run"], serde_json::Value::Null);
        assert!(start["exe"].as_str().is_some_and(|e| !e.is_empty()));
        assert_eq!(lines[3]["seq"], 2);
        assert_eq!(
            sink.pid_run_id(),
            format!(
                "\",\"pid\":{},\"run_id\":\"{}\"",
                std::process::id(),
                sink.run_id()
            )
            .as_bytes()
        );
    }

    #[test]
    fn new_files_get_the_requested_mode_and_missing_directories() {
        use std::os::unix::fs::PermissionsExt;
        let path = temp("nested").join("deeper/mode.jsonl");
        let (sink, tail) = Sink::open(&path, 0o640, 4096, Mirror::new(false)).unwrap();
        assert!(tail.is_empty());
        sink.commit(b"{", b"}\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        // The umask can only remove bits.
        assert_eq!(mode & !0o640, 0, "{mode:o}");
    }

    #[test]
    fn a_full_disk_drops_and_counts_records_without_blocking() {
        let path = temp("full.jsonl");
        let (sink, tail) = Sink::open(&path, 0o600, 4096, Mirror::new(false)).unwrap();
        assert!(tail.is_empty());
        // A disk that is full from now on.
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        // SAFETY: both descriptors are open; `sink.fd` now refers to /dev/full.
        assert!(unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&full), sink.fd) } >= 0);
        for n in 1..=3 {
            assert_eq!(sink.commit(b"{\"x\":1", b"}\n"), n);
        }
        assert_eq!(sink.dropped(), 3);
        assert_eq!(sink.failing.load(Ordering::Relaxed), libc::ENOSPC);
    }

    #[test]
    fn rotation_under_load_loses_and_tears_no_record() {
        use tracing_appender::rolling::Rotation;
        let dir = temp("rolling");
        let _ = std::fs::remove_dir_all(&dir);
        let base = dir.join("svc.jsonl");
        let roll = Roller::new(&base, &Rotation::MINUTELY, None, None, 0o600);
        let (sink, _) = Sink::open_rolling(&base, 0o600, 4096, Mirror::new(false), roll).unwrap();
        let roller = sink.roll.as_ref().unwrap();
        let now = crate::clock::Timestamp::now().secs;
        const THREADS: u64 = 4;
        const RECORDS: u64 = 5_000;
        const SWITCHES: i64 = 20;
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let sink = &sink;
                s.spawn(move || {
                    for n in 0..RECORDS {
                        let mut head = format!("{{\"t\":{t},\"n\":{n}").into_bytes();
                        sink.commit_vec(&mut head, b",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}\n");
                    }
                });
            }
            // Minutes that have not come yet: the writers' own clock checks
            // never switch, only these do.
            for minute in 1..=SWITCHES {
                std::thread::sleep(std::time::Duration::from_millis(2));
                assert!(roller.roll_if_due(sink.fd, now + minute * 60, 0));
            }
        });
        let mut seqs = Vec::new();
        let mut files = 0;
        let mut written = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            files += 1;
            written += usize::from(!text.is_empty());
            for line in text.lines() {
                let record: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("torn line {line:?}: {e}"));
                seqs.push(record["seq"].as_u64().unwrap());
            }
        }
        assert_eq!(files, SWITCHES + 1, "one file per minute");
        assert!(
            written >= 2,
            "the switches happened while records were written"
        );
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=THREADS * RECORDS).collect::<Vec<_>>());
        assert_eq!(sink.path(), roller.current_path());
    }

    #[test]
    fn size_rotation_under_load_loses_and_tears_no_record() {
        use tracing_appender::rolling::Rotation;
        let dir = temp("size-load");
        let _ = std::fs::remove_dir_all(&dir);
        let base = dir.join("svc.jsonl");
        const MAX: u64 = 16 * 1024;
        let roll = Roller::new(&base, &Rotation::NEVER, Some(MAX), None, 0o600);
        let (sink, _) = Sink::open_rolling(&base, 0o600, 4096, Mirror::new(false), roll).unwrap();
        const THREADS: u64 = 4;
        const RECORDS: u64 = 5_000;
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let sink = &sink;
                s.spawn(move || {
                    for n in 0..RECORDS {
                        let mut head = format!("{{\"t\":{t},\"n\":{n}").into_bytes();
                        sink.commit_vec(&mut head, b",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}\n");
                    }
                });
            }
        });
        let mut seqs = Vec::new();
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            files += 1;
            // The documented bound: one record per other writing thread.
            let longest = text.lines().map(str::len).max().unwrap_or(0) + 1;
            assert!(
                text.len() as u64 <= MAX + (THREADS - 1) * longest as u64,
                "{} bytes",
                text.len()
            );
            for line in text.lines() {
                let record: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("torn line {line:?}: {e}"));
                seqs.push(record["seq"].as_u64().unwrap());
            }
        }
        assert!(files > 10, "{files} files");
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=THREADS * RECORDS).collect::<Vec<_>>());
        let _ = std::fs::remove_dir_all(&dir); // passed: nothing to inspect
    }

    #[test]
    fn a_cut_line_in_a_full_file_stays_there_and_the_next_file_starts_clean() {
        use tracing_appender::rolling::Rotation;
        let dir = temp("size-cut");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let base = dir.join("svc.jsonl");
        // The previous run filled svc.1 and was killed in the middle of a
        // record; svc.10 would sort before svc.9 as text.
        std::fs::write(dir.join("svc.9.jsonl"), "{\"old\":9}\n").unwrap();
        let cut = format!("{}\n{{\"cut", "{\"old\":10}");
        std::fs::write(dir.join("svc.10.jsonl"), &cut).unwrap();
        let roll = Roller::new(&base, &Rotation::NEVER, Some(20), None, 0o600);
        let (sink, tail) =
            Sink::open_rolling(&base, 0o600, 4096, Mirror::new(false), roll).unwrap();
        assert_eq!(tail, cut.as_bytes(), "the previous run is read from svc.10");
        let mut head = b"{\"a\":1".to_vec();
        sink.commit_vec(&mut head, b"}\n");
        assert_eq!(
            std::fs::read_to_string(dir.join("svc.10.jsonl")).unwrap(),
            cut
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("svc.11.jsonl")).unwrap(),
            "{\"a\":1,\"seq\":1}\n"
        );
        assert_eq!(sink.path(), dir.join("svc.11.jsonl"));
        let _ = std::fs::remove_dir_all(&dir); // passed: nothing to inspect
    }

    #[test]
    fn with_rotation_the_previous_run_is_read_from_the_newest_file() {
        use tracing_appender::rolling::Rotation;
        let dir = temp("previous");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let base = dir.join("svc.jsonl");
        let old = dir.join("svc.2020-01-01.jsonl");
        let newer = dir.join("svc.2020-01-02.jsonl");
        std::fs::write(&old, "{\"old\":1}\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        // Cut by a kill: the repair of its last line is not this run's
        // business, since this run writes to today's file.
        std::fs::write(&newer, "{\"newer\":1}\n{\"cut").unwrap();
        let roll = Roller::new(&base, &Rotation::DAILY, None, None, 0o600);
        let (sink, tail) =
            Sink::open_rolling(&base, 0o600, 4096, Mirror::new(false), roll).unwrap();
        assert_eq!(tail, b"{\"newer\":1}\n{\"cut");
        sink.commit(b"{\"a\":1", b"}\n");
        assert_eq!(
            std::fs::read_to_string(sink.path()).unwrap(),
            "{\"a\":1,\"seq\":1}\n"
        );
        assert_eq!(
            std::fs::read_to_string(&newer).unwrap(),
            "{\"newer\":1}\n{\"cut"
        );
    }

    #[test]
    fn an_unwritable_path_is_an_error_naming_the_os_error() {
        let err = Sink::open(
            Path::new("/proc/lastwords/x.jsonl"),
            0o600,
            4096,
            Mirror::new(false),
        )
        .map(|_| ())
        .expect_err("/proc is not writable");
        assert!(err.raw_os_error().is_some(), "{err}");
    }
}
