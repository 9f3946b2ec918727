//! Rotation by time, with tracing-appender's periods and file names, and by
//! size.
//!
//! With [`Builder::rotation`](crate::Builder::rotation) the records of each
//! period go to their own file, named as tracing-appender's rolling appender
//! names them for a prefix and a suffix: `logs/ingester.jsonl` rotated
//! hourly writes `logs/ingester.2026-11-25-10.jsonl`, then
//! `logs/ingester.2026-11-25-11.jsonl`. Periods are in UTC and begin on the
//! minute, the hour, at midnight, or on Sunday at midnight.
//!
//! With [`Builder::max_file_bytes`](crate::Builder::max_file_bytes) a new
//! file begins when the next record would take the current one past the
//! limit. Files are numbered from 0 within each period: `logs/ingester.0.jsonl`,
//! `logs/ingester.1.jsonl`, … alone, `logs/ingester.2026-11-25.0.jsonl`,
//! `logs/ingester.2026-11-25.1.jsonl`, … with daily rotation. Each new file
//! gets a new name and no file is ever renamed: a shipper following
//! `logs/ingester*.jsonl` sees each new file appear and reads every file to
//! its end, and the descriptor scheme below keeps working. Newest means the
//! latest period, then the highest number, compared as numbers (`10` after
//! `9`). A record is never split: a record larger than the limit goes alone
//! into a file of its own.
//!
//! # Why not tracing-appender's `RollingFileAppender` itself
//!
//! Its writer sits behind an `RwLock` that every record would take, and its
//! file is private, so a signal handler could neither reach it without a lock
//! nor write to it at all. Here the sink's descriptor number never changes:
//! switching files opens the new one and `dup3(2)`s it onto that number.
//! `dup3` swaps the open file atomically, so a `write(2)` in flight finishes
//! in the old file, the next one lands in the new file, and a signal handler
//! that loaded the number a moment earlier still writes a whole record to
//! one of the two. The hot path pays one coarse clock read and a compare,
//! and with size rotation one more load before the write and one atomic
//! add after it (the current file's byte count).
//!
//! The switch happens on the ordinary record path only: a signal handler
//! writes to whichever file is current, even one that is full (a death
//! record is never held back for a limit). Deleting old files (with
//! `max_log_files`) runs after the switch, outside the record's write. A
//! log directory removed while the service runs is created again at the
//! next switch.
//!
//! # How exact the size limit is
//!
//! With one thread writing, no file passes the limit unless a single record
//! is larger than it (or a signal handler wrote a death record). With
//! several, the size check and the write are not one step (that would take
//! a lock per record): records checked at the same moment against an
//! almost-full file can all go to it, so a file can pass the limit by at
//! most one record per thread writing at that moment. During a switch the
//! others wait for the new file rather than fill the old one.

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use tracing_appender::rolling::Rotation;

use crate::json::Out;

/// How long each file covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Period {
    Minutely,
    Hourly,
    Daily,
    Weekly,
}

impl Period {
    /// The period of `rotation`; `None` for `Rotation::NEVER`.
    pub(crate) fn of(rotation: &Rotation) -> Option<Period> {
        Some(if *rotation == Rotation::MINUTELY {
            Period::Minutely
        } else if *rotation == Rotation::HOURLY {
            Period::Hourly
        } else if *rotation == Rotation::DAILY {
            Period::Daily
        } else if *rotation == Rotation::WEEKLY {
            Period::Weekly
        } else {
            return None;
        })
    }

    /// Start of the period holding `secs` (Unix seconds, UTC).
    pub(crate) fn start(self, secs: i64) -> i64 {
        match self {
            Period::Minutely => secs - secs.rem_euclid(60),
            Period::Hourly => secs - secs.rem_euclid(3_600),
            Period::Daily => secs - secs.rem_euclid(86_400),
            Period::Weekly => {
                let days = secs.div_euclid(86_400);
                // 1970-01-01 was a Thursday: day 0 is 4 days after a Sunday.
                (days - (days + 4).rem_euclid(7)) * 86_400
            }
        }
    }

    /// Start of the period after the one holding `secs`.
    pub(crate) fn next(self, secs: i64) -> i64 {
        let start = self.start(secs);
        start
            + match self {
                Period::Minutely => 60,
                Period::Hourly => 3_600,
                Period::Daily => 86_400,
                Period::Weekly => 7 * 86_400,
            }
    }

    /// Length of the date in a file name: `YYYY-MM-DD-HH-MM`,
    /// `YYYY-MM-DD-HH`, `YYYY-MM-DD` (weekly names the Sunday).
    fn date_len(self) -> usize {
        match self {
            Period::Minutely => 16,
            Period::Hourly => 13,
            Period::Daily | Period::Weekly => 10,
        }
    }

    /// Writes the date of the period starting at `start` as tracing-appender
    /// formats it.
    fn put_date(self, out: &mut impl Out, start: i64) {
        // `YYYY-MM-DDTHH:MM:SS.ffffffZ` -> `YYYY-MM-DD-HH-MM`.
        let stamp = crate::clock::Timestamp {
            secs: start,
            micros: 0,
        }
        .format();
        out.put(&stamp[..10]);
        if self.date_len() >= 13 {
            out.put(b"-");
            out.put(&stamp[11..13]);
        }
        if self.date_len() >= 16 {
            out.put(b"-");
            out.put(&stamp[14..16]);
        }
    }
}

/// Opens `path` for appending as the sink opens its file (a regular file
/// only), creating it and, if they were removed, its directories.
fn open_append(path: &Path, mode: u32) -> io::Result<OwnedFd> {
    match crate::fd::open_append(path, mode) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            crate::fd::open_append(path, mode)
        }
        other => other,
    }
}

/// Added to [`Roller::bytes`] while a switch is under way, so that every
/// record that checks the size then sees a full file and waits for the new
/// one instead of going to the old one.
const SWITCHING: u64 = 1 << 62;

/// How long a record that would pass the size limit waits for another
/// thread's switch before it goes to the old file anyway. A switch takes
/// microseconds; the bound only matters when the switching thread is
/// descheduled on a loaded machine.
const SWITCH_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Switches the sink's file when a period ends or the file is full.
pub(crate) struct Roller {
    /// Time rotation's period, if any.
    period: Option<Period>,
    /// Size rotation's limit in bytes, if any.
    max_bytes: Option<u64>,
    /// The directory, with a trailing `/` unless empty.
    dir: Vec<u8>,
    /// File name before the date (`ingester`), as in tracing-appender's
    /// `filename_prefix`.
    prefix: Vec<u8>,
    /// File name after the date (`jsonl`), as its `filename_suffix`.
    suffix: Vec<u8>,
    max_files: Option<usize>,
    mode: u32,
    /// Unix second at which the current file's period ends (never, without
    /// time rotation).
    next: AtomicI64,
    /// Start of the current file's period.
    current: AtomicI64,
    /// With size rotation, the current file's number within its period.
    index: AtomicU64,
    /// With size rotation, the bytes in the current file (an over-estimate
    /// while records are in flight at a switch, never an under-estimate),
    /// plus [`SWITCHING`] during a switch.
    bytes: AtomicU64,
    /// Unix second before which a size switch that could not open its file
    /// is not tried again.
    retry_at: AtomicI64,
    /// Held by the one thread that switches.
    switching: AtomicBool,
    /// Set by a switch; the next ordinary record deletes old files.
    prune_pending: AtomicBool,
    /// Set after the first failure to open a new file, so that a disk
    /// that stays broken reports once.
    open_failed: AtomicBool,
}

/// What a rotated file's name says between the prefix and the suffix: the
/// period's date (empty without time rotation) and the file's number within
/// the period (with size rotation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct NameKey<'a> {
    date: &'a [u8],
    index: Option<u64>,
}

impl Roller {
    /// A roller for the files derived from `path` (`dir/prefix.ext`), or
    /// `None` without time or size rotation (`Rotation::NEVER` and no
    /// `max_bytes`), which writes `path` itself as tracing-appender does.
    pub(crate) fn new(
        path: &Path,
        rotation: &Rotation,
        max_bytes: Option<u64>,
        max_files: Option<usize>,
        mode: u32,
    ) -> Option<Roller> {
        let period = Period::of(rotation);
        let max_bytes = max_bytes.filter(|&n| n > 0);
        if period.is_none() && max_bytes.is_none() {
            return None;
        }
        let mut dir = path
            .parent()
            .map(|d| d.as_os_str().as_bytes().to_vec())
            .unwrap_or_default();
        if !dir.is_empty() && !dir.ends_with(b"/") {
            dir.push(b'/');
        }
        let bytes = |s: Option<&OsStr>| s.map(|s| s.as_bytes().to_vec()).unwrap_or_default();
        Some(Roller {
            period,
            max_bytes,
            dir,
            prefix: bytes(path.file_stem()),
            suffix: bytes(path.extension()),
            max_files: max_files.map(|n| n.max(1)),
            mode,
            next: AtomicI64::new(i64::MAX),
            current: AtomicI64::new(0),
            index: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            retry_at: AtomicI64::new(i64::MIN),
            switching: AtomicBool::new(false),
            prune_pending: AtomicBool::new(false),
            open_failed: AtomicBool::new(false),
        })
    }

    /// The file for `secs` (Unix seconds), which becomes the current one:
    /// with time rotation, the period holding `secs`; with size rotation,
    /// the highest-numbered file of that period already there (appended to
    /// until it is full), else number 0. Called once, before the sink
    /// opens it.
    pub(crate) fn start_at(&self, secs: i64) -> PathBuf {
        let start = self.period.map_or(0, |p| p.start(secs));
        self.current.store(start, Ordering::Relaxed);
        self.next.store(
            self.period.map_or(i64::MAX, |p| p.next(secs)),
            Ordering::Relaxed,
        );
        let index = self.last_index(start);
        self.index.store(index, Ordering::Relaxed);
        let path = self.path_for(start, index);
        if self.max_bytes.is_some() {
            let len = std::fs::metadata(&path).map_or(0, |m| m.len());
            self.bytes.store(len, Ordering::Relaxed);
        }
        path
    }

    /// With size rotation, the highest number among the files of the
    /// period starting at `start`; 0 when there is none (or without size
    /// rotation).
    fn last_index(&self, start: i64) -> u64 {
        if self.max_bytes.is_none() {
            return 0;
        }
        let mut date = Vec::new();
        if let Some(period) = self.period {
            period.put_date(&mut date, start);
        }
        self.own_files()
            .iter()
            .filter_map(|p| {
                let key = self.key_of(p.file_name()?.as_bytes())?;
                (key.date == date.as_slice()).then_some(key.index?)
            })
            .max()
            .unwrap_or(0)
    }

    /// The path of the current file.
    pub(crate) fn current_path(&self) -> PathBuf {
        self.path_for(
            self.current.load(Ordering::Relaxed),
            self.index.load(Ordering::Relaxed),
        )
    }

    /// Writes the current file's path to `out`. Async-signal-safe.
    pub(crate) fn put_current_path(&self, out: &mut impl Out) {
        self.put_path(
            out,
            self.current.load(Ordering::Relaxed),
            self.index.load(Ordering::Relaxed),
        );
    }

    fn path_for(&self, start: i64, index: u64) -> PathBuf {
        let mut name = Vec::new();
        self.put_path(&mut name, start, index);
        PathBuf::from(OsStr::from_bytes(&name))
    }

    /// `dir/prefix.DATE.N.suffix`: the date with time rotation (as
    /// tracing-appender writes it), the number with size rotation, leaving
    /// out an empty prefix or suffix and its dot, as tracing-appender does.
    fn put_path(&self, out: &mut impl Out, start: i64, index: u64) {
        out.put(&self.dir);
        if !self.prefix.is_empty() {
            out.put(&self.prefix);
            out.put(b".");
        }
        if let Some(period) = self.period {
            period.put_date(out, start);
            if self.max_bytes.is_some() {
                out.put(b".");
            }
        }
        if self.max_bytes.is_some() {
            crate::json::int(out, index);
        }
        if !self.suffix.is_empty() {
            out.put(b".");
            out.put(&self.suffix);
        }
    }

    /// Switches `fd` to the next file if the current period has ended at
    /// `now` (Unix seconds) or if a record of `len` bytes would take the
    /// current file past the size limit. A file that holds nothing yet
    /// takes any record, so a record larger than the limit gets a file of
    /// its own. One caller wins the switch; with size rotation the others
    /// wait for it (microseconds) and then write to the new file. Returns
    /// whether this call switched. Called from the ordinary record path
    /// only, never from a signal handler.
    #[inline]
    pub(crate) fn roll_if_due(&self, fd: libc::c_int, now: i64, len: usize) -> bool {
        if now >= self.next.load(Ordering::Relaxed) {
            return self.switch(fd, now, len, false);
        }
        if let Some(max) = self.max_bytes {
            let used = self.bytes.load(Ordering::Relaxed);
            if used > 0
                && used.saturating_add(len as u64) > max
                && now >= self.retry_at.load(Ordering::Relaxed)
            {
                return self.switch(fd, now, len, true);
            }
        }
        false
    }

    /// Counts `len` bytes written to the current file. Async-signal-safe.
    #[inline]
    pub(crate) fn wrote(&self, len: usize) {
        if self.max_bytes.is_some() {
            self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        }
    }

    /// Whether files are switched by size.
    #[inline]
    pub(crate) fn by_size(&self) -> bool {
        self.max_bytes.is_some()
    }

    /// Switches unless another thread is switching; then, if `wait` (the
    /// record would not fit in the current file), waits for the new file
    /// rather than fill the old one.
    #[cold]
    #[inline(never)]
    fn switch(&self, fd: libc::c_int, now: i64, len: usize, wait: bool) -> bool {
        if self
            .switching
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            if wait {
                let began = std::time::Instant::now();
                while self.switching.load(Ordering::Acquire) && began.elapsed() < SWITCH_WAIT {
                    std::thread::yield_now();
                }
            }
            return false; // another thread switches
        }
        /// Lets the others go on even if the switch unwinds.
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _release = Release(&self.switching);
        self.switch_now(fd, now, len)
    }

    /// The switch itself, by the thread that holds `switching`.
    fn switch_now(&self, fd: libc::c_int, now: i64, len: usize) -> bool {
        let time_due = now >= self.next.load(Ordering::Relaxed);
        let (start, index) = match self.period {
            Some(period) if time_due => {
                let start = period.start(now);
                (start, self.last_index(start))
            }
            _ => match self.max_bytes {
                // Checked again: another thread may have switched since.
                Some(max) => {
                    let used = self.bytes.load(Ordering::Relaxed);
                    if used == 0 || used.saturating_add(len as u64) <= max {
                        return false;
                    }
                    (
                        self.current.load(Ordering::Relaxed),
                        self.index.load(Ordering::Relaxed) + 1,
                    )
                }
                None => return false,
            },
        };
        let path = self.path_for(start, index);
        // From here until the new file is in place, every record that checks
        // the size waits (see `SWITCHING`); records that checked before go
        // to the old file or the new one, and are counted for the new one
        // either way: the count may run over, never under.
        let before = if self.max_bytes.is_some() {
            self.bytes.fetch_add(SWITCHING, Ordering::AcqRel)
        } else {
            0
        };
        let file = match open_append(&path, self.mode) {
            Ok(file) => std::fs::File::from(file),
            Err(e) => {
                if self.max_bytes.is_some() {
                    self.bytes.fetch_sub(SWITCHING, Ordering::AcqRel);
                }
                // Records go on to the old file; try again in a second
                // rather than at the end of the next period or at every
                // record.
                if time_due {
                    self.next.store(now + 1, Ordering::Relaxed);
                } else {
                    self.retry_at.store(now + 1, Ordering::Relaxed);
                }
                self.report_open_failure(&path, &e);
                return false;
            }
        };
        // What the file holds already (normally nothing).
        let held = file.metadata().map_or(0, |m| m.len());
        // SAFETY: both are open descriptors; dup3 replaces what `fd` refers
        // to in one step (dup2 would also clear its close-on-exec flag, and
        // children would inherit the log). `file` closes its own descriptor
        // when dropped; `fd` keeps the new file open.
        unsafe { libc::dup3(std::os::fd::AsRawFd::as_raw_fd(&file), fd, libc::O_CLOEXEC) };
        drop(file);
        if let Some(period) = self.period.filter(|_| time_due) {
            self.next.store(period.next(now), Ordering::Relaxed);
        }
        self.current.store(start, Ordering::Relaxed);
        self.index.store(index, Ordering::Relaxed);
        if self.max_bytes.is_some() {
            // Leaves `held` plus what was written since the mark.
            self.bytes
                .fetch_sub((SWITCHING + before).wrapping_sub(held), Ordering::AcqRel);
        }
        self.open_failed.store(false, Ordering::Relaxed);
        if self.max_files.is_some() {
            self.prune_pending.store(true, Ordering::Release);
        }
        true
    }

    fn report_open_failure(&self, path: &Path, error: &io::Error) {
        if self.open_failed.swap(true, Ordering::Relaxed) {
            return;
        }
        let msg = format!(
            "[lastwords] cannot open {} for the next file: {error}; records go on to \
             the previous file, and opening is retried every second\n",
            path.display()
        );
        crate::mirror::write_stderr(msg.as_bytes());
    }

    /// In the child of a `fork()`: a switch the parent's other threads had
    /// under way will never finish there. Async-signal-safe.
    pub(crate) fn after_fork(&self) {
        if self.switching.swap(false, Ordering::Relaxed) {
            self.bytes.fetch_and(!SWITCHING, Ordering::Relaxed);
        }
    }

    /// Deletes the oldest files if a switch asked for it. Not
    /// async-signal-safe: called from the ordinary record path.
    #[inline]
    pub(crate) fn prune_if_pending(&self) {
        if self.prune_pending.load(Ordering::Relaxed)
            && self.prune_pending.swap(false, Ordering::Acquire)
        {
            self.prune();
        }
    }

    /// Keeps the newest `max_log_files` files of this rotation (the current
    /// one included) and deletes the others. Only files named exactly as
    /// this configuration names them are touched; newest means the latest
    /// period, then the highest number (as a number: 10 after 9).
    pub(crate) fn prune(&self) {
        let Some(keep) = self.max_files else { return };
        let mut files = self.own_files();
        if files.len() <= keep {
            return;
        }
        self.sort_oldest_first(&mut files);
        let current = self.current_path();
        for old in &files[..files.len() - keep] {
            if *old == current {
                continue;
            }
            if let Err(e) = std::fs::remove_file(old) {
                let mut msg = format!("[lastwords] cannot delete old log file {}", old.display());
                msg.push_str(&format!(": {e}\n"));
                crate::mirror::write_stderr(msg.as_bytes());
            }
        }
    }

    /// Sorts this configuration's files by period, then number.
    fn sort_oldest_first(&self, files: &mut [PathBuf]) {
        files.sort_by(|a, b| {
            let key = |p: &PathBuf| {
                p.file_name()
                    .and_then(|n| self.key_of(n.as_bytes()))
                    .map(|k| (k.date.to_vec(), k.index))
            };
            key(a).cmp(&key(b))
        });
    }

    /// The file the previous run most likely wrote last: the newest of this
    /// configuration's files by name (period, then number), unless a file
    /// written under another configuration (another period, size rotation
    /// switched on or off, or `base` itself, written before rotation was
    /// configured) was modified later. Names decide among this
    /// configuration's files because modification times can tie, and a
    /// record in flight at a switch can touch the older file last.
    pub(crate) fn previous_file(&self, base: &Path) -> Option<PathBuf> {
        let mut own = self.own_files();
        self.sort_oldest_first(&mut own);
        let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let own = own.pop().and_then(|p| Some((mtime(&p)?, p)));
        let mut others = self
            .rotated_files(|name| self.key_of(name).is_none() && self.any_key_of(name).is_some());
        others.push(base.to_owned());
        let other = others
            .into_iter()
            .filter_map(|p| Some((mtime(&p)?, p)))
            .max();
        match (own, other) {
            (Some(own), Some(other)) if other.0 > own.0 => Some(other.1),
            (Some(own), _) => Some(own.1),
            (None, other) => other.map(|(_, p)| p),
        }
    }

    /// This configuration's files in the directory.
    fn own_files(&self) -> Vec<PathBuf> {
        self.rotated_files(|name| self.key_of(name).is_some())
    }

    /// The regular files in the directory whose name `keep` accepts.
    fn rotated_files(&self, keep: impl Fn(&[u8]) -> bool) -> Vec<PathBuf> {
        let dir = if self.dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(&self.dir))
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
            .filter(|entry| keep(entry.file_name().as_bytes()))
            .map(|entry| PathBuf::from(OsStr::from_bytes(&self.dir)).join(entry.file_name()))
            .collect()
    }

    /// The key of `name` if this configuration names its files so: a date
    /// of this period's shape (none without time rotation), and a number
    /// exactly when files are switched by size.
    fn key_of<'a>(&self, name: &'a [u8]) -> Option<NameKey<'a>> {
        let key = self.any_key_of(name)?;
        let date_ok = match self.period {
            Some(period) => key.date.len() == period.date_len(),
            None => key.date.is_empty(),
        };
        (date_ok && key.index.is_some() == self.max_bytes.is_some()).then_some(key)
    }

    /// The key of `name` if any rotation with this prefix and suffix could
    /// have named a file so: `prefix.DATE.suffix`, `prefix.DATE.N.suffix`
    /// or `prefix.N.suffix`, with a date of any period's shape.
    fn any_key_of<'a>(&self, name: &'a [u8]) -> Option<NameKey<'a>> {
        let mut rest = name;
        if !self.prefix.is_empty() {
            rest = rest
                .strip_prefix(self.prefix.as_slice())?
                .strip_prefix(b".")?;
        }
        if !self.suffix.is_empty() {
            rest = rest
                .strip_suffix(self.suffix.as_slice())?
                .strip_suffix(b".")?;
        }
        let number = |digits: &[u8]| -> Option<u64> {
            if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(digits).ok()?.parse().ok()
        };
        let key = match rest.iter().rposition(|&b| b == b'.') {
            Some(0) => return None,
            Some(dot) => NameKey {
                date: &rest[..dot],
                index: Some(number(&rest[dot + 1..])?),
            },
            None => match number(rest) {
                Some(index) => NameKey {
                    date: b"",
                    index: Some(index),
                },
                None => NameKey {
                    date: rest,
                    index: None,
                },
            },
        };
        let date_shape = |date: &[u8]| {
            [10, 13, 16].contains(&date.len())
                && date.iter().enumerate().all(|(i, &b)| match i {
                    4 | 7 | 10 | 13 => b == b'-',
                    _ => b.is_ascii_digit(),
                })
        };
        ((key.date.is_empty() && key.index.is_some()) || date_shape(key.date)).then_some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-25T10:34:56Z, a Wednesday.
    const T: i64 = 1_795_602_896;

    fn roller(path: &str, rotation: Rotation) -> Roller {
        Roller::new(Path::new(path), &rotation, None, None, 0o640).unwrap()
    }

    #[test]
    fn names_files_as_tracing_appender_does() {
        let cases = [
            (Rotation::MINUTELY, "logs/svc.2026-11-25-10-34.jsonl"),
            (Rotation::HOURLY, "logs/svc.2026-11-25-10.jsonl"),
            (Rotation::DAILY, "logs/svc.2026-11-25.jsonl"),
            // The week begins on Sunday, 2026-11-22.
            (Rotation::WEEKLY, "logs/svc.2026-11-22.jsonl"),
        ];
        for (rotation, name) in cases {
            let r = roller("logs/svc.jsonl", rotation);
            assert_eq!(r.start_at(T), Path::new(name));
            assert_eq!(r.current_path(), Path::new(name));
        }
        assert_eq!(
            roller("svc", Rotation::DAILY).start_at(T),
            Path::new("svc.2026-11-25")
        );
        assert!(Roller::new(Path::new("x.jsonl"), &Rotation::NEVER, None, None, 0o640).is_none());
    }

    #[test]
    fn periods_end_where_the_next_begins() {
        for period in [
            Period::Minutely,
            Period::Hourly,
            Period::Daily,
            Period::Weekly,
        ] {
            let next = period.next(T);
            assert!(next > T);
            assert_eq!(period.start(next), next);
            assert_eq!(period.start(next - 1), period.start(T));
        }
        // Before the epoch too.
        assert_eq!(Period::Daily.start(-1), -86_400);
    }

    /// The same names as the rolling appender, checked against the appender
    /// itself: whatever file it creates now, ours is called the same.
    #[test]
    fn agrees_with_the_rolling_appender_on_the_current_file() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("lastwords-roll-{}", std::process::id()));
        for (tag, rotation) in [("h", Rotation::HOURLY), ("d", Rotation::DAILY)] {
            let dir = dir.join(tag);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let before = crate::clock::Timestamp::now().secs;
            let mut appender = tracing_appender::rolling::Builder::new()
                .rotation(rotation.clone())
                .filename_prefix("svc")
                .filename_suffix("jsonl")
                .build(&dir)
                .unwrap();
            appender.write_all(b"{}\n").unwrap();
            let after = crate::clock::Timestamp::now().secs;
            let made: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            let r = roller(dir.join("svc.jsonl").to_str().unwrap(), rotation);
            // A period boundary may pass between the two clock reads.
            let ours = [r.start_at(before), r.start_at(after)];
            assert!(
                made.iter().any(|m| ours.contains(m)),
                "appender made {made:?}, ours {ours:?}"
            );
        }
    }

    #[test]
    fn a_removed_directory_is_created_again_at_the_next_switch() {
        let dir = std::env::temp_dir().join(format!("lastwords-rmdir-{}", std::process::id()));
        let logs = dir.join("logs");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&logs).unwrap();
        let r = Roller::new(
            &logs.join("svc.jsonl"),
            &Rotation::HOURLY,
            None,
            None,
            0o640,
        )
        .unwrap();
        let file = std::fs::File::create(r.start_at(T)).unwrap();
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(&file);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(r.roll_if_due(fd, T + 3_600, 0));
        // SAFETY: `fd` is open for as long as `file` lives.
        assert_eq!(unsafe { libc::write(fd, b"x\n".as_ptr().cast(), 2) }, 2);
        assert_eq!(std::fs::read_to_string(r.current_path()).unwrap(), "x\n");
    }

    #[test]
    fn a_failed_open_keeps_the_old_file_and_retries_within_a_second() {
        let r = Roller::new(
            Path::new("/proc/lastwords-cannot/svc.jsonl"),
            &Rotation::HOURLY,
            None,
            None,
            0o640,
        )
        .unwrap();
        r.start_at(T);
        let null = std::fs::File::open("/dev/null").unwrap();
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(&null);
        assert!(!r.roll_if_due(fd, T + 3_600, 0));
        assert_eq!(r.next.load(Ordering::Relaxed), T + 3_601);
        assert_eq!(r.current.load(Ordering::Relaxed), Period::Hourly.start(T));
    }

    #[test]
    fn recognises_only_its_own_file_names() {
        let r = roller("logs/svc.jsonl", Rotation::HOURLY);
        let own = |name: &str| {
            r.key_of(name.as_bytes())
                .map(|k| (k.date.to_vec(), k.index))
        };
        let any = |name: &str| {
            r.any_key_of(name.as_bytes())
                .map(|k| (k.date.to_vec(), k.index))
        };
        assert_eq!(
            own("svc.2026-11-25-10.jsonl"),
            Some((b"2026-11-25-10".to_vec(), None))
        );
        assert_eq!(own("svc.2026-11-25.jsonl"), None, "another period");
        assert_eq!(own("svc.2026-11-25-10.3.jsonl"), None, "size rotation");
        assert!(any("svc.2026-11-25.jsonl").is_some());
        assert_eq!(
            any("svc.2026-11-25-10.12.jsonl"),
            Some((b"2026-11-25-10".to_vec(), Some(12)))
        );
        assert_eq!(any("svc.12.jsonl"), Some((Vec::new(), Some(12))));
        for other in [
            "svc.jsonl",
            "svc.2026-11-25-10.jsonl.gz",
            "svc2.2026-11-25-10.jsonl",
            "svc.2026-11-25-1x.jsonl",
            "svc.2026_11_25_10.jsonl",
            "svc..3.jsonl",
            "svc.3x.jsonl",
            "svc.2026-11-25-10.-1.jsonl",
            "svc.99999999999999999999.jsonl",
        ] {
            assert_eq!(any(other), None, "{other}");
        }
        let sized = Roller::new(
            Path::new("svc.jsonl"),
            &Rotation::NEVER,
            Some(10),
            None,
            0o640,
        )
        .unwrap();
        assert!(sized.key_of(b"svc.7.jsonl").is_some());
        assert!(sized.key_of(b"svc.2026-11-25.7.jsonl").is_none());
        assert!(sized.key_of(b"svc.2026-11-25.jsonl").is_none());
    }

    fn sized(dir: &Path, rotation: Rotation, max: u64, files: Option<usize>) -> Roller {
        Roller::new(&dir.join("svc.jsonl"), &rotation, Some(max), files, 0o640).unwrap()
    }

    fn fresh_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lastwords-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn size_rotation_numbers_files_within_the_period() {
        let dir = fresh_dir("size-names");
        let r = sized(&dir, Rotation::NEVER, 100, None);
        assert_eq!(r.start_at(T), dir.join("svc.0.jsonl"));
        let r = sized(&dir, Rotation::DAILY, 100, None);
        assert_eq!(r.start_at(T), dir.join("svc.2026-11-25.0.jsonl"));
        let r = sized(&dir, Rotation::MINUTELY, 100, None);
        assert_eq!(r.start_at(T), dir.join("svc.2026-11-25-10-34.0.jsonl"));
        let _ = std::fs::remove_dir_all(&dir); // passed: nothing to inspect
    }

    /// Writes `len` bytes as a record would: the check, then the write,
    /// then the count.
    fn record(r: &Roller, fd: libc::c_int, now: i64, len: usize) -> bool {
        let switched = r.roll_if_due(fd, now, len);
        let line = format!("{}\n", "x".repeat(len - 1));
        // SAFETY: `fd` is open; `line` is a live buffer.
        let n = unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
        assert_eq!(n, len as isize);
        r.wrote(len);
        switched
    }

    #[test]
    fn a_full_file_gives_way_to_the_next_number_and_a_large_record_gets_its_own() {
        let dir = fresh_dir("size-switch");
        let r = sized(&dir, Rotation::NEVER, 100, None);
        let file = std::fs::File::create(r.start_at(T)).unwrap();
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(&file);
        assert!(!record(&r, fd, T, 60));
        assert!(!record(&r, fd, T, 40), "exactly the limit still fits");
        assert!(record(&r, fd, T, 1), "one more byte does not");
        assert!(record(&r, fd, T, 250), "a record larger than the limit");
        assert!(record(&r, fd, T, 10), "the large record's file is full");
        let len = |n: u64| {
            std::fs::metadata(dir.join(format!("svc.{n}.jsonl")))
                .unwrap()
                .len()
        };
        assert_eq!([len(0), len(1), len(2), len(3)], [100, 1, 250, 10]);
        assert_eq!(r.current_path(), dir.join("svc.3.jsonl"));
        assert_eq!(r.bytes.load(Ordering::Relaxed), 10);
        let _ = std::fs::remove_dir_all(&dir); // passed: nothing to inspect
    }

    #[test]
    fn a_start_appends_to_the_highest_number_of_the_period_until_it_is_full() {
        let dir = fresh_dir("size-start");
        for (n, text) in [(2, "22\n"), (9, "99\n"), (10, "1010\n")] {
            std::fs::write(dir.join(format!("svc.2026-11-25.{n}.jsonl")), text).unwrap();
        }
        std::fs::write(dir.join("svc.2026-11-24.50.jsonl"), "yesterday\n").unwrap();
        let r = sized(&dir, Rotation::DAILY, 8, None);
        let path = r.start_at(T);
        assert_eq!(path, dir.join("svc.2026-11-25.10.jsonl"), "10 after 9");
        assert_eq!(r.bytes.load(Ordering::Relaxed), 5);
        assert_eq!(r.previous_file(&dir.join("svc.jsonl")), Some(path.clone()));
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(&file);
        assert!(record(&r, fd, T, 4), "5 + 4 passes 8");
        assert_eq!(r.current_path(), dir.join("svc.2026-11-25.11.jsonl"));
        // The day ends: the next day's numbers begin at 0.
        assert!(record(&r, fd, T + 86_400, 4));
        assert_eq!(r.current_path(), dir.join("svc.2026-11-26.0.jsonl"));
        let _ = std::fs::remove_dir_all(&dir); // passed: nothing to inspect
    }

    #[test]
    fn pruning_keeps_the_highest_numbers() {
        let dir = fresh_dir("size-prune");
        std::fs::write(dir.join("svc.jsonl"), "unrotated\n").unwrap();
        let r = sized(&dir, Rotation::NEVER, 10, Some(3));
        let file = std::fs::File::create(r.start_at(T)).unwrap();
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(&file);
        for _ in 0..12 {
            record(&r, fd, T, 10);
            r.prune_if_pending();
        }
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["svc.10.jsonl", "svc.11.jsonl", "svc.9.jsonl", "svc.jsonl"]
        );
        let _ = std::fs::remove_dir_all(&dir); // passed: nothing to inspect
    }

    #[test]
    fn threads_switching_at_once_lose_and_split_no_record() {
        let dir = fresh_dir("size-threads");
        let r = sized(&dir, Rotation::NEVER, 4_096, None);
        let file = std::fs::File::create(r.start_at(T)).unwrap();
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(&file);
        const THREADS: usize = 4;
        const RECORDS: usize = 2_000;
        const LEN: usize = 64;
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..RECORDS {
                        record(&r, fd, T, LEN);
                    }
                });
            }
        });
        let mut total = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let text = std::fs::read(entry.unwrap().path()).unwrap();
            // At most one record per other writing thread past the limit.
            assert!(text.len() <= 4_096 + (THREADS - 1) * LEN, "{}", text.len());
            assert_eq!(text.len() % LEN, 0);
            assert!(text
                .chunks(LEN)
                .all(|c| c.ends_with(b"\n") && c[..LEN - 1].iter().all(|&b| b == b'x')));
            total += text.len() / LEN;
        }
        assert_eq!(total, THREADS * RECORDS);
        let _ = std::fs::remove_dir_all(&dir); // passed: nothing to inspect
    }

    #[test]
    fn a_switch_moves_the_descriptor_to_the_next_file_and_prunes() {
        let dir = std::env::temp_dir().join(format!("lastwords-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("svc.jsonl"), "unrotated\n").unwrap();
        std::fs::write(dir.join("other.2020-01-01-00.jsonl"), "other\n").unwrap();
        let r = Roller::new(
            &dir.join("svc.jsonl"),
            &Rotation::HOURLY,
            None,
            Some(2),
            0o640,
        )
        .unwrap();
        let first = r.start_at(T);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&first)
            .unwrap();
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(&file);
        let write = |text: &str| {
            // SAFETY: `fd` is open for as long as `file` lives.
            let n = unsafe { libc::write(fd, text.as_ptr().cast(), text.len()) };
            assert_eq!(n, text.len() as isize);
        };
        write("a\n");
        assert!(!r.roll_if_due(fd, T + 1, 0), "the period has not ended");
        let mut paths = vec![first];
        for hour in 1..=3 {
            assert!(r.roll_if_due(fd, T + hour * 3_600, 0));
            assert!(!r.roll_if_due(fd, T + hour * 3_600, 0), "switched once");
            // SAFETY: F_GETFD on an open descriptor.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            assert_eq!(
                flags & libc::FD_CLOEXEC,
                libc::FD_CLOEXEC,
                "children do not inherit it"
            );
            write(&format!("{hour}\n"));
            r.prune_if_pending();
            paths.push(r.current_path());
        }
        let read = |p: &PathBuf| std::fs::read_to_string(p).ok();
        assert_eq!(read(&paths[3]).as_deref(), Some("3\n"));
        assert_eq!(read(&paths[2]).as_deref(), Some("2\n"));
        assert_eq!(read(&paths[1]), None, "pruned");
        assert_eq!(read(&paths[0]), None, "pruned");
        assert_eq!(
            read(&dir.join("svc.jsonl")).as_deref(),
            Some("unrotated\n"),
            "not a rotated name: kept"
        );
        assert!(dir.join("other.2020-01-01-00.jsonl").exists());
    }
}
