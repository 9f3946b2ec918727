//! Time-based rotation with tracing-appender's periods and file names.
//!
//! With [`Builder::rotation`](crate::Builder::rotation) the records of each
//! period go to their own file, named as tracing-appender's rolling appender
//! names them for a prefix and a suffix: `logs/ingester.jsonl` rotated
//! hourly writes `logs/ingester.2026-11-25-10.jsonl`, then
//! `logs/ingester.2026-11-25-11.jsonl`. Periods are in UTC and begin on the
//! minute, the hour, at midnight, or on Sunday at midnight.
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
//! one of the two. The hot path pays one coarse clock read and a compare.
//!
//! The switch happens on the ordinary record path only: a signal handler
//! writes to whichever file is current. Deleting old files (with
//! `max_log_files`) runs after the switch, outside the record's write. A
//! log directory removed while the service runs is created again at the
//! next switch.

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

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

/// Switches the sink's file when a period ends.
pub(crate) struct Roller {
    period: Period,
    /// The directory, with a trailing `/` unless empty.
    dir: Vec<u8>,
    /// File name before the date (`ingester`), as in tracing-appender's
    /// `filename_prefix`.
    prefix: Vec<u8>,
    /// File name after the date (`jsonl`), as its `filename_suffix`.
    suffix: Vec<u8>,
    max_files: Option<usize>,
    mode: u32,
    /// Unix second at which the current file's period ends.
    next: AtomicI64,
    /// Start of the current file's period.
    current: AtomicI64,
    /// Set by a switch; the next ordinary record deletes old files.
    prune_pending: AtomicBool,
    /// Set after the first failure to open a new file, so that a disk
    /// that stays broken reports once.
    open_failed: AtomicBool,
}

impl Roller {
    /// A roller for the files derived from `path` (`dir/prefix.ext`), or
    /// `None` for `Rotation::NEVER`, which writes `path` itself as
    /// tracing-appender does.
    pub(crate) fn new(
        path: &Path,
        rotation: &Rotation,
        max_files: Option<usize>,
        mode: u32,
    ) -> Option<Roller> {
        let period = Period::of(rotation)?;
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
            dir,
            prefix: bytes(path.file_stem()),
            suffix: bytes(path.extension()),
            max_files: max_files.map(|n| n.max(1)),
            mode,
            next: AtomicI64::new(i64::MIN),
            current: AtomicI64::new(i64::MIN),
            prune_pending: AtomicBool::new(false),
            open_failed: AtomicBool::new(false),
        })
    }

    /// The file for the period holding `secs`, which becomes the current
    /// one. Called once, before the sink opens it.
    pub(crate) fn start_at(&self, secs: i64) -> PathBuf {
        let start = self.period.start(secs);
        self.current.store(start, Ordering::Relaxed);
        self.next.store(self.period.next(secs), Ordering::Relaxed);
        self.path_for(start)
    }

    /// The path of the current file.
    pub(crate) fn current_path(&self) -> PathBuf {
        self.path_for(self.current.load(Ordering::Relaxed))
    }

    /// Writes the current file's path to `out`. Async-signal-safe.
    pub(crate) fn put_current_path(&self, out: &mut impl Out) {
        self.put_path(out, self.current.load(Ordering::Relaxed));
    }

    fn path_for(&self, start: i64) -> PathBuf {
        let mut name = Vec::new();
        self.put_path(&mut name, start);
        PathBuf::from(OsStr::from_bytes(&name))
    }

    /// `dir/prefix.DATE.suffix`, leaving out an empty prefix or suffix and
    /// its dot, as tracing-appender does.
    fn put_path(&self, out: &mut impl Out, start: i64) {
        out.put(&self.dir);
        if !self.prefix.is_empty() {
            out.put(&self.prefix);
            out.put(b".");
        }
        self.period.put_date(out, start);
        if !self.suffix.is_empty() {
            out.put(b".");
            out.put(&self.suffix);
        }
    }

    /// Switches `fd` to the next period's file if the current period has
    /// ended at `now` (Unix seconds). One caller wins the switch; the others
    /// go on writing, to the old file until the `dup3` and to the new one
    /// after it. Returns whether this call switched. Called from the
    /// ordinary record path only, never from a signal handler.
    #[inline]
    pub(crate) fn roll_if_due(&self, fd: libc::c_int, now: i64) -> bool {
        let next = self.next.load(Ordering::Relaxed);
        if now < next {
            return false;
        }
        self.roll(fd, next, now)
    }

    #[cold]
    #[inline(never)]
    fn roll(&self, fd: libc::c_int, next: i64, now: i64) -> bool {
        if self
            .next
            .compare_exchange(
                next,
                self.period.next(now),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return false; // another thread switches
        }
        let start = self.period.start(now);
        let path = self.path_for(start);
        let file = match open_append(&path, self.mode) {
            Ok(file) => file,
            Err(e) => {
                // Records go on to the old file; try again in a second
                // rather than at the end of the next period.
                self.next.store(now + 1, Ordering::Relaxed);
                self.report_open_failure(&path, &e);
                return false;
            }
        };
        // SAFETY: both are open descriptors; dup3 replaces what `fd` refers
        // to in one step (dup2 would also clear its close-on-exec flag, and
        // children would inherit the log). `file` closes its own descriptor
        // when dropped; `fd` keeps the new file open.
        unsafe { libc::dup3(std::os::fd::AsRawFd::as_raw_fd(&file), fd, libc::O_CLOEXEC) };
        drop(file);
        self.current.store(start, Ordering::Relaxed);
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
            "[lastwords] cannot open {} for the next period: {error}; records go on to \
             the previous file, and opening is retried every second\n",
            path.display()
        );
        crate::mirror::write_stderr(msg.as_bytes());
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
    /// one included) and deletes the others. Only files named exactly
    /// `prefix.DATE.suffix` with this period's date shape are touched.
    pub(crate) fn prune(&self) {
        let Some(keep) = self.max_files else { return };
        let mut files = self.rotated_files(Some(self.period));
        if files.len() <= keep {
            return;
        }
        files.sort();
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

    /// The regular files in the directory named `prefix.DATE.suffix`, with a
    /// date of `period`'s shape, or of any period's shape with `None`.
    pub(crate) fn rotated_files(&self, period: Option<Period>) -> Vec<PathBuf> {
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
            .filter(|entry| self.date_of(entry.file_name().as_bytes(), period).is_some())
            .map(|entry| PathBuf::from(OsStr::from_bytes(&self.dir)).join(entry.file_name()))
            .collect()
    }

    /// The date part of `name` if it is one of this rotation's file names.
    fn date_of<'a>(&self, name: &'a [u8], period: Option<Period>) -> Option<&'a [u8]> {
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
        let shape_ok = |len: usize| {
            rest.len() == len
                && rest.iter().enumerate().all(|(i, &b)| match i {
                    4 | 7 | 10 | 13 => b == b'-',
                    _ => b.is_ascii_digit(),
                })
        };
        let fits = match period {
            Some(p) => shape_ok(p.date_len()),
            None => [10, 13, 16].into_iter().any(shape_ok),
        };
        fits.then_some(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-25T10:34:56Z, a Wednesday.
    const T: i64 = 1_795_602_896;

    fn roller(path: &str, rotation: Rotation) -> Roller {
        Roller::new(Path::new(path), &rotation, None, 0o640).unwrap()
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
        assert!(Roller::new(Path::new("x.jsonl"), &Rotation::NEVER, None, 0o640).is_none());
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
        let r = Roller::new(&logs.join("svc.jsonl"), &Rotation::HOURLY, None, 0o640).unwrap();
        let file = std::fs::File::create(r.start_at(T)).unwrap();
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(&file);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(r.roll_if_due(fd, T + 3_600));
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
            0o640,
        )
        .unwrap();
        r.start_at(T);
        let null = std::fs::File::open("/dev/null").unwrap();
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(&null);
        assert!(!r.roll_if_due(fd, T + 3_600));
        assert_eq!(r.next.load(Ordering::Relaxed), T + 3_601);
        assert_eq!(r.current.load(Ordering::Relaxed), Period::Hourly.start(T));
    }

    #[test]
    fn recognises_only_its_own_file_names() {
        let r = roller("logs/svc.jsonl", Rotation::HOURLY);
        let date = |name: &str, p| r.date_of(name.as_bytes(), p).map(|d| d.to_vec());
        assert_eq!(
            date("svc.2026-11-25-10.jsonl", Some(Period::Hourly)),
            Some(b"2026-11-25-10".to_vec())
        );
        assert_eq!(date("svc.2026-11-25.jsonl", Some(Period::Hourly)), None);
        assert!(date("svc.2026-11-25.jsonl", None).is_some());
        for other in [
            "svc.jsonl",
            "svc.2026-11-25-10.jsonl.gz",
            "svc2.2026-11-25-10.jsonl",
            "svc.2026-11-25-1x.jsonl",
            "svc.2026_11_25_10.jsonl",
        ] {
            assert_eq!(date(other, None), None, "{other}");
        }
    }

    #[test]
    fn a_switch_moves_the_descriptor_to_the_next_file_and_prunes() {
        let dir = std::env::temp_dir().join(format!("lastwords-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("svc.jsonl"), "unrotated\n").unwrap();
        std::fs::write(dir.join("other.2020-01-01-00.jsonl"), "other\n").unwrap();
        let r = Roller::new(&dir.join("svc.jsonl"), &Rotation::HOURLY, Some(2), 0o640).unwrap();
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
        assert!(!r.roll_if_due(fd, T + 1), "the period has not ended");
        let mut paths = vec![first];
        for hour in 1..=3 {
            assert!(r.roll_if_due(fd, T + hour * 3_600));
            assert!(!r.roll_if_due(fd, T + hour * 3_600), "switched once");
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
